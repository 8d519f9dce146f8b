#!/bin/sh
# Launch benchmark: sandbox vs bare exec, unshare and bwrap, in one run.
#   bench/run.sh [--quick] [--iterations N] [--json FILE] [--check] [--stages] [--only REGEX]
# SANDBOX_BIN=/path/to/sandbox skips the build; otherwise builds target/release/sandbox.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${SANDBOX_BIN:-}" ]; then
    cargo build --release --quiet -p sandbox-cli
    SANDBOX_BIN="$root/target/release/sandbox"
fi
export SANDBOX_BIN
exec python3 "$root/bench/driver.py" --sandbox-bin "$SANDBOX_BIN" "$@"
