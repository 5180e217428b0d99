#!/usr/bin/env python3
"""The reverse proxy (//examples/proxy:proxy) against nginx, and pooled vs
new upstream connections. A benchmark, not a test.

One command, from the repository root:

    python3 bench/proxy_bench.py            # 3 runs of 5 s each (~4 min)
    python3 bench/proxy_bench.py --quick    # 1 run of 2 s (smoke test)

Both proxies stand in front of the same fast upstream, the bare-epoll hello
server //bench/peers:http_epoll (a fixed 13-byte response), and get the same
load, `wrk -t1 -c100 --latency` (keep-alive), the way bench/run_all.py
measures servers:

  * the proxy under test is pinned to CPU 0 (taskset), alone;
  * wrk and the upstream share CPU 1 (the machine has two cores; the
    upstream is the cheapest HTTP server in the tree, and it is the same for
    every contender, so it shifts both sides alike);
  * nginx is Debian's (tools/bootstrap.sh installs nginx-light): one worker,
    `upstream { server 127.0.0.1:P; keepalive N; }`, `proxy_http_version
    1.1; proxy_set_header Connection "";`, access log off, with N = 32 (the
    issue's reference configuration) and N = 128; its CPU is the worker
    process's;
  * the Mill-IO proxy runs with --mode=direct (one loop thread, like nginx's
    one worker) with --max_idle_upstream=32 and 128 (its default), with 32
    idle and --max_upstream_connections=32 (requests beyond wait in the
    pool's queue), and with --mode=pool --workers=1; its CPU is the whole
    process's (every thread).

With 100 clients, a pool that keeps 32 idle connections closes and reopens
upstream connections all the time (both proxies do), so the idle pool size
matters more than anything else: each Mill-IO entry is compared with nginx
at keepalive 32 and with nginx at the same pool size.

Reported per contender: requests/s, p50 latency, server CPU per request
(CPU seconds used during the run / requests) and upstream connects per
request, with ratios to nginx.
Then the same proxy with --upstream_keepalive=false (a new upstream
connection per request, "Connection: close" upstream) against the pooled
default: p50 latency and requests/s. The medians of --runs runs (servers
interleaved) replace the section between `<!-- BEGIN proxy -->` and
`<!-- END proxy -->` of docs/BENCHMARKS.md, with the command line.

Options: --runs, --duration, --warmup, --server-cpu=0, --client-cpu=1,
--no-build, --output=FILE, --output_base=DIR, --bazel-arg=FLAG (as in
run_all.py). Needs taskset, wrk, nginx (/usr/sbin/nginx), python3.
"""

import argparse
import datetime
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_all  # noqa: E402  (the shared harness: Bazel, Server, wrk parsing)

ROOT = run_all.ROOT
PROXY = "//examples/proxy:proxy"
UPSTREAM = "//bench/peers:http_epoll"
CONNECTIONS = 100
NGINX_32 = "nginx, keepalive 32"
NGINX_128 = "nginx, keepalive 128"
MILL_32 = "Mill-IO proxy, direct, 32 idle"
MILL_32_CAPPED = "Mill-IO proxy, direct, 32 connections at most"
MILL_128 = "Mill-IO proxy, direct, 128 idle (default)"
MILL_POOL = "Mill-IO proxy, pool 1 worker, 128 idle"
MILL_FRESH = "Mill-IO proxy, direct, no upstream keep-alive"


def active_opens():
    """TCP active opens of the whole machine (/proc/net/snmp)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Tcp:")]
        return int(rows[1][rows[0].index("ActiveOpens")])
    except (OSError, IndexError, ValueError):
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_accepting(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Nginx:
    """Debian's nginx as a reverse proxy with an upstream keep-alive pool."""

    def __init__(self, upstream_port, keepalive, cpu):
        self.tmp = Path(tempfile.mkdtemp(prefix="proxy-bench-nginx-"))
        (self.tmp / "logs").mkdir()
        self.port = free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/logs/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  client_body_temp_path {self.tmp}/body;
  proxy_temp_path {self.tmp}/proxy;
  fastcgi_temp_path {self.tmp}/fastcgi;
  uwsgi_temp_path {self.tmp}/uwsgi;
  scgi_temp_path {self.tmp}/scgi;
  upstream backend {{
    server 127.0.0.1:{upstream_port};
    keepalive {keepalive};
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            run_all.pin(cpu) + [nginx, "-p", str(self.tmp), "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if not wait_accepting(self.port):
            raise RuntimeError("nginx did not start: " +
                               (self.proc.stderr.read() if self.proc.poll()
                                is not None else "no answer"))
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                              capture_output=True, text=True).stdout.split()
        self.pid = int(kids[0])  # the worker does the proxying

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


class MillProxy:
    def __init__(self, binary, upstream_port, flags, cpu):
        self.server = run_all.Server(
            [str(binary), "--port=0", f"--upstream=127.0.0.1:{upstream_port}"]
            + flags, cpu)
        if not self.server.wait_ready():
            raise RuntimeError("proxy did not start: " +
                               self.server.describe_failure())
        self.port = self.server.port
        self.pid = self.server.proc.pid  # taskset execs the proxy

    def stop(self):
        self.server.stop()


def run_wrk(port, pid, args):
    """wrk against `port`; server CPU of `pid` during the measured run."""
    url = f"http://127.0.0.1:{port}/"
    base = run_all.pin(args.client_cpu) + ["wrk", "-t1", f"-c{CONNECTIONS}"]
    if args.warmup > 0:
        subprocess.run(base + [f"-d{max(1, round(args.warmup))}s", url],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=args.warmup + 60)
    cmd = base + [f"-d{max(1, round(args.duration))}s", "--latency", url]
    before_cpu = run_all.cpu_seconds(pid)
    before_opens = active_opens()
    before = time.monotonic()
    result = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            timeout=args.duration + 60)
    wall = time.monotonic() - before
    after_cpu = run_all.cpu_seconds(pid)
    after_opens = active_opens()
    data = run_all.parse_wrk(result.stdout)
    if result.returncode != 0 or not data.get("requests"):
        return {"ok": False,
                "error": (result.stderr.strip() or result.stdout.strip())[-200:]}
    cpu = (after_cpu - before_cpu) if None not in (before_cpu,
                                                   after_cpu) else None
    if None not in (before_opens, after_opens):
        # wrk's own connections are active opens too.
        data["connects_per_request"] = max(
            0, after_opens - before_opens - CONNECTIONS) / data["requests"]
    data.update(ok=True, wall=wall, server_cpu_s=cpu,
                cpu_per_request_us=(cpu / data["requests"] * 1e6
                                    if cpu is not None else None),
                utilization=(cpu / wall if cpu is not None else None))
    return data


def median(runs, key):
    values = [r[key] for r in runs if r.get("ok") and r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0, suffix=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def ratio(value, base, digits=2):
    if value is None or not base:
        return "n/a"
    return f"{value / base:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
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
    command = "python3 bench/proxy_bench.py" + "".join(
        " " + shlex.quote(a) for a in sys.argv[1:])

    for tool in ("taskset", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"proxy_bench: {tool} not found (tools/bootstrap.sh)")
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        sys.exit("proxy_bench: nginx not found: run tools/bootstrap.sh "
                 "(installs Debian's nginx-light)")

    bazel = run_all.Bazel(args)
    if not args.no_build and not bazel.build([PROXY, UPSTREAM]):
        sys.exit("proxy_bench: build failed")
    bin_dir = bazel.bin_dir()
    proxy_bin = run_all.binary_path(bin_dir, PROXY)
    upstream_bin = run_all.binary_path(bin_dir, UPSTREAM)

    upstream = run_all.Server([str(upstream_bin), "--port=0"],
                              args.client_cpu)
    if not upstream.wait_ready():
        sys.exit("proxy_bench: upstream did not start: " +
                 upstream.describe_failure())
    up = upstream.port

    direct = ["--mode=direct", "--workers=1"]
    # (name, start, nginx entry with the same idle pool or None)
    contenders = [
        (NGINX_32, lambda: Nginx(up, 32, args.server_cpu), None),
        (NGINX_128, lambda: Nginx(up, 128, args.server_cpu), None),
        (MILL_32, lambda: MillProxy(proxy_bin, up, direct +
                                    ["--max_idle_upstream=32"],
                                    args.server_cpu), NGINX_32),
        (MILL_32_CAPPED, lambda: MillProxy(
            proxy_bin, up, direct + ["--max_idle_upstream=32",
                                     "--max_upstream_connections=32"],
            args.server_cpu), NGINX_32),
        (MILL_128, lambda: MillProxy(proxy_bin, up, direct +
                                     ["--max_idle_upstream=128"],
                                     args.server_cpu), NGINX_128),
        (MILL_POOL, lambda: MillProxy(
            proxy_bin, up, ["--mode=pool", "--workers=1",
                            "--max_idle_upstream=128"], args.server_cpu),
         NGINX_128),
        (MILL_FRESH, lambda: MillProxy(
            proxy_bin, up, direct + ["--upstream_keepalive=false"],
            args.server_cpu), None),
    ]
    results = {name: [] for name, _, _ in contenders}
    load_before = os.getloadavg()
    try:
        for run in range(args.runs):
            for name, start, _ in contenders:
                run_all.log(f"[{run + 1}/{args.runs}] {name}")
                server = start()
                try:
                    data = run_wrk(server.port, server.pid, args)
                finally:
                    server.stop()
                if not data.get("ok"):
                    run_all.log(f"  failed: {data.get('error')}")
                elif data.get("errors"):
                    run_all.log(f"  {data['errors']} errors")
                results[name].append(data)
                run_all.log(
                    f"  {fmt(data.get('requests_per_s'))} req/s, p50 "
                    f"{fmt(data.get('p50_us'))} us, "
                    f"{fmt(data.get('cpu_per_request_us'), 2)} us CPU/req, "
                    f"{fmt(data.get('connects_per_request'), 3)} upstream "
                    "connects/req")
    finally:
        upstream.stop()
    load_after = os.getloadavg()

    def med(name, key):
        return median(results[name], key)

    lines = [
        "## Reverse proxy: Mill-IO proxy vs nginx",
        "",
        f"Generated by `{command}` on "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"(median of {args.runs} run(s) of {args.duration:g} s after a "
        f"{args.warmup:g} s warm-up; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after).",
        "",
        f"`wrk -t1 -c{CONNECTIONS} --latency` (keep-alive) through each "
        "proxy to the same upstream, //bench/peers:http_epoll. The proxy is "
        f"pinned to CPU {args.server_cpu}; wrk and the upstream share CPU "
        f"{args.client_cpu}. nginx: Debian's, one worker, `upstream "
        "{ server ...; keepalive N; }`, `proxy_http_version 1.1; "
        "proxy_set_header Connection \"\";`. The Mill-IO proxy keeps the "
        "same number of idle upstream connections (`--max_idle_upstream`). "
        "CPU per request is the proxy's CPU time (nginx: its worker's; "
        "Mill-IO: every thread) over the requests served. Upstream connects "
        "per request: TCP active opens during the run (/proc/net/snmp), "
        "less wrk's own, over the requests: with 100 clients and 32 idle "
        "connections kept, both proxies keep closing and reopening upstream "
        "connections, which dominates their cost. \"32 connections at most\" "
        "adds `--max_upstream_connections=32`: the proxy then never opens "
        "more than it keeps, and a request finding all 32 busy waits in the "
        "pool's bounded queue for the next one released (nginx without its "
        "commercial `queue` directive cannot wait: with `max_conns` it "
        "answers 502).",
        "",
        "| proxy | requests/s | vs nginx keepalive 32 | vs nginx, same "
        "pool | p50 latency | server CPU per request | vs nginx keepalive "
        "32 | vs nginx, same pool | upstream connects per request | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, peer in contenders:
        runs = results[name]
        rps = med(name, "requests_per_s")
        cpu = med(name, "cpu_per_request_us")
        errors = sum(r.get("errors", 0) for r in runs if r.get("ok"))
        failed = sum(1 for r in runs if not r.get("ok"))
        lines.append(
            f"| {name} | {fmt(rps)} | {ratio(rps, med(NGINX_32, 'requests_per_s'))} | "
            f"{ratio(rps, med(peer, 'requests_per_s')) if peer else '—'} | "
            f"{fmt(med(name, 'p50_us'))} µs | {fmt(cpu, 2)} µs | "
            f"{ratio(cpu, med(NGINX_32, 'cpu_per_request_us'))} | "
            f"{ratio(cpu, med(peer, 'cpu_per_request_us')) if peer else '—'} | "
            f"{fmt(med(name, 'connects_per_request'), 3)} | {errors}"
            f"{f' ({failed} runs failed)' if failed else ''} |")

    def verdict(ok):
        return "met" if ok else "missed"

    def target_line(mill, nginx):
        m_cpu, n_cpu = med(mill, "cpu_per_request_us"), med(
            nginx, "cpu_per_request_us")
        m_rps, n_rps = med(mill, "requests_per_s"), med(nginx,
                                                        "requests_per_s")
        return (f"- {mill} vs {nginx}: CPU per request "
                f"{ratio(m_cpu, n_cpu)} of nginx's "
                f"({verdict(m_cpu and n_cpu and m_cpu <= n_cpu)}), "
                f"requests/s {ratio(m_rps, n_rps)} of nginx's "
                f"({verdict(m_rps and n_rps and m_rps >= n_rps)}).")

    p_p50, f_p50 = med(MILL_128, "p50_us"), med(MILL_FRESH, "p50_us")
    p_rps, f_rps = (med(MILL_128, "requests_per_s"),
                    med(MILL_FRESH, "requests_per_s"))
    lines += [
        "",
        "Targets (issue 10: CPU per request at most nginx's, requests/s at "
        "least nginx's):",
        "",
        target_line(MILL_32, NGINX_32),
        target_line(MILL_32_CAPPED, NGINX_32),
        target_line(MILL_128, NGINX_128),
        target_line(MILL_128, NGINX_32),
        "",
        "### Pooled vs a new upstream connection per request (same proxy, "
        "direct mode)",
        "",
        "| upstream connections | requests/s | p50 latency |",
        "|---|---:|---:|",
        f"| pooled (keep-alive, 128 idle) | {fmt(p_rps)} | {fmt(p_p50)} µs |",
        f"| new per request (`--upstream_keepalive=false`) | {fmt(f_rps)} | "
        f"{fmt(f_p50)} µs |",
        "",
        f"Reuse cuts p50 latency to {ratio(p_p50, f_p50)} of a new "
        f"connection per request (target: 0.5 or less, "
        f"{verdict(p_p50 and f_p50 and p_p50 <= 0.5 * f_p50)})"
        f" and gives {ratio(p_rps, f_rps)}x the requests/s.",
    ]
    run_all.write_section(Path(args.output), "proxy", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
