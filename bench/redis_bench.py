#!/usr/bin/env python3
"""Redis protocol: Mill-IO's client against hiredis on libevent, side by side.

One command, from the repository root:

    python3 bench/redis_bench.py               # 3 reps of 5 s each (~2 min)
    python3 bench/redis_bench.py --quick       # 1 rep of 1 s (smoke test)
    python3 bench/redis_bench.py --output=docs/BENCHMARKS.md --label="..."

Three clients of //bench:redis_load (see bench/redis_load.cc) load one
redis-server that this script starts on a free loopback port
(`redis-server --port P --bind 127.0.0.1 --save '' --appendonly no`):

  mill_per_send  Mill-IO TcpClient, one Connection::Send per request
  mill_batched   Mill-IO TcpClient, one Send per on_data call (by hand)
  hiredis        hiredis async API on libevent, one redisAsyncCommand per
                 request (hiredis writes its buffer once per loop turn)

Each keeps --pipelines (16 and 128) requests in flight on --connections (1)
connections; the command is GET of a 16-byte value. redis-server is pinned
to --server-cpu (0), the client to --client-cpu (1). Repetitions interleave
the clients (the order rotates every rep) and the median is reported with
the spread ((max - min) / median). Figures: requests/s, client CPU
(getrusage user + sys) per request, and redis-server's CPU per request
(/proc, over the client's whole run, warmup included), and with perf the
client's system calls and writes (write, writev, sendto, sendmsg) per
request over its whole run (`perf stat` tracepoints; --no-perf skips).

The markdown goes to stdout (progress to stderr); --output FILE also writes
it between `<!-- BEGIN redis -->` and `<!-- END redis -->` of FILE
(--section NAME for another pair of markers, so that figures of another
--label are kept beside these).
Needs: redis-server (Debian's redis-server), libhiredis-dev, taskset.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_all  # noqa: E402  (Bazel, Server, pin, cpu_seconds, median_of,
#                              spread_pct, write_section, free_port)

ROOT = run_all.ROOT
TARGET = "//bench:redis_load"
CLIENTS = ("mill_per_send", "mill_batched", "hiredis")
START = time.monotonic()


def log(message):
    run_all.log(f"[{time.monotonic() - START:6.1f} s] {message}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--pipelines", default="16,128",
                        help="comma-separated requests in flight")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--quick", action="store_true",
                        help="1 rep of 1 s (smoke test)")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--no-perf", dest="perf", action="store_false",
                        help="skip counting the client's system calls")
    parser.add_argument("--output", help="also write the section to FILE")
    parser.add_argument("--label", default="",
                        help="what the figures are (goes in the heading)")
    parser.add_argument("--section", default="redis",
                        help="--output's section name (one per label keeps "
                        "earlier figures)")
    parser.add_argument("--output_base", help="Bazel --output_base")
    parser.add_argument("--bazel-arg", action="append", default=[])
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.seconds, args.warmup = 1, 1.0, 0.3
    args.pipelines = [int(p) for p in args.pipelines.split(",") if p]
    if args.perf and not shutil.which("perf"):
        run_all.log("redis_bench: no perf: system calls not counted")
        args.perf = False
    if args.reps < 1 or not args.pipelines or args.seconds <= 0:
        parser.error("--reps >= 1, --pipelines and --seconds > 0 needed")
    return args


def build(args):
    bazel = run_all.Bazel(args)
    if not args.no_build and not bazel.build([TARGET]):
        sys.exit("redis_bench: build failed")
    # Not the bazel-bin symlink: it follows the last build of any config.
    path = run_all.binary_path(bazel.bin_dir(), TARGET)
    if not path.exists():
        sys.exit(f"redis_bench: {path} does not exist (build {TARGET} with "
                 "--config=opt, or drop --no-build)")
    return path


def start_redis(args):
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis_bench: redis-server not found "
                 "(apt-get install redis-server; tools/bootstrap.sh does)")
    port = run_all.free_port()
    server = run_all.Server(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no"], args.server_cpu)
    if not server.wait_ready(timeout=15, fixed_port=port):
        sys.exit("redis_bench: redis-server did not start: "
                 + server.describe_failure())
    return server


PERF_EVENTS = {  # perf stat event -> result key
    "raw_syscalls:sys_enter": "syscalls",
    "syscalls:sys_enter_write": "writes",
    "syscalls:sys_enter_writev": "writes",
    "syscalls:sys_enter_sendto": "writes",
    "syscalls:sys_enter_sendmsg": "writes",
}


def perf_counts(path):
    """{"syscalls": n, "writes": n} from a `perf stat -x,` output file."""
    counts = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return counts
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[0].strip().isdigit():
            key = PERF_EVENTS.get(fields[2])
            if key:
                counts[key] = counts.get(key, 0) + int(fields[0])
    return counts


def run_client(binary, server, client, pipeline, args):
    perf_file = None
    perf = []
    if args.perf:
        perf_file = tempfile.NamedTemporaryFile(suffix=".perf", delete=False)
        perf_file.close()
        perf = ["perf", "stat", "-x,", "-o", perf_file.name, "-e",
                ",".join(PERF_EVENTS), "--"]
    load = [str(binary), f"--client={client}", f"--port={server.port}",
            f"--pipeline={pipeline}", f"--connections={args.connections}",
            f"--seconds={args.seconds}", f"--warmup={args.warmup}"]
    rc, out, err, util = run_all.run_measured(
        run_all.pin(args.client_cpu) + perf + load, server,
        timeout=args.seconds + args.warmup + 60)
    result = {"ok": False,
              "cmd": shlex.join(run_all.pin(args.client_cpu) + load)}
    try:
        result.update(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        result["error"] = (err.strip() or out.strip() or f"exit {rc}")[-300:]
        return result
    result["ok"] = rc == 0 and result.get("errors") == 0
    if perf_file is not None:
        counts = perf_counts(perf_file.name)
        os.unlink(perf_file.name)
        total = result.get("all_requests")
        for key, value in counts.items():
            if total:
                result[key + "_per_request"] = value / total
    rate = result.get("requests_per_s")
    if util is not None and rate:
        # redis-server's CPU per wall second over the client's whole run
        # (warmup included) per request at the measured rate.
        result["server_us_per_request"] = util * 1e6 / rate
    return result


def measure(binary, server, args):
    runs = {(c, p): [] for c in CLIENTS for p in args.pipelines}
    for rep in range(args.reps):
        order = CLIENTS[rep % len(CLIENTS):] + CLIENTS[:rep % len(CLIENTS)]
        for pipeline in args.pipelines:
            for client in order:
                result = run_client(binary, server, client, pipeline, args)
                runs[(client, pipeline)].append(result)
                if result["ok"]:
                    log(f"rep {rep + 1}/{args.reps} {client} pipeline "
                        f"{pipeline}: {result['requests_per_s']:,.0f} req/s, "
                        f"{result['cpu_us_per_request']:.3f} µs CPU/req")
                else:
                    log(f"rep {rep + 1}/{args.reps} {client} pipeline "
                        f"{pipeline}: FAILED: {result.get('error')}")
                if not server.alive():
                    sys.exit("redis_bench: redis-server died: "
                             + server.describe_failure())
    return runs


def cell(runs, key, digits):
    value = run_all.median_of(runs, key)
    if value is None:
        return "failed"
    spread = run_all.spread_pct(runs, key)
    text = f"{value:,.{digits}f}"
    return text + (f" ±{spread / 2:.0f}%" if spread is not None else "")


def ratio(runs, base_runs, key):
    value = run_all.median_of(runs, key)
    base = run_all.median_of(base_runs, key)
    return run_all.fmt_ratio(value, base)


def report(runs, args):
    load = " / ".join(f"{a:.1f}" for a in args.loadavg)
    lines = [f"## Redis-protocol client{' — ' + args.label if args.label else ''}",
             "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"load average before / after: {load} (other builds ran on the "
             "machine when it was high).",
             "",
             f"GET of a 16-byte value, {args.connections} connection(s), "
             f"{args.reps} interleaved reps of {args.seconds:g} s after "
             f"{args.warmup:g} s warmup, medians (± half the spread), "
             f"//bench:redis_load built with --config=opt; "
             f"redis-server {redis_version()} on CPU {args.server_cpu}, "
             f"the client on CPU {args.client_cpu}.",
             "",
             "| pipeline | client | requests/s | vs batched | vs hiredis | "
             "client CPU µs/req | vs batched | vs hiredis | "
             "server CPU µs/req | client syscalls/req | writes/req |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for pipeline in args.pipelines:
        batched = runs[("mill_batched", pipeline)]
        hiredis = runs[("hiredis", pipeline)]
        for client in CLIENTS:
            r = runs[(client, pipeline)]
            lines.append(
                f"| {pipeline} | {client} | {cell(r, 'requests_per_s', 0)} | "
                f"{ratio(r, batched, 'requests_per_s')} | "
                f"{ratio(r, hiredis, 'requests_per_s')} | "
                f"{cell(r, 'cpu_us_per_request', 3)} | "
                f"{ratio(r, batched, 'cpu_us_per_request')} | "
                f"{ratio(r, hiredis, 'cpu_us_per_request')} | "
                f"{cell(r, 'server_us_per_request', 3)} | "
                f"{cell(r, 'syscalls_per_request', 2)} | "
                f"{cell(r, 'writes_per_request', 2)} |")
        per_send = runs[("mill_per_send", pipeline)]
        rate = run_all.median_of(per_send, "requests_per_s")
        cpu = run_all.median_of(per_send, "cpu_us_per_request")
        checks = []
        for name, base in (("batched", batched), ("hiredis", hiredis)):
            base_rate = run_all.median_of(base, "requests_per_s")
            base_cpu = run_all.median_of(base, "cpu_us_per_request")
            if None in (rate, cpu, base_rate, base_cpu):
                checks.append(f"vs {name}: no figure")
                continue
            ok = rate >= base_rate and cpu <= base_cpu
            checks.append(f"vs {name} {'met' if ok else 'NOT met'}")
        verdicts.append(f"pipeline {pipeline}: " + ", ".join(checks))
    lines += ["",
              "Target (issue #18): mill_per_send at least the rate and at "
              "most the client CPU per request of mill_batched and of "
              "hiredis — " + "; ".join(verdicts) + ".",
              "",
              "Command: `python3 bench/redis_bench.py"
              + (f" --reps={args.reps}" if args.reps != 3 else "")
              + (f" --seconds={args.seconds:g}" if args.seconds != 5 else "")
              + (" --pipelines=" + ",".join(map(str, args.pipelines))
                 if args.pipelines != [16, 128] else "")
              + (f" --connections={args.connections}"
                 if args.connections != 1 else "")
              + (" --output=docs/BENCHMARKS.md" if args.output else "")
              + (f" --label={shlex.quote(args.label)}" if args.label else "")
              + (f" --section={args.section}" if args.section != "redis"
                 else "")
              + "`; one client run: `" + runs_example(runs) + "`."]
    failed = [r for rs in runs.values() for r in rs if not r["ok"]]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed, e.g.: "
                  + str(failed[0].get("error"))]
    return "\n".join(lines) + "\n"


def runs_example(runs):
    for rs in runs.values():
        for r in rs:
            cmd = r["cmd"].split()
            # The binary's path is Bazel's; name the target instead.
            return " ".join("bazel-bin/bench/redis_load" if "redis_load" in a
                            else a for a in cmd if not a.startswith("--port"))
    return ""


def redis_version():
    try:
        out = subprocess.run(["redis-server", "--version"], text=True,
                             stdout=subprocess.PIPE, timeout=10).stdout
        return out.split("v=")[1].split()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "(version unknown)"


def main(argv):
    args = parse_args(argv)
    binary = build(args)
    server = start_redis(args)
    args.loadavg = [os.getloadavg()[0]]
    try:
        runs = measure(binary, server, args)
    finally:
        server.stop()
    args.loadavg.append(os.getloadavg()[0])
    text = report(runs, args)
    sys.stdout.write(text)
    if args.output:
        run_all.write_section(Path(args.output), args.section, text)
        log(f"wrote the section to {args.output}")
    ok = all(r["ok"] for rs in runs.values() for r in rs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
