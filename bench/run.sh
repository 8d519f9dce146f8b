#!/bin/sh
# Launch benchmark: sandbox vs bare exec, unshare and bwrap, in one run.
#   bench/run.sh [--quick] [--iterations N] [--json FILE] [--check] [--stages] [--only REGEX]
# SANDBOX_BIN=/path/to/sandbox skips the build; otherwise builds a statically linked release
# binary (target/<host>/release/sandbox): dynamic loading alone costs ~0.25 ms per launch.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${SANDBOX_BIN:-}" ]; then
    host=$(rustc -vV | sed -n 's/^host: //p')
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet -p sandbox-cli --target "$host"
    SANDBOX_BIN="$root/target/$host/release/sandbox"
fi
export SANDBOX_BIN
exec python3 "$root/bench/driver.py" --sandbox-bin "$SANDBOX_BIN" "$@"
