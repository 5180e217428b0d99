#!/usr/bin/env python3
"""Unix-domain vs TCP loopback: the same echo server, side by side.

One command, from the repository root:

    python3 bench/unix_bench.py                 # 5 reps of 5 s per scenario
    python3 bench/unix_bench.py --quick         # 1 rep of 1 s (smoke test)
    python3 bench/unix_bench.py --output=docs/BENCHMARKS.md

Two //examples/echo:echo_server processes (--config=opt, --mode=direct: one
loop thread) run at once, pinned to CPU --server-cpu (0): one listening on
127.0.0.1:PORT, one on --unix=PATH. The load generator //bench:echo_load
(closed loop: each connection sends a message and waits for its echo, every
byte checked) is pinned to --client-cpu (1) and drives one server at a time
with --port or --unix. Repetitions interleave the two (TCP first on odd
reps, Unix first on even ones); the server's CPU time (utime + stime from
/proc/PID/stat over the run) divided by the messages echoed gives the
server CPU per message. Reported: medians, the spread ((max - min) /
median) and the ratio Unix / TCP (below 1: Unix is cheaper).

The markdown goes to stdout (progress to stderr); --output FILE also writes
it between `<!-- BEGIN unix -->` and `<!-- END unix -->` of FILE.
Needs: taskset, python3; Bazel via ./bazelw.
"""

import argparse
import datetime
import json
import os
import platform
import queue
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_all  # noqa: E402  (Bazel, Server, pin, run_measured, median_of)

SCENARIOS = [(1, 64), (1, 4096), (50, 64)]  # (connections, bytes)
MILL_ECHO = run_all.MILL_ECHO
ECHO_LOAD = run_all.ECHO_LOAD


def wait_unix_ready(server, timeout=30.0):
    """Waits for "listening on unix:..." on the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = server.lines.get(timeout=0.1)
        except queue.Empty:
            if not server.alive():
                return False
            continue
        if line.startswith("listening on unix:"):
            return True
    return False


def run_load(echo_load, server, target, conns, size, args):
    cmd = run_all.pin(args.client_cpu) + [
        str(echo_load), *target, f"--connections={conns}", f"--size={size}",
        f"--duration={args.duration}", f"--warmup={args.warmup}"]
    rc, out, err, util = run_all.run_measured(
        cmd, server, timeout=args.duration + args.warmup + 60)
    lines = out.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        data = {}
    if rc != 0 or not data or data.get("errors", 1) != 0:
        return {"ok": False, "error": err.strip()[-200:] or f"exit {rc}"}
    data.update(ok=True, server_cpu=util)
    if util is not None and data.get("msgs_per_s"):
        data["cpu_us"] = util * 1e6 / data["msgs_per_s"]
    return data


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def report(results, args, command):
    out = ["## Unix-domain vs TCP loopback (echo)\n",
           f"`{command}` — {datetime.date.today()}, {platform.node()}, "
           f"{os.cpu_count()} CPUs; echo_server --mode=direct pinned to CPU "
           f"{args.server_cpu}, echo_load to CPU {args.client_cpu}; "
           f"{args.reps} interleaved reps of {args.duration} s (+"
           f"{args.warmup} s warm-up), medians.\n",
           "| connections × bytes | TCP msgs/s | Unix msgs/s | TCP server "
           "CPU µs/msg | Unix server CPU µs/msg | CPU/msg Unix ÷ TCP | "
           "spread TCP / Unix |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for conns, size in SCENARIOS:
        tcp = results[("tcp", conns, size)]
        unix = results[("unix", conns, size)]
        tcp_cpu = run_all.median_of(tcp, "cpu_us")
        unix_cpu = run_all.median_of(unix, "cpu_us")
        ratio = (unix_cpu / tcp_cpu) if tcp_cpu and unix_cpu else None
        spreads = " / ".join(
            fmt(run_all.spread_pct(r, "cpu_us"), 0) + " %" for r in (tcp, unix))
        out.append(
            f"| {conns} × {size} "
            f"| {fmt(run_all.median_of(tcp, 'msgs_per_s'), 0)} "
            f"| {fmt(run_all.median_of(unix, 'msgs_per_s'), 0)} "
            f"| {fmt(tcp_cpu)} | {fmt(unix_cpu)} | **{fmt(ratio)}** "
            f"| {spreads} |")
    failures = [r["error"] for runs in results.values() for r in runs
                if not r.get("ok")]
    if failures:
        out.append(f"\n{len(failures)} failed run(s); first: {failures[0]}")
    return "\n".join(out) + "\n"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--output_base")
    parser.add_argument("--bazel-arg", action="append", default=[])
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.duration, args.warmup = 1, 1.0, 0.5
    command = "python3 bench/unix_bench.py " + " ".join(argv)

    bazel = run_all.Bazel(args)
    if not args.no_build and not bazel.build([MILL_ECHO, ECHO_LOAD]):
        return 1
    bin_dir = bazel.bin_dir()
    echo = run_all.binary_path(bin_dir, MILL_ECHO)
    echo_load = run_all.binary_path(bin_dir, ECHO_LOAD)

    workdir = tempfile.mkdtemp(prefix="mill_unix_bench_")
    path = os.path.join(workdir, "echo.sock")
    flags = ["--mode=direct", "--workers=1"]
    tcp = run_all.Server([str(echo), "--port=0"] + flags, args.server_cpu)
    unix = run_all.Server([str(echo), f"--unix={path}"] + flags,
                          args.server_cpu)
    try:
        if not tcp.wait_ready() or not wait_unix_ready(unix):
            run_all.log("a server did not start: " + tcp.describe_failure()
                        + " | " + unix.describe_failure())
            return 1
        targets = {"tcp": (tcp, ["--host=127.0.0.1", f"--port={tcp.port}"]),
                   "unix": (unix, [f"--unix={path}"])}
        results = {(kind, c, s): [] for kind in targets
                   for c, s in SCENARIOS}
        for rep in range(args.reps):
            order = ["tcp", "unix"] if rep % 2 == 0 else ["unix", "tcp"]
            for conns, size in SCENARIOS:
                for kind in order:
                    server, target = targets[kind]
                    data = run_load(echo_load, server, target, conns, size,
                                    args)
                    run_all.log(f"rep {rep + 1} {kind} {conns}x{size}: "
                                f"{fmt(data.get('msgs_per_s'), 0)} msgs/s, "
                                f"{fmt(data.get('cpu_us'))} µs/msg"
                                if data["ok"] else f"failed: {data['error']}")
                    results[(kind, conns, size)].append(data)
    finally:
        tcp.stop()
        unix.stop()
        try:
            os.unlink(path)
            os.rmdir(workdir)
        except OSError:
            pass
    text = report(results, args, command)
    print(text)
    if args.output:
        run_all.write_section(args.output, "unix", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
