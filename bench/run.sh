#!/bin/sh
# Launch benchmark: sandbox vs bare exec, unshare and bwrap, in one run.
#   bench/run.sh [--quick] [--iterations N] [--json FILE] [--check] [--stages] [--only REGEX]
# SANDBOX_BIN=/path/to/sandbox skips the build. Otherwise builds the fast release binary:
# static, against musl (target/<arch>-unknown-linux-musl/release/sandbox) when that Rust
# target is installed (`rustup target add <arch>-unknown-linux-musl`), else against glibc,
# which is ~0.25 ms slower per launch (bench/README.md: glibc's start-up), and measures a copy
# of it in target/bench (installed the way `cargo install` installs it).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${SANDBOX_BIN:-}" ]; then
    host=$(rustc -vV | sed -n 's/^host: //p')
    musl="${host%%-*}-unknown-linux-musl"
    if [ -d "$(rustc --print sysroot)/lib/rustlib/$musl/lib" ]; then
        cargo build --release --quiet -p sandbox-cli --target "$musl"
        SANDBOX_BIN="$root/target/$musl/release/sandbox"
    else
        echo "note: Rust target $musl is not installed (rustup target add $musl):" \
            "benchmarking the glibc static build, ~0.25 ms slower per launch" >&2
        RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet -p sandbox-cli --target "$host"
        SANDBOX_BIN="$root/target/$host/release/sandbox"
    fi
    # Measure an installed copy, as `cargo install` or a package leaves it, not the linker's
    # output: the kernel caches a file written in large writes in large folios, which makes
    # mapping the launcher's text cheaper (bench/README.md, item 32).
    mkdir -p "$root/target/bench"
    cp "$SANDBOX_BIN" "$root/target/bench/sandbox.new"
    mv -f "$root/target/bench/sandbox.new" "$root/target/bench/sandbox"
    SANDBOX_BIN="$root/target/bench/sandbox"
fi
export SANDBOX_BIN
exec python3 "$root/bench/driver.py" --sandbox-bin "$SANDBOX_BIN" "$@"
