#!/usr/bin/env python3
"""Where a launch spends its time: run `sandbox run -- CMD` N times with stage timestamps
(a binary built with `--features trace-stages`) and print each stage's median.

    bench/trace.py [-n 200] [--] [sandbox-run-args... --] [command...]

Builds the binary bench/run.sh measures, with the feature, into target/trace unless\nSANDBOX_TRACE_BIN is set.
Stamps come from the caller, pid 1 and the command (CLOCK_MONOTONIC, the same clock as
time.monotonic_ns here); "spawned" is taken by this script just before posix_spawn.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    """The binary bench/run.sh measures (static musl, else static glibc), with the stamps."""
    host = subprocess.check_output(["rustc", "-vV"], text=True)
    host = next(l.split(": ")[1] for l in host.splitlines() if l.startswith("host: "))
    musl = host.split("-")[0] + "-unknown-linux-musl"
    sysroot = subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip()
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "trace"))
    target = musl
    if not os.path.isdir(os.path.join(sysroot, "lib", "rustlib", musl, "lib")):
        print(f"note: Rust target {musl} is not installed: tracing the glibc static build",
              file=sys.stderr)
        env["RUSTFLAGS"] = "-C target-feature=+crt-static"
        target = host
    subprocess.check_call(["cargo", "build", "--release", "--quiet", "-p", "sandbox-cli",
                           "--features", "trace-stages", "--target", target], cwd=ROOT, env=env)
    return os.path.join(ROOT, "target", "trace", target, "release", "sandbox")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
    if "--" in rest:
        i = rest.index("--")
        run_args, command = rest[:i], rest[i + 1:]
    else:
        run_args, command = [], rest or ["/bin/true"]
    binary = os.environ.get("SANDBOX_TRACE_BIN") or build()
    ws = tempfile.mkdtemp(prefix="sandbox-trace-", dir=a.workdir)
    if os.geteuid() == 0:
        os.chown(ws, 65534, 65534)
    trace = os.path.join(ws, "..", os.path.basename(ws) + ".trace")
    argv = [binary, "run", *run_args, "--", *command]
    runs = []
    devnull = os.open(os.devnull, os.O_RDWR)
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
    for i in range(a.n + 10):
        try:
            os.unlink(trace)
        except FileNotFoundError:
            pass
        env = dict(os.environ, SANDBOX_TRACE=trace)
        os.chdir(ws)
        t0 = time.monotonic_ns()
        pid = os.posix_spawn(binary, argv, env, file_actions=fa)
        os.waitpid(pid, 0)
        t1 = time.monotonic_ns()
        if i < 10:
            continue
        stamps = [("spawned", t0)]
        with open(trace) as f:
            for line in f:
                name, ns = line.split()
                stamps.append((name, int(ns)))
        stamps.append(("exited", t1))
        runs.append(stamps)
    os.unlink(trace)
    os.rmdir(ws)
    # Order by time within each run; report the median gap from the previous stamp.
    # "at" is the median offset from the spawn: stamps of processes running in parallel
    # (pid 1 and its mount helper) may come in either order.
    order, gaps, at = [], {}, {}
    for stamps in runs:
        stamps.sort(key=lambda s: s[1])
        prev = None
        for name, ns in stamps:
            if name not in gaps:
                order.append(name)
                gaps[name], at[name] = [], []
            gaps[name].append(0 if prev is None else ns - prev)
            at[name].append(ns - stamps[0][1])
            prev = ns
    total = statistics.median(s[-1][1] - s[0][1] for s in runs)
    print(f"{len(runs)} launches of {' '.join(argv[1:])}; median total {total / 1000:.0f} µs")
    print(f"{'stamp':24} {'at µs':>8} {'gap µs':>8} {'gap p90':>8}   (gap: since the previous stamp)")
    order.sort(key=lambda n: statistics.median(at[n]))
    for name in order:
        g = sorted(gaps[name])
        p90 = g[int(len(g) * 0.9)]
        print(f"{name:24} {statistics.median(at[name]) / 1000:8.0f} "
              f"{statistics.median(g) / 1000:8.0f} {p90 / 1000:8.0f}")


if __name__ == "__main__":
    main()
