#!/usr/bin/env python3
"""UDP: //examples:udp_echo against a libuv UDP echo and a bare
recvmmsg/sendmmsg epoll floor, and UdpSocket bulk transfer with and without
GSO/GRO. A benchmark, not a test.

One command, from the repository root:

    python3 bench/udp_bench.py            # 5 runs of 4 s each (~3 min)
    python3 bench/udp_bench.py --quick    # 1 run of 2 s (smoke test)

Echo: each server is pinned to CPU 0 (taskset), the load generator
(//bench:udp_load --mode=echo) to CPU 1: 100 connected UDP sockets, each
keeping 4 datagrams of 64 B (then 1 KiB) in flight, every answer checked
(sender and sequence number) and followed by a new datagram. Reported: the
server's CPU time per echoed datagram (utime + stime of the whole process
over the measured seconds, divided by the datagrams answered in them),
datagrams/s, and the ratios to libuv and to the floor. The servers:

  * udp_echo --mode=direct (one loop thread), and --mode=pool --workers=1;
    batches of 32 (recvmmsg), each batch answered with one sendmmsg;
  * //bench/peers:udp_echo_libuv: libuv (Debian's libuv1, 1.44) with
    UV_UDP_RECVMMSG (libuv receives up to 20 per recvmmsg), each datagram
    answered with uv_udp_try_send (libuv has no batched send);
  * //bench/peers:udp_echo_epoll: recvmmsg of 32 and one sendmmsg, nothing
    else: the floor.

Bulk: one sender (//bench:udp_load --mode=bulk, CPU 1) sends 1,400-byte
datagrams as fast as it can to a UdpSocket sink (--mode=sink, CPU 0), 64 per
call: with GSO, SendSegmented (one sendmsg with UDP_SEGMENT) to a sink with
UDP_GRO; without, SendBatch (one sendmmsg) to a plain sink. Reported:
datagrams received per CPU-second of the sink, and of sink + sender, and the
gain.

Servers are interleaved within each run; medians of --runs runs (with the
spread, max - min over the median) replace the section between
`<!-- BEGIN udp -->` and `<!-- END udp -->` of docs/BENCHMARKS.md, with the
command line. Options: --runs, --duration, --warmup, --server-cpu=0,
--client-cpu=1, --no-build, --output=FILE, --output_base=DIR,
--bazel-arg=FLAG (as in run_all.py). Needs taskset and python3.
"""

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_all  # noqa: E402  (the shared harness: Bazel, Server, medians)

ROOT = run_all.ROOT
UDP_ECHO = "//examples:udp_echo"
LOAD = "//bench:udp_load"
LIBUV = "//bench/peers:udp_echo_libuv"
FLOOR = "//bench/peers:udp_echo_epoll"
SENDERS = 100
WINDOW = 4
SIZES = (64, 1024)
BULK_SIZE = 1400

MILL_DIRECT = "udp_echo, direct"
MILL_POOL = "udp_echo, pool 1 worker"
UV = "libuv (UV_UDP_RECVMMSG)"
EPOLL = "epoll recvmmsg/sendmmsg floor"


def log(message):
    print(message, file=sys.stderr, flush=True)


def measure_echo(server, load_bin, size, args):
    """One echo measurement: (datagrams/s, server µs per datagram) or None."""
    cmd = run_all.pin(args.client_cpu) + [
        str(load_bin), "--mode=echo", f"--port={server.port}",
        f"--senders={SENDERS}", f"--window={WINDOW}", f"--size={size}",
        f"--duration={args.duration}", f"--warmup={args.warmup}"]
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(args.warmup)
    cpu0 = run_all.cpu_seconds(server.proc.pid)
    time.sleep(args.duration)
    cpu1 = run_all.cpu_seconds(server.proc.pid)
    out, err = load.communicate(timeout=args.duration + args.warmup + 30)
    if load.returncode != 0 or cpu0 is None or cpu1 is None:
        log(f"  load failed ({load.returncode}): {err.strip()[-200:]}")
        return None
    result = json.loads(out.strip().splitlines()[-1])
    datagrams = result["datagrams"]
    if datagrams <= 0:
        return None
    return {"ok": True, "rate": result["per_s"],
            "us": 1e6 * (cpu1 - cpu0) / datagrams,
            "refills": result["refills"]}


def run_bulk(load_bin, gso, args):
    """One bulk measurement with (gso=True) or without GSO/GRO."""
    flag = "true" if gso else "false"
    sink = run_all.Server([str(load_bin), "--mode=sink", f"--gro={flag}"],
                          args.server_cpu)
    if not sink.wait_ready():
        log("  sink did not start: " + sink.describe_failure())
        return None
    cpu0 = run_all.cpu_seconds(sink.proc.pid)
    sender = subprocess.run(
        run_all.pin(args.client_cpu) + [
            str(load_bin), "--mode=bulk", f"--port={sink.port}",
            f"--gso={flag}", f"--size={BULK_SIZE}",
            f"--duration={args.duration}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=args.duration + 30)
    cpu1 = run_all.cpu_seconds(sink.proc.pid)
    sink.proc.send_signal(2)
    out, _ = sink.proc.communicate(timeout=20)
    if sender.returncode != 0:
        log("  bulk sender failed: " + sender.stderr.strip()[-200:])
        return None
    lines = [line for line in (sink.tail + out.splitlines())
             if line.startswith("{")]
    if not lines:
        return None
    received = json.loads(lines[-1])["received"]
    sent = json.loads(sender.stdout.strip().splitlines()[-1])
    sink_cpu = cpu1 - cpu0
    total_cpu = sink_cpu + sent["cpu"]
    return {"ok": True, "received": received, "sent": sent["sent"],
            "per_sink_cpu_s": received / sink_cpu if sink_cpu > 0 else None,
            "per_cpu_s": received / total_cpu if total_cpu > 0 else None,
            "loss": 1 - received / sent["sent"] if sent["sent"] else None}


def fmt_spread(runs, key):
    spread = run_all.spread_pct(runs, key)
    return "—" if spread is None else f"±{spread / 2:.0f}%"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 2 s, 1 s warm-up (smoke test)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs/BENCHMARKS.md"))
    parser.add_argument("--output_base", default=None)
    parser.add_argument("--bazel-arg", action="append", default=[])
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 2.0, 1.0
    command = "python3 bench/udp_bench.py" + "".join(
        " " + shlex.quote(a) for a in sys.argv[1:])
    if shutil.which("taskset") is None:
        sys.exit("udp_bench: taskset not found (util-linux)")

    bazel = run_all.Bazel(args)
    targets = [UDP_ECHO, LOAD, LIBUV, FLOOR]
    if not args.no_build and not bazel.build(targets):
        sys.exit("udp_bench: build failed")
    bin_dir = bazel.bin_dir()
    path = {t: run_all.binary_path(bin_dir, t) for t in targets}
    # //examples:udp_echo is an alias: the binary is in its package.
    path[UDP_ECHO] = bin_dir / "examples/udp/udp_echo"

    servers = {
        MILL_DIRECT: [str(path[UDP_ECHO]), "--port=0", "--mode=direct",
                      "--workers=1"],
        MILL_POOL: [str(path[UDP_ECHO]), "--port=0", "--mode=pool",
                    "--workers=1"],
        UV: [str(path[LIBUV]), "--port=0"],
        EPOLL: [str(path[FLOOR]), "--port=0"],
    }
    echo = {(name, size): [] for name in servers for size in SIZES}
    bulk = {True: [], False: []}
    for run in range(args.runs):
        log(f"run {run + 1}/{args.runs}")
        order = list(servers) if run % 2 == 0 else list(reversed(servers))
        for name in order:
            server = run_all.Server(servers[name], args.server_cpu)
            if not server.wait_ready():
                log(f"  {name} did not start: {server.describe_failure()}")
                server.stop()
                continue
            for size in SIZES:
                result = measure_echo(server, path[LOAD], size, args)
                if result:
                    echo[(name, size)].append(result)
                    log(f"  {name}, {size} B: {result['rate']:,.0f}/s, "
                        f"{result['us']:.2f} µs/datagram")
            if server.stop() != 0:
                log(f"  {name} exited non-zero: {server.describe_failure()}")
        for gso in ((True, False) if run % 2 == 0 else (False, True)):
            result = run_bulk(path[LOAD], gso, args)
            if result:
                bulk[gso].append(result)
                log(f"  bulk {'GSO/GRO' if gso else 'plain'}: "
                    f"{result['per_cpu_s']:,.0f} datagrams/CPU-s")

    lines = ["## UDP", "",
             f"Generated by `{command}` on {run_all.now_text()}; "
             f"medians of {args.runs} runs of {args.duration:g} s, "
             f"servers interleaved, server on CPU {args.server_cpu}, load on "
             f"CPU {args.client_cpu} (taskset). See the docstring of "
             "bench/udp_bench.py for the method.", "",
             f"### Echo: {SENDERS} senders, {WINDOW} datagrams in flight each",
             "",
             "| server | size | datagrams/s | server CPU µs/datagram (spread) "
             "| vs libuv | vs floor |",
             "|---|---|---|---|---|---|"]
    for size in SIZES:
        uv = run_all.median_of(echo[(UV, size)], "us")
        floor = run_all.median_of(echo[(EPOLL, size)], "us")
        for name in servers:
            runs = echo[(name, size)]
            us = run_all.median_of(runs, "us")
            lines.append(
                f"| {name} | {size} B | "
                f"{run_all.fmt_num(run_all.median_of(runs, 'rate'))} | "
                f"{run_all.fmt_num(us, 2)} ({fmt_spread(runs, 'us')}) | "
                f"{run_all.fmt_ratio(us, uv)} | "
                f"{run_all.fmt_ratio(us, floor)} |")
    lines += ["", f"### Bulk: one sender, {BULK_SIZE}-byte datagrams, 64 per "
              "call", "",
              "| | datagrams / sink CPU-s | datagrams / CPU-s (sink + "
              "sender) | received of sent |", "|---|---|---|---|"]
    for gso, label in ((True, "GSO + GRO"), (False, "plain (sendmmsg, "
                                                    "recvmmsg)")):
        runs = bulk[gso]
        loss = run_all.median_of(runs, "loss")
        lines.append(
            f"| {label} | "
            f"{run_all.fmt_num(run_all.median_of(runs, 'per_sink_cpu_s'))} "
            f"({fmt_spread(runs, 'per_sink_cpu_s')}) | "
            f"{run_all.fmt_num(run_all.median_of(runs, 'per_cpu_s'))} "
            f"({fmt_spread(runs, 'per_cpu_s')}) | "
            f"{'—' if loss is None else f'{100 * (1 - loss):.0f}%'} |")
    with_gso = run_all.median_of(bulk[True], "per_cpu_s")
    without = run_all.median_of(bulk[False], "per_cpu_s")
    sink_gain = run_all.fmt_ratio(
        run_all.median_of(bulk[True], "per_sink_cpu_s"),
        run_all.median_of(bulk[False], "per_sink_cpu_s"))
    lines += ["", f"Gain of GSO/GRO: {run_all.fmt_ratio(with_gso, without)} "
              f"datagrams per CPU-second (sink and sender), {sink_gain} per "
              "sink CPU-second."]
    run_all.write_section(Path(args.output), "udp", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
