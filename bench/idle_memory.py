#!/usr/bin/env python3
"""Memory per idle connection: N idle connections, server RSS delta / N.

    python3 bench/idle_memory.py                 # all servers, N = 10000
    python3 bench/idle_memory.py --connections=2000 --only=http
    python3 bench/idle_memory.py --no-build      # use what bazel-bin holds

For each server it starts the binary (port 0), warms it up with a few
hundred short connections (so allocator arenas and pools exist), reads its
VmRSS, then opens N connections that each complete one exchange (an HTTP
keep-alive request and response, or one echoed byte) and then stay open and
idle, and reads VmRSS again. The figure is (RSS after - RSS before) / N:
process memory (user space) per idle connection; kernel socket buffers are
not in it. Servers:

  * echo_server, http_server (Mill-IO), in pool and direct mode;
  * nginx (Debian's, one worker, keep-alive, serving the same hello
    response), when installed: the peer the issue compares with;
  * Mill-IO client side: //bench:idle_clients (client connections held by a
    TcpClient, and idle connections parked in a //connpool pool when that
    package exists).

Prints a table and, with --write, replaces the section between
`<!-- BEGIN idle-memory -->` and `<!-- END idle-memory -->` of
docs/BENCHMARKS.md.
"""

import argparse
import datetime
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_server(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not report its port")


def exchange_all(port, count, payload, expect, keep):
    """Opens `count` connections, does one exchange on each; keeps them
    open (appended to `keep`) or closes them."""
    sel = selectors.DefaultSelector()
    pending = {}
    opened = 0
    done = 0
    batch = 256
    while done < count:
        while opened < count and len(pending) < batch:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
            pending[s] = b""
            opened += 1
        for key, mask in sel.select(timeout=10):
            s = key.fileobj
            if mask & selectors.EVENT_WRITE:
                s.send(payload)
                sel.modify(s, selectors.EVENT_READ)
                continue
            data = s.recv(65536)
            if not data:
                raise RuntimeError("server closed a connection")
            pending[s] += data
            if expect(pending[s]):
                sel.unregister(s)
                del pending[s]
                done += 1
                if keep is None:
                    s.close()
                else:
                    keep.append(s)
    sel.close()


def http_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def measure_server(argv, kind, connections, warmup=300, pid_of=None):
    proc, port = start_server(argv)
    try:
        pid = pid_of(proc) if pid_of else proc.pid
        payload, expect = ((HTTP_REQUEST, http_complete) if kind == "http"
                           else (b"x", lambda b: len(b) >= 1))
        exchange_all(port, warmup, payload, expect, None)
        time.sleep(0.5)
        before = rss_kib(pid)
        keep = []
        exchange_all(port, connections, payload, expect, keep)
        time.sleep(1.0)
        after = rss_kib(pid)
        for s in keep:
            s.close()
        return (after - before) * 1024 / connections
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def nginx_measure(connections):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        return None
    tmp = Path(tempfile.mkdtemp(prefix="idle-nginx-"))
    (tmp / "logs").mkdir()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log error;
events {{ worker_connections {connections + 1000}; }}
http {{
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "Hello from Mill-IO!\\n"; }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True,
            text=True).stdout.split()
        worker = int(children[0])
        exchange_all(port, 300, HTTP_REQUEST, http_complete, None)
        time.sleep(0.5)
        before = rss_kib(worker)
        keep = []
        exchange_all(port, connections, HTTP_REQUEST, http_complete, keep)
        time.sleep(1.0)
        after = rss_kib(worker)
        for s in keep:
            s.close()
        return (after - before) * 1024 / connections
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def client_measure(binary, mode, connections):
    """//bench:idle_clients prints 'bytes_per_connection=N'."""
    server, port = start_server(
        [str(ROOT / "bazel-bin/examples/echo/echo_server"), "--port=0",
         "--mode=direct"])
    try:
        out = subprocess.run(
            [binary, f"--port={port}", f"--connections={connections}",
             f"--kind={mode}"], capture_output=True, text=True, timeout=300)
        m = re.search(r"bytes_per_connection=([\d.]+)", out.stdout)
        if not m:
            print(out.stdout, out.stderr, file=sys.stderr)
            return None
        return float(m.group(1))
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--only", choices=["echo", "http", "nginx", "client"])
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--config", default="opt")
    ap.add_argument("--write", action="store_true",
                    help="write the section of docs/BENCHMARKS.md")
    args = ap.parse_args()
    hard = raise_fd_limit()
    n = min(args.connections, hard - 1000)
    targets = ["//examples/echo:echo_server", "//examples/http:http_server",
               "//bench:idle_clients"]
    if not args.no_build:
        subprocess.run([str(ROOT / "bazelw"), "build",
                        f"--config={args.config}"] + targets, check=True,
                       cwd=ROOT)
    rows = []
    bin_dir = ROOT / "bazel-bin"
    for kind, label in (("echo", "echo_server"), ("http", "http_server")):
        if args.only not in (None, kind):
            continue
        binary = str(bin_dir / "examples" / kind / label)
        for mode in ("pool", "direct"):
            argv = [binary, "--port=0", f"--mode={mode}", "--workers=2",
                    f"--max_connections={n + 2000}"]
            rows.append((f"{label} --mode={mode}", kind,
                         measure_server(argv, kind, n)))
    if args.only in (None, "nginx"):
        rows.append(("nginx 1 worker (HTTP keep-alive)", "http",
                     nginx_measure(n)))
    if args.only in (None, "client"):
        binary = str(bin_dir / "bench" / "idle_clients")
        for mode in ("client", "pool"):
            rows.append((f"idle {mode} connection (//bench:idle_clients "
                         f"--kind={mode})", "echo",
                         client_measure(binary, mode, n)))
    # Issue 16 §6: a server's idle keep-alive connection at most nginx's
    # figure in the same run, a client connection at most 512 B, a pooled
    # one at most 640 B.
    nginx = next((v for name, _, v in rows
                  if name.startswith("nginx") and v is not None), None)
    lines = [
        "## Memory per idle connection",
        "",
        f"Generated by `python3 bench/idle_memory.py --connections={n}` on "
        f"{datetime.date.today()}: N idle connections (each did one exchange "
        "first), process RSS delta / N. Targets (issue 16 §6): a server's "
        "idle connection at most nginx's figure in the same run, an idle "
        "client connection at most 512 B, an idle pooled one at most 640 B.",
        "",
        "| what | bytes per idle connection | target | result |",
        "|---|--:|--:|---|",
    ]
    for name, _, value in rows:
        if value is None:
            lines.append(f"| {name} | (not measured) | | |")
            continue
        if name.startswith("nginx"):
            lines.append(f"| {name} | {value:.0f} | | (peer) |")
            continue
        if "--kind=pool" in name:
            target = 640
        elif "--kind=client" in name:
            target = 512
        else:
            target = nginx
        if target is None:
            lines.append(f"| {name} | {value:.0f} | nginx (not measured) | |")
            continue
        verdict = "met" if value <= target else "**missed**"
        ratio = f" ({value / target:.2f}x)"
        lines.append(f"| {name} | {value:.0f} | {target:.0f} | "
                     f"{verdict}{ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = ROOT / "docs" / "BENCHMARKS.md"
        doc = path.read_text()
        begin, end = "<!-- BEGIN idle-memory -->", "<!-- END idle-memory -->"
        block = f"{begin}\n{text}{end}"
        if begin in doc:
            doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), block, doc,
                         flags=re.S)
        else:
            doc += "\n" + block + "\n"
        path.write_text(doc)


if __name__ == "__main__":
    main()
