#!/usr/bin/env python3
"""Hostile and heavy clients against http_server and nginx, side by side.

    python3 bench/abuse.py            # all three scenarios (~3 min)
    python3 bench/abuse.py --write    # and update docs/BENCHMARKS.md
    python3 bench/abuse.py --only=pipeline|download|small --no-build

Scenarios (issue 11's figures), each run against Mill-IO's http_server
(--mode=pool and --mode=direct) and Debian's nginx (one worker, sendfile on,
serving the same directory), the server pinned to CPU 0 and the clients to
CPU 1:

  * pipeline: a 200 MiB file; 4 clients each pipeline 5 requests for it and
    read nothing. Reported: the server's peak RSS growth (VmHWM delta) once
    it has done all it will. Target: under 32 MiB.
  * download: one client (curl) downloads the 200 MiB file at full speed, 3
    times. Reported: median MB/s and peak RSS growth. Target: throughput at
    least nginx's, peak growth under 32 MiB.
  * small: a 6-byte file, wrk -t1 -c100 -d5s (keep-alive). Reported:
    requests/s and server CPU per request (utime + stime of the server
    process over the run / requests). Target: CPU per request at most
    nginx's.
"""

import argparse
import datetime
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from idle_memory import raise_fd_limit, start_server  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
BIG = 200 << 20


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based) of the whole line.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def task_cpu_seconds(pid):
    """CPU of every thread of `pid` (worker threads included)."""
    return cpu_seconds(pid)


def wait_idle(pid, quiet=0.3, timeout=60):
    last = cpu_seconds(pid)
    still = time.time()
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.05)
        now = cpu_seconds(pid)
        if now != last:
            last, still = now, time.time()
        elif time.time() - still >= quiet:
            return


class Nginx:
    def __init__(self, root, cpu):
        self.tmp = Path(tempfile.mkdtemp(prefix="abuse-nginx-"))
        (self.tmp / "logs").mkdir()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        conf = self.tmp / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/logs/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  types {{ application/octet-stream bin; text/plain txt; }}
  server {{
    listen 127.0.0.1:{self.port};
    root {root};
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), nginx, "-p", str(self.tmp), "-c",
             str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                              capture_output=True, text=True).stdout.split()
        self.pid = int(kids[0])  # the worker

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Mill:
    def __init__(self, binary, root, mode, cpu):
        self.proc, self.port = start_server(
            ["taskset", "-c", str(cpu), binary, "--port=0", f"--mode={mode}",
             "--workers=2", f"--root={root}", "--date=true"])
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                              capture_output=True, text=True).stdout.split()
        # taskset execs the server: the pid is the server's.
        self.pid = self.proc.pid if not kids else int(kids[0])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def get_once(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              .encode())
    while s.recv(1 << 20):
        pass
    s.close()


def pipeline(server):
    get_once(server.port, "/small.txt")
    time.sleep(0.3)
    before = status_kib(server.pid, "VmHWM")
    clients = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        clients.append(s)
    time.sleep(0.5)
    wait_idle(server.pid)
    after = status_kib(server.pid, "VmHWM")
    for s in clients:
        s.close()
    return {"rss_growth_mib": (after - before) / 1024}


def download(server, runs=3):
    get_once(server.port, "/small.txt")
    before = status_kib(server.pid, "VmHWM")
    speeds = []
    for _ in range(runs):
        out = subprocess.run(
            ["taskset", "-c", "1", "curl", "-s", "-o", "/dev/null", "-w",
             "%{speed_download} %{size_download}",
             f"http://127.0.0.1:{server.port}/big.bin"],
            capture_output=True, text=True, check=True).stdout.split()
        if int(out[1]) != BIG:
            raise RuntimeError(f"short download: {out}")
        speeds.append(float(out[0]) / 1e6)
    after = status_kib(server.pid, "VmHWM")
    return {"mb_per_s": statistics.median(speeds),
            "rss_growth_mib": (after - before) / 1024}


def small(server, duration=5):
    subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c100", "-d1s",
                    f"http://127.0.0.1:{server.port}/small.txt"],
                   capture_output=True, check=True)
    cpu0 = cpu_seconds(server.pid)
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c100", f"-d{duration}s",
         f"http://127.0.0.1:{server.port}/small.txt"],
        capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server.pid) - cpu0
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": requests / duration,
            "cpu_us_per_request": cpu * 1e6 / requests,
            "errors": int(errors.group(1)) if errors else 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", choices=["pipeline", "download", "small"])
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    raise_fd_limit()
    if not args.no_build:
        subprocess.run([str(ROOT / "bazelw"), "build", "--config=opt",
                        "//examples/http:http_server"], check=True, cwd=ROOT)
    binary = str(ROOT / "bazel-bin/examples/http/http_server")
    site = Path(tempfile.mkdtemp(prefix="abuse-site-"))
    with open(site / "big.bin", "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(BIG >> 20):
            f.write(chunk)
    (site / "small.txt").write_text("hello\n")
    # nginx's worker runs as an unprivileged user: make the site readable.
    os.chmod(site, 0o755)
    for f in site.iterdir():
        os.chmod(f, 0o644)
    servers = [("Mill-IO pool", lambda: Mill(binary, site, "pool", 0)),
               ("Mill-IO direct", lambda: Mill(binary, site, "direct", 0)),
               ("nginx", lambda: Nginx(site, 0))]
    scenarios = [("pipeline", pipeline), ("download", download),
                 ("small", small)]
    results = {}
    for name, make in servers:
        for scenario, fn in scenarios:
            if args.only not in (None, scenario):
                continue
            server = make()
            try:
                results[(name, scenario)] = fn(server)
            finally:
                server.stop()
            print(name, scenario, results[(name, scenario)], flush=True)
    shutil.rmtree(site, ignore_errors=True)

    def cell(name, scenario, key, fmt):
        r = results.get((name, scenario))
        return fmt.format(r[key]) if r else "-"

    load = os.getloadavg()
    lines = [
        "## Hostile and heavy HTTP clients (issue 11)",
        "",
        f"Generated by `python3 bench/abuse.py` on {datetime.date.today()} "
        f"(load average before: {load[0]:.2f}). Server pinned to CPU 0, "
        "clients to CPU 1; nginx: Debian's, one worker, `sendfile on`.",
        "",
        "| server | 200 MiB x 5 x 4 clients not reading: RSS growth | "
        "download 200 MiB: MB/s | download: RSS growth | 6-byte file, "
        "wrk -c100: req/s | CPU us / request |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, _ in servers:
        lines.append(
            f"| {name} | {cell(name, 'pipeline', 'rss_growth_mib', '{:.1f} MiB')}"
            f" | {cell(name, 'download', 'mb_per_s', '{:.0f}')}"
            f" | {cell(name, 'download', 'rss_growth_mib', '{:.1f} MiB')}"
            f" | {cell(name, 'small', 'requests_per_s', '{:,.0f}')}"
            f" | {cell(name, 'small', 'cpu_us_per_request', '{:.2f}')} |")
    ratio_lines = []
    for name in ("Mill-IO pool", "Mill-IO direct"):
        d, n = results.get((name, "download")), results.get(("nginx",
                                                             "download"))
        if d and n:
            ratio_lines.append(
                f"- {name}: download throughput {d['mb_per_s'] / n['mb_per_s']:.2f}x "
                "nginx's (target >= 1.0).")
        d, n = results.get((name, "small")), results.get(("nginx", "small"))
        if d and n:
            ratio_lines.append(
                f"- {name}: small-file CPU per request "
                f"{d['cpu_us_per_request'] / n['cpu_us_per_request']:.2f}x "
                "nginx's (target <= 1.0).")
    text = "\n".join(lines + [""] + ratio_lines) + "\n"
    print(text)
    if args.write:
        path = ROOT / "docs" / "BENCHMARKS.md"
        doc = path.read_text()
        begin, end = "<!-- BEGIN abuse -->", "<!-- END abuse -->"
        block = f"{begin}\n{text}{end}"
        if begin in doc:
            doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), block, doc,
                         flags=re.S)
        else:
            doc += "\n" + block + "\n"
        path.write_text(doc)


if __name__ == "__main__":
    main()
