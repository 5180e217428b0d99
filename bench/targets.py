#!/usr/bin/env python3
"""Checks every component's performance target against its baseline.

One command, from the repository root:

    python3 bench/targets.py          # builds with --config=opt, runs, writes
    python3 bench/targets.py --no-build --reuse=DIR   # re-render saved JSON

Each target compares a Mill-IO benchmark with the baseline in the same
binary and the same run (Google Benchmark, 3 repetitions, median), and is
reported as a ratio. The table replaces the section between
`<!-- BEGIN targets -->` and `<!-- END targets -->` of docs/BENCHMARKS.md;
raw JSON goes to docs/bench/micro/*.json.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCHMARKS = [
    "//threadpool:thread_pool_benchmark",
    "//objectpool:buffer_pool_benchmark",
    "//poll:poll_benchmark",
    "//registry:registry_benchmark",
    "//reactor:event_loop_benchmark",
    "//reactor:loop_timer_accuracy_benchmark",
    "//timer:timing_wheel_benchmark",
    "//ratelimit:ratelimit_benchmark",
]


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def binary_path(label, bin_dir):
    package, name = label[2:].split(":")
    return os.path.join(bin_dir, package, name)


def load(results, name):
    """Median entries of one benchmark binary, by run_name."""
    out = {}
    for b in results[name]["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        out[b.get("run_name", b["name"])] = b
    return out


def find(entries, pattern):
    for key, value in entries.items():
        if re.fullmatch(pattern, key):
            return value
    raise KeyError(pattern)


def rate(b):
    return b.get("items_per_second") or 1e9 / b["real_time"]


def time_ns(b, field="cpu_time"):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
    return b[field] * scale


def verdict(ok):
    return "met" if ok else "**missed**"


def rows(results):
    out = []

    def add(issue, what, candidate, baseline, ratio, target, ok):
        out.append((issue, what, candidate, baseline, "%.2fx" % ratio, target,
                    verdict(ok)))

    tp = load(results, "thread_pool_benchmark")
    for producers in (1, 2):
        mine = rate(find(tp, r"BM_Throughput<ThreadPool>/producers:%d.*" % producers))
        base = rate(find(tp, r"BM_Throughput<BaselinePool>/producers:%d.*" % producers))
        add("#2", "thread pool, %d producer(s), empty tasks" % producers,
            "%.1f M tasks/s" % (mine / 1e6), "%.1f M/s (mutex+cv+deque)" % (base / 1e6),
            mine / base, ">= 2x" if producers == 2 else "(info)",
            mine / base >= 2 or producers == 1)

    bp = load(results, "buffer_pool_benchmark")
    for threads in (1, 2):
        pool = time_ns(find(bp, r"BM_BufferPool/threads:%d" % threads))
        for base_name, label in (("BM_Malloc", "malloc/free"), ("BM_NewArray", "new[]/delete[]")):
            base = time_ns(find(bp, r"%s/threads:%d" % (base_name, threads)))
            target = ">= 3x" if (threads == 1 and base_name == "BM_Malloc") else "(info)"
            add("#2", "8 KiB buffer acquire+release, %d thread(s)" % threads,
                "%.1f ns" % pool, "%.1f ns (%s)" % (base, label), base / pool,
                target, target == "(info)" or base / pool >= 3)

    pl = load(results, "poll_benchmark")
    for fds, ready in ((1, 1), (1000, 10)):
        for timeout, tname in ((0, "zero timeout"), (1, "blocking"), (2, "1 s timeout")):
            base = time_ns(find(pl, r"BM_BareEpollWait/fds:%d/ready:%d/timeout:%d" % (fds, ready, timeout)))
            mine = time_ns(find(pl, r"BM_PollerPoll/backend:0/fds:%d/ready:%d/timeout:%d" % (fds, ready, timeout)))
            other = time_ns(find(pl, r"BM_PollerPoll/backend:1/fds:%d/ready:%d/timeout:%d" % (fds, ready, timeout)))
            add("#3", "poll round trip, %d registered / %d ready, %s" % (fds, ready, tname),
                "%.0f ns epoll (poll(2): %.0f ns)" % (mine, other),
                "%.0f ns bare epoll_wait" % base, mine / base, "<= 1.10x",
                mine / base <= 1.10)

    el = load(results, "event_loop_benchmark")
    for pairs in (1, 16):
        bare = rate(find(el, r"BM_BareEpoll/pairs:%d/real_time" % pairs))
        direct = rate(find(el, r"BM_EventLoopDirect/pairs:%d/workers:1/real_time" % pairs))
        pool = rate(find(el, r"BM_EventLoopPool/pairs:%d/workers:1/real_time" % pairs))
        add("#4", "ping-pong, %d socketpair(s), direct mode" % pairs,
            "%.0f k rt/s" % (direct / 1e3), "%.0f k rt/s bare epoll" % (bare / 1e3),
            direct / bare, ">= 0.9x", direct / bare >= 0.9)
        add("#4", "ping-pong, %d socketpair(s), pool mode (1 worker)" % pairs,
            "%.0f k rt/s" % (pool / 1e3), "%.0f k rt/s bare epoll" % (bare / 1e3),
            pool / bare, ">= 0.5x", pool / bare >= 0.5)

    rg = load(results, "registry_benchmark")
    for threads in (1, 2):
        base = rate(find(rg, r"BM_MutexUnorderedMapFind/real_time/threads:%d" % threads))
        for shards in (16, 1):
            mine = rate(find(rg, r"BM_RegistryFind<%d>/real_time/threads:%d" % (shards, threads)))
            add("#4", "registry lookups, %d thread(s), %d shard(s)" % (threads, shards),
                "%.1f M/s" % (mine / 1e6), "%.1f M/s (unordered_map + mutex)" % (base / 1e6),
                mine / base, "(measure)", True)

    tw = load(results, "timing_wheel_benchmark")
    for bench in ("BM_InsertCancel", "BM_InsertCancelInOrder", "BM_Rearm", "BM_InsertFire"):
        wheel = time_ns(find(tw, r"%s<WheelQueue>.*" % bench))
        heap = time_ns(find(tw, r"%s<HeapSet>.*" % bench))
        target = ">= 3x" if bench == "BM_InsertCancel" else "(info)"
        add("#5", "timers: %s, 1M timers" % bench[3:],
            "%.1f ms wheel" % (wheel / 1e6), "%.1f ms heap + lazy deletion" % (heap / 1e6),
            heap / wheel, target, target == "(info)" or heap / wheel >= 3)

    acc = load(results, "loop_timer_accuracy_benchmark")
    base = find(acc, r"BM_SleepUntilThread.*")
    for mode, name in ((0, "direct"), (1, "pool")):
        b = find(acc, r"BM_EventLoop/mode:%d.*" % mode)
        out.append(("#5", "timer lateness on the loop, %s mode (20k timers)" % name,
                    "median %.0f us, p99 %.0f us, early %d" % (b["median_us"], b["p99_us"], b["early"]),
                    "sleep_until thread: median %.0f us, p99 %.0f us" % (base["median_us"], base["p99_us"]),
                    "-", "never early, ~1 ms", verdict(b["early"] == 0 and b["median_us"] < 1000)))

    rl = load(results, "ratelimit_benchmark")
    for scenario in ("kGrantSteady", "kGrantFixed", "kRefuseSteady"):
        for threads in (1, 2):
            mine = rate(find(rl, r"BM_TryAcquire<TokenBucket, %s>/real_time/threads:%d" % (scenario, threads)))
            base = rate(find(rl, r"BM_TryAcquire<MutexTokenBucket, %s>/real_time/threads:%d" % (scenario, threads)))
            add("#5", "TryAcquire %s, %d thread(s)" % (scenario[1:], threads),
                "%.1f M/s" % (mine / 1e6), "%.1f M/s (mutex bucket)" % (base / 1e6),
                mine / base, "(measure)", True)
    return out


def fairness(results):
    el = load(results, "event_loop_benchmark")
    lines = ["| read budget per event | ping round trips/s | firehose MB/s |",
             "|---|---|---|"]
    for budget, label in ((0, "until EAGAIN"), (4096, "4 KiB"), (65536, "64 KiB (default)"),
                          (1048576, "1 MiB")):
        b = find(el, r"BM_ReadBudgetFairness/budget:%d/real_time" % budget)
        lines.append("| %s | %.0f | %.0f |" % (label, rate(b), b.get("firehose_MBps", 0)))
    return "\n".join(lines)


def render(results, command):
    table = ["| issue | what | Mill-IO | baseline (same binary, same run) | ratio | target | |",
             "|---|---|---|---|---|---|---|"]
    for r in rows(results):
        table.append("| " + " | ".join(r) + " |")
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "\n".join([
        "<!-- BEGIN targets -->",
        "## Component targets",
        "",
        "Produced by `%s` on %s (%s, %d cores, %s). Google Benchmark, 3 "
        "repetitions, medians; every ratio compares two benchmarks of one binary "
        "run side by side. Ratios > 1 mean Mill-IO is faster (for the poller: "
        "Mill-IO time / bare time, lower is better)." % (
            command, datetime.date.today().isoformat(), cpu, os.cpu_count(),
            platform.release()),
        "",
        "\n".join(table),
        "",
        "### Read budget (guarantee 7)",
        "",
        "`//reactor:event_loop_benchmark` BM_ReadBudgetFairness: one source "
        "written as fast as a thread can, one ping source, direct mode. With "
        "no budget the busy handler can read for milliseconds and the ping "
        "waits; a budget bounds that delay. 64 KiB keeps ping latency near "
        "the 4 KiB figure while reading the busy source in large chunks.",
        "",
        fairness(results),
        "<!-- END targets -->",
    ])


def replace_section(path, section):
    text = open(path).read() if os.path.exists(path) else "# Mill-IO benchmarks\n"
    begin, end = "<!-- BEGIN targets -->", "<!-- END targets -->"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--reuse", help="read saved JSON from this folder")
    parser.add_argument("--min-time", default="0.3")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    args = parser.parse_args()
    raw_dir = args.reuse or os.path.join(ROOT, "docs", "bench", "micro")
    os.makedirs(raw_dir, exist_ok=True)
    results = {}
    if not args.reuse:
        if not args.no_build:
            run(["./bazelw", "build", "--config=opt"] + BENCHMARKS)
        bin_dir = subprocess.run(["./bazelw", "info", "--config=opt", "bazel-bin"],
                                 cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout.strip()
        for label in BENCHMARKS:
            name = label.split(":")[1]
            print("running", label, file=sys.stderr)
            out = subprocess.run(
                [binary_path(label, bin_dir), "--benchmark_format=json",
                 "--benchmark_min_time=" + args.min_time,
                 "--benchmark_repetitions=3",
                 "--benchmark_report_aggregates_only=true"],
                cwd=ROOT, check=True, capture_output=True, text=True).stdout
            with open(os.path.join(raw_dir, name + ".json"), "w") as f:
                f.write(out)
    for label in BENCHMARKS:
        name = label.split(":")[1]
        with open(os.path.join(raw_dir, name + ".json")) as f:
            results[name] = json.load(f)
    section = render(results, "python3 bench/targets.py")
    replace_section(args.output, section)
    print(section)


if __name__ == "__main__":
    main()
