#!/usr/bin/env python3
"""TLS: Mill-IO (http_server, proxy) against nginx, side by side.

One command, from the repository root:

    python3 bench/tls_bench.py               # 3 reps of 5 s each (~4 min)
    python3 bench/tls_bench.py --quick       # 1 rep of 2 s (smoke test)
    python3 bench/tls_bench.py --only=handshake,resumed --reps=5
    python3 bench/tls_bench.py --output=/tmp/tls.md   # also write the section

Both servers get the same throwaway certificate (EC P-256 leaf for
localhost / 127.0.0.1, signed by a throwaway CA, made with the `openssl`
CLI), TLS 1.3 only on the client side (nginx: `ssl_protocols TLSv1.3`;
Mill-IO's example servers offer 1.2 and 1.3, every client here asks for
1.3), the clients' default cipher-suite offer (OpenSSL 3's: wrk cannot pick
one, so nothing does; the suite and group each server negotiated are
probed with `openssl s_client` and printed). nginx is Debian's: one worker
(`worker_processes 1`), access log off, keep-alive 100000 requests; its CPU
and RSS are the worker's (the master holds no connections). Mill-IO runs
with `--mode=direct --workers=1` (one loop thread, like nginx's worker;
`--mill-mode=pool` for pool mode with one worker); its CPU and RSS are the
whole process's. The server under test is pinned to CPU --server-cpu (0),
every client (and the proxy scenario's upstream) to --client-cpu (1).

Scenarios (--only takes a comma-separated subset):

  handshake  full TLS 1.3 handshakes: --clients (2) `openssl s_time -new
             -tls1_3 -www /hello.txt` in parallel for --duration seconds;
             server CPU (utime + stime, /proc/PID/stat) per handshake.
  resumed    the same with `-reuse` (session resumption by ticket); the
             share of connections s_time reports as reused ('r') is given.
  keepalive  `wrk -t1 -c100 https://127.0.0.1:P/hello.txt` (keep-alive):
             requests/s and server CPU per request.
  download   a 200 MiB file with curl (`%{speed_download}`): MB/s, server
             RSS growth (VmRSS sampled every 20 ms, peak minus before) and
             server CPU per MiB.
  idle       --connections (1000) TLS connections, each completing its
             handshake and one keep-alive GET /hello.txt, then idle
             (asyncio + ssl); server RSS growth / connections.
  proxy      TLS termination in front of a plain-HTTP upstream (nginx,
             one worker, pinned with the clients, the same for both):
             Mill-IO's //examples/proxy:proxy with --tls-cert/--tls-key vs
             nginx `listen ssl` + `proxy_pass` with `keepalive 128` (the
             Mill-IO proxy keeps 128 idle upstream connections by
             default); `wrk -t1 -c100`; the front server's CPU per request.

Every measurement starts a fresh server; repetitions interleave the two
servers (Mill-IO first on odd reps, nginx first on even ones) and the
median is reported with the spread ((max - min) / median). The markdown
goes to stdout (progress to stderr); --output FILE also writes it between
`<!-- BEGIN tls -->` and `<!-- END tls -->` of FILE (the rest of an
existing file is kept). docs/ is not touched unless --output names it.

Options: --quick, --reps N, --duration S, --warmup S, --only LIST,
--connections N, --clients N, --output FILE, --no-build, --mill-mode,
--server-cpu, --client-cpu, --output_base DIR, --bazel-arg FLAG.
Needs: openssl, nginx (Debian's nginx-light: http_ssl_module), wrk (with
TLS), curl, taskset, python3 (ssl, asyncio); Bazel via ./bazelw.
"""

import argparse
import asyncio
import datetime
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_all  # noqa: E402  (Bazel, Server, pin, cpu_seconds, parse_wrk,
#                              median_of, spread_pct)

ROOT = run_all.ROOT
HTTP_TARGET = "//examples/http:http_server"
PROXY_TARGET = "//examples/proxy:proxy"
SCENARIOS = ("handshake", "resumed", "keepalive", "download", "idle", "proxy")
MILL, NGINX = "Mill-IO", "nginx"
HELLO = b"Hello, world!\n"
BIG_MIB = 200
WRK_CONNECTIONS = 100
RSS_LIMIT_MIB = 32
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"

START = time.monotonic()


def log(message):
    run_all.log(f"[{time.monotonic() - START:6.1f} s] {message}")


# ------------------------------------------------------------- helpers


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_kib(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run(cmd, timeout, **kwargs):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kwargs)


def wait_quiet(pid, quiet=0.3, timeout=10.0):
    """Waits until the process used no CPU for `quiet` seconds."""
    last = run_all.cpu_seconds(pid)
    still = time.monotonic()
    deadline = still + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = run_all.cpu_seconds(pid)
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            return


class RssSampler:
    """Samples VmRSS of `pid` every `period` seconds in a thread."""

    def __init__(self, pid, period=0.02):
        self.pid = pid
        self.period = period
        self.peak = status_kib(pid) or 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            value = status_kib(self.pid)
            if value is not None:
                self.peak = max(self.peak, value)
                self.samples += 1
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join()
        value = status_kib(self.pid)
        if value is not None:
            self.peak = max(self.peak, value)
        return self.peak


# ------------------------------------------------------------ fixtures


class Fixture:
    """The temporary directory: certificates, site, binaries, nginx dirs."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tls-bench-"))
        # nginx's worker runs as an unprivileged user when we are root: it
        # must be able to read the site.
        os.chmod(self.dir, 0o755)
        self.certs = self.dir / "certs"
        self.www = self.dir / "www"
        self.bin = self.dir / "bin"
        for d in (self.certs, self.www, self.bin):
            d.mkdir()
            os.chmod(d, 0o755)
        self.ca = self.certs / "ca.pem"
        self.cert = self.certs / "cert.pem"
        self.key = self.certs / "key.pem"
        self._serial = 0

    def make_certificates(self):
        c = self.certs
        (c / "leaf.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            "extendedKeyUsage=serverAuth\n")
        steps = [
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey",
             "-noout", "-out", "ca.key"],
            ["openssl", "req", "-x509", "-new", "-key", "ca.key", "-sha256",
             "-days", "7", "-subj", "/CN=tls_bench throwaway CA", "-out",
             "ca.pem"],
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey",
             "-noout", "-out", "key.pem"],
            ["openssl", "req", "-new", "-key", "key.pem", "-subj",
             "/CN=localhost", "-out", "leaf.csr"],
            ["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "7", "-sha256",
             "-extfile", "leaf.ext", "-out", "cert.pem"],
        ]
        for step in steps:
            result = run(step, 60, cwd=c)
            if result.returncode != 0:
                raise RuntimeError(f"{shlex.join(step)}: "
                                   f"{result.stderr.strip()[-300:]}")

    def make_site(self, big_mib):
        (self.www / "hello.txt").write_bytes(HELLO)
        chunk = os.urandom(1 << 20)
        with open(self.www / "big.bin", "wb") as f:
            for _ in range(big_mib):
                f.write(chunk)
        for f in self.www.iterdir():
            os.chmod(f, 0o644)

    def copy_binary(self, path):
        """A private copy: a rebuild during the run cannot swap it."""
        dest = self.bin / path.name
        shutil.copy2(path, dest)
        return dest

    def nginx_dir(self):
        self._serial += 1
        d = self.dir / f"nginx{self._serial}"
        (d / "logs").mkdir(parents=True)
        os.chmod(d, 0o755)
        return d

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------- servers

LIVE = []  # every server started and not yet stopped (for cleanup)


class Running:
    """A started server: .port, .pid (the process doing the work)."""

    def __init__(self, name, server, pid, port, workdir=None):
        self.name = name
        self.server = server
        self.pid = pid
        self.port = port
        self.workdir = workdir
        # wrk opens one plain TCP connection per run to test the address
        # and closes it without a handshake: the server counts it as a
        # failed handshake.
        self.wrk_runs = 0
        LIVE.append(self)

    def alive(self):
        return self.server.alive()

    def stop(self):
        status = self.server.stop()
        if self in LIVE:
            LIVE.remove(self)
        return status

    def errors(self):
        """nginx: its error log's lines; Mill-IO: its last output lines."""
        if self.workdir is not None:
            log_file = self.workdir / "logs" / "error.log"
            try:
                return [line for line in log_file.read_text().splitlines()
                        if line.strip()]
            except OSError:
                return []
        return list(self.server.tail)


def start_mill(binary, flags, args):
    server = run_all.Server([str(binary), "--port=0"] + flags,
                            args.server_cpu)
    if not server.wait_ready():
        server.stop()
        raise RuntimeError(f"{binary.name} did not start: "
                           f"{server.describe_failure()}")
    # taskset execs the server: the pid is the server's.
    return Running(MILL, server, server.proc.pid, server.port)


def start_mill_http(fx, binaries, args):
    return start_mill(binaries["http"], [
        f"--root={fx.www}", f"--tls-cert={fx.cert}", f"--tls-key={fx.key}",
        "--idle_timeout=300s"] + args.mill_flags, args)


def start_mill_proxy(fx, binaries, args, upstream_port):
    return start_mill(binaries["proxy"], [
        f"--upstream=127.0.0.1:{upstream_port}", f"--tls-cert={fx.cert}",
        f"--tls-key={fx.key}", "--idle_timeout=300s"] + args.mill_flags, args)


def start_nginx(fx, server_block, cpu, connections=4096, name=NGINX):
    workdir = fx.nginx_dir()
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
worker_rlimit_nofile {connections + 1024};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log error;
events {{ worker_connections {connections + 512}; }}
http {{
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 300s;
  keepalive_requests 100000;
  client_header_timeout 300s;
  types {{ text/plain txt; application/octet-stream bin; }}
  default_type application/octet-stream;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
{server_block.replace("PORT", str(port))}
}}
""")
    server = run_all.Server([NGINX_BIN, "-p", str(workdir), "-c", str(conf)],
                            cpu)
    if not server.wait_ready(fixed_port=port):
        server.stop()
        try:
            errors = (workdir / "logs" / "error.log").read_text()[-300:]
        except OSError:
            errors = ""
        raise RuntimeError(f"nginx did not start: "
                           f"{server.describe_failure()} {errors}")
    worker = None
    for _ in range(100):
        kids = run(["pgrep", "-P", str(server.proc.pid)], 10).stdout.split()
        if kids:
            worker = int(kids[0])
            break
        time.sleep(0.05)
    if worker is None:
        server.stop()
        raise RuntimeError("nginx has no worker process")
    return Running(name, server, worker, port, workdir)


def nginx_tls(fx):
    return f"""
  ssl_certificate {fx.cert};
  ssl_certificate_key {fx.key};
  ssl_protocols TLSv1.3;
  ssl_session_tickets on;"""


def start_nginx_https(fx, binaries, args):
    return start_nginx(fx, f"""
  server {{
    listen 127.0.0.1:PORT ssl;
{nginx_tls(fx)}
    root {fx.www};
  }}""", args.server_cpu, connections=max(4096, args.connections))


def start_nginx_proxy(fx, binaries, args, upstream_port):
    return start_nginx(fx, f"""
  upstream backend {{
    server 127.0.0.1:{upstream_port};
    keepalive 128;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:PORT ssl;
{nginx_tls(fx)}
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}""", args.server_cpu)


def start_upstream(fx, args):
    return start_nginx(fx, f"""
  server {{
    listen 127.0.0.1:PORT;
    root {fx.www};
  }}""", args.client_cpu, name="upstream nginx")


# ------------------------------------------------------------- probes


def https_get(port, path, ca, timeout=10):
    """(status, headers, body) of one GET over TLS 1.3, plus the cipher."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                         f"Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ssl.SSLError:
                    break
                if not chunk:
                    break
                data += chunk
            cipher = sock.cipher()
            version = sock.version()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(
        lines[0].split()) > 1 else None
    return status, lines[1:], body, f"{version} {cipher[0] if cipher else '?'}"


def s_client_probe(port, ca):
    """What `openssl s_client` (default offer, TLS 1.3) negotiated, and
    whether a saved session resumes."""
    with tempfile.TemporaryDirectory(prefix="tls-bench-sess-") as tmp:
        sess = Path(tmp) / "sess.pem"
        request = "GET /hello.txt HTTP/1.0\r\n\r\n"
        base = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                "-servername", "localhost", "-tls1_3", "-CAfile", str(ca),
                "-alpn", "http/1.1", "-verify_return_error",
                # Read until the server closes (after the HTTP/1.0
                # response): the session tickets come with it.
                "-ign_eof"]
        first = run(base + ["-sess_out", str(sess)], 20, input=request)
        text = first.stdout + first.stderr
        info = {}
        m = re.search(r"New, (TLSv[\d.]+), Cipher is (\S+)", text)
        if m:
            info["protocol"], info["cipher"] = m.group(1), m.group(2)
        m = re.search(r"Server Temp Key: ([^\n]+)", text)
        if m:
            info["group"] = m.group(1).strip()
        m = re.search(r"Peer signature type: (\S+)", text)
        if m:
            info["signature"] = m.group(1)
        m = re.search(r"Verify return code: (\d+) \(([^)]*)\)", text)
        if m:
            info["verify"] = m.group(2)
        m = re.search(r"ALPN protocol: (\S+)", text)
        info["alpn"] = m.group(1) if m else "none"
        if sess.exists():
            second = run(base + ["-sess_in", str(sess)], 20, input=request)
            info["resumed"] = "Reused, TLSv1.3" in (second.stdout +
                                                   second.stderr)
        else:
            info["resumed"] = False
    return info


def ktls_available():
    """Whether the kernel has TLS offload (setsockopt TCP_ULP "tls")."""
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            client.setsockopt(socket.IPPROTO_TCP, 31, b"tls")
            return True, "yes"
    except OSError as error:
        return False, f"no ({error.strerror})"
    finally:
        listener.close()


# -------------------------------------------------------- measurements


def s_time(port, reuse, args, seconds, clients):
    """`clients` openssl s_time in parallel; returns the totals."""
    cmd = run_all.pin(args.client_cpu) + [
        "openssl", "s_time", "-connect", f"127.0.0.1:{port}",
        "-reuse" if reuse else "-new", "-time", str(seconds), "-tls1_3",
        "-www", "/hello.txt"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(clients)]
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 60)
            outs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total = {"connections": 0, "reused": 0, "new": 0, "bytes_per_conn": []}
    for rc, out, err in outs:
        m = re.search(r"(\d+) connections in [\d.]+s;", out)
        b = re.search(r"(\d+) bytes read per connection", out)
        if rc != 0 or not m:
            raise RuntimeError(f"s_time failed (exit {rc}): "
                               f"{(err.strip() or out.strip())[-200:]}")
        total["connections"] += int(m.group(1))
        if b:
            total["bytes_per_conn"].append(int(b.group(1)))
        # One character per connection: 'r' reused, '*' (or a version
        # letter) new.
        for line in out.splitlines():
            if line and re.fullmatch(r"[r*t3]+", line):
                total["reused"] += line.count("r")
                total["new"] += len(line) - line.count("r")
    return total


def measure_handshakes(running, args, reuse):
    seconds = max(1, round(args.duration))
    if args.warmup > 0:
        s_time(running.port, reuse, args, max(1, round(args.warmup)), 1)
    cpu0 = run_all.cpu_seconds(running.pid)
    t0 = time.monotonic()
    total = s_time(running.port, reuse, args, seconds, args.clients)
    wall = time.monotonic() - t0
    cpu = run_all.cpu_seconds(running.pid) - cpu0
    n = total["connections"]
    if n == 0:
        raise RuntimeError("s_time made no connection")
    if min(total["bytes_per_conn"] or [0]) == 0:
        raise RuntimeError("s_time read no response bytes")
    seen = total["reused"] + total["new"]
    return {"handshakes": n, "per_s": n / wall,
            "cpu_us": cpu * 1e6 / n, "utilization": cpu / wall,
            "reused_pct": 100.0 * total["reused"] / seen if seen else None,
            "response_bytes": total["bytes_per_conn"][0]}


def measure_wrk(running, args, path="/hello.txt"):
    url = f"https://127.0.0.1:{running.port}{path}"
    base = run_all.pin(args.client_cpu) + ["wrk", "-t1",
                                           f"-c{WRK_CONNECTIONS}"]
    if args.warmup > 0:
        run(base + [f"-d{max(1, round(args.warmup))}s", url],
            args.warmup + 60)
        running.wrk_runs += 1
    seconds = max(1, round(args.duration))
    running.wrk_runs += 1
    cpu0 = run_all.cpu_seconds(running.pid)
    t0 = time.monotonic()
    result = run(base + [f"-d{seconds}s", "--latency", url], seconds + 60)
    wall = time.monotonic() - t0
    cpu = run_all.cpu_seconds(running.pid) - cpu0
    data = run_all.parse_wrk(result.stdout)
    if result.returncode != 0 or not data.get("requests"):
        raise RuntimeError("wrk failed: " + (result.stderr.strip() or
                                             result.stdout.strip())[-200:])
    return {"requests_per_s": data["requests_per_s"],
            "cpu_us": cpu * 1e6 / data["requests"],
            "utilization": cpu / wall, "p50_us": data.get("p50_us"),
            "errors": data.get("errors", 0)}


def measure_download(running, args, fx):
    https_get(running.port, "/hello.txt", fx.ca)  # warm: files, session
    wait_quiet(running.pid)
    before = status_kib(running.pid)
    cpu0 = run_all.cpu_seconds(running.pid)
    sampler = RssSampler(running.pid)
    try:
        result = run(run_all.pin(args.client_cpu) + [
            "curl", "-s", "-o", "/dev/null", "--tlsv1.3", "--cacert",
            str(fx.ca), "--resolve", f"localhost:{running.port}:127.0.0.1",
            "-w", "%{speed_download} %{size_download} %{http_code}",
            f"https://localhost:{running.port}/big.bin"], 600)
    finally:
        peak = sampler.stop()
    cpu = run_all.cpu_seconds(running.pid) - cpu0
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 3:
        raise RuntimeError(f"curl failed (exit {result.returncode}): "
                           f"{result.stderr.strip()[-200:]}")
    speed, size, code = float(fields[0]), int(fields[1]), fields[2]
    if code != "200" or size != args.big_mib << 20:
        raise RuntimeError(f"download: HTTP {code}, {size} bytes (expected "
                           f"{args.big_mib << 20})")
    return {"mb_per_s": speed / 1e6,
            "rss_growth_mib": (peak - before) / 1024,
            "cpu_ms_per_mib": cpu * 1e3 / args.big_mib,
            "rss_samples": sampler.samples}


async def _open_tls(port, count, ctx, keep, concurrency=64):
    """`count` TLS connections, one keep-alive GET /hello.txt each; kept
    in `keep` (or closed when keep is None). Returns the ciphers seen."""
    sem = asyncio.Semaphore(concurrency)
    request = (b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    ciphers = set()

    async def one():
        async with sem:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 30)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response: {head[:40]!r}")
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            await asyncio.wait_for(reader.readexactly(int(m.group(1))), 30)
            obj = writer.get_extra_info("ssl_object")
            ciphers.add(f"{obj.version()} {obj.cipher()[0]}")
            if keep is None:
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), 5)
                except (OSError, asyncio.TimeoutError, ssl.SSLError):
                    pass
            else:
                keep.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    return ciphers


async def _idle(running, args, fx):
    ctx = ssl.create_default_context(cafile=str(fx.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    await _open_tls(running.port, args.idle_warmup, ctx, None)
    await asyncio.sleep(0.5)
    wait_quiet(running.pid)
    before = status_kib(running.pid)
    keep = []
    try:
        ciphers = await _open_tls(running.port, args.connections, ctx, keep)
        await asyncio.sleep(args.settle)
        wait_quiet(running.pid)
        after = status_kib(running.pid)
        alive = sum(1 for w in keep if not w.is_closing())
    finally:
        for writer in keep:
            writer.close()
        await asyncio.gather(*(asyncio.wait_for(w.wait_closed(), 5)
                               for w in keep), return_exceptions=True)
    if alive != args.connections:
        raise RuntimeError(f"only {alive} of {args.connections} idle "
                           f"connections still open after the settle")
    return {"bytes_per_conn": (after - before) * 1024 / args.connections,
            "rss_before_mib": before / 1024, "rss_after_mib": after / 1024,
            "ciphers": ", ".join(sorted(ciphers))}


def measure_idle(running, args, fx):
    return asyncio.run(_idle(running, args, fx))


# -------------------------------------------------------------- report


def fmt(value, digits=0, suffix=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def fmt_ratio(a, b):
    if a is None or not b:
        return "n/a"
    return f"{a / b:.2f}"


def fmt_runs(runs, key, digits):
    values = [fmt(r.get(key), digits) if r.get("ok") else "failed"
              for r in runs]
    return "; ".join(values) if values else "—"


# (scenario, key, label, digits, better) for the per-scenario tables.
METRICS = {
    "handshake": [("cpu_us", "server CPU per handshake (µs)", 1, "lower"),
                  ("per_s", "handshakes/s (client-bound)", 0, "higher"),
                  ("utilization", "server CPU utilization", 2, None),
                  ("reused_pct", "connections s_time reports as reused (%)",
                   0, None)],
    "resumed": [("cpu_us", "server CPU per resumed handshake (µs)", 1,
                 "lower"),
                ("per_s", "handshakes/s (client-bound)", 0, "higher"),
                ("utilization", "server CPU utilization", 2, None),
                ("reused_pct", "connections s_time reports as reused (%)", 0,
                 None)],
    "keepalive": [("cpu_us", "server CPU per request (µs)", 2, "lower"),
                  ("requests_per_s", "requests/s", 0, "higher"),
                  ("p50_us", "p50 latency (µs)", 0, "lower"),
                  ("utilization", "server CPU utilization", 2, None),
                  ("errors", "wrk errors", 0, None)],
    "download": [("mb_per_s", "throughput (MB/s)", 0, "higher"),
                 ("rss_growth_mib", "RSS growth, peak − before (MiB)", 1,
                  "lower"),
                 ("cpu_ms_per_mib", "server CPU per MiB (ms)", 2, "lower")],
    "idle": [("bytes_per_conn", "RSS growth per idle connection (bytes)", 0,
              "lower"),
             ("rss_before_mib", "RSS before (MiB)", 1, None),
             ("rss_after_mib", "RSS after (MiB)", 1, None)],
    "proxy": [("cpu_us", "front server CPU per request (µs)", 2, "lower"),
              ("requests_per_s", "requests/s", 0, "higher"),
              ("p50_us", "p50 latency (µs)", 0, "lower"),
              ("utilization", "front server CPU utilization", 2, None),
              ("errors", "wrk errors", 0, None)],
}

TITLES = {
    "handshake": "Full TLS 1.3 handshakes (`openssl s_time -new`)",
    "resumed": "Resumed TLS 1.3 handshakes (`openssl s_time -reuse`)",
    "keepalive": "Keep-alive HTTPS requests (`wrk -t1 -c100`, /hello.txt)",
    "download": "200 MiB HTTPS download (curl)",
    "idle": "Idle TLS connections",
    "proxy": "TLS-terminating reverse proxy (`wrk -t1 -c100`)",
}


def scenario_lines(name, results, args):
    runs_m, runs_n = results[name][MILL], results[name][NGINX]
    lines = [f"### {TITLES[name]}", ""]
    if name in ("handshake", "resumed"):
        lines += [f"{args.clients} × `openssl s_time "
                  f"{'-reuse' if name == 'resumed' else '-new'} -tls1_3 "
                  f"-www /hello.txt -time {max(1, round(args.duration))}` "
                  f"in parallel (each connection also fetches the 14-byte "
                  f"file over HTTP/1.0, then the server closes).", ""]
    elif name == "download":
        lines += [f"`curl --tlsv1.3 -o /dev/null -w '%{{speed_download}}'` "
                  f"of a {args.big_mib} MiB file, one download per rep; "
                  f"server VmRSS sampled every 20 ms.", ""]
    elif name == "idle":
        lines += [f"{args.connections} TLS 1.3 connections (Python asyncio + "
                  f"ssl), each handshake plus one keep-alive GET /hello.txt, "
                  f"then idle; after {args.idle_warmup} warm-up connections "
                  f"and a {args.settle:g} s settle. User-space RSS only "
                  f"(kernel socket buffers are not in it).", ""]
    elif name == "proxy":
        lines += ["Upstream: nginx, plain HTTP, one worker, pinned with the "
                  "clients, serving /hello.txt (the same for both fronts).",
                  ""]
    lines += ["| figure | Mill-IO | nginx | Mill-IO / nginx | better | "
              "spread Mill-IO / nginx | runs Mill-IO | runs nginx |",
              "|---|--:|--:|--:|---|--:|--:|--:|"]
    for key, label, digits, better in METRICS[name]:
        m, n = run_all.median_of(runs_m, key), run_all.median_of(runs_n, key)
        sm, sn = (run_all.spread_pct(runs_m, key),
                  run_all.spread_pct(runs_n, key))
        lines.append(
            f"| {label} | {fmt(m, digits)} | {fmt(n, digits)} | "
            f"{fmt_ratio(m, n) if better else '—'} | {better or '—'} | "
            f"{fmt(sm, 0, '%')} / {fmt(sn, 0, '%')} | "
            f"{fmt_runs(runs_m, key, digits)} | "
            f"{fmt_runs(runs_n, key, digits)} |")
    for who, runs in ((MILL, runs_m), (NGINX, runs_n)):
        for i, r in enumerate(runs):
            if not r.get("ok"):
                lines.append(f"\n{who}, rep {i + 1}: **failed**: "
                             f"{r.get('error')}")
    if name == "idle":
        for who, runs in ((MILL, runs_m), (NGINX, runs_n)):
            ciphers = sorted({r["ciphers"] for r in runs if r.get("ok")})
            if ciphers:
                lines.append(f"\n{who}: the Python clients negotiated "
                             f"{'; '.join(ciphers)}.")
    lines.append("")
    return lines


def summary_lines(results, scenarios):
    def row(target, scenario, key, digits, test, unit="", ratio=True):
        if scenario not in scenarios:
            return None
        m = run_all.median_of(results[scenario][MILL], key)
        n = run_all.median_of(results[scenario][NGINX], key)
        met = test(m, n) if m is not None and n is not None else None
        verdict = "n/a" if met is None else ("met" if met else "**missed**")
        return (f"| {target} | {fmt(m, digits, unit)} | {fmt(n, digits, unit)}"
                f" | {fmt_ratio(m, n) if ratio else '—'} | {verdict} |")

    rows = [
        row("full handshake: server CPU per handshake ≤ nginx's",
            "handshake", "cpu_us", 1, lambda m, n: m <= n, " µs"),
        row("resumed handshake: server CPU per handshake ≤ nginx's",
            "resumed", "cpu_us", 1, lambda m, n: m <= n, " µs"),
        row("keep-alive HTTPS: server CPU per request ≤ nginx's",
            "keepalive", "cpu_us", 2, lambda m, n: m <= n, " µs"),
        row("200 MiB download: throughput ≥ nginx's", "download",
            "mb_per_s", 0, lambda m, n: m >= n, " MB/s"),
        row(f"200 MiB download: Mill-IO RSS growth < {RSS_LIMIT_MIB} MiB",
            "download", "rss_growth_mib", 1,
            lambda m, n: m < RSS_LIMIT_MIB, " MiB", ratio=False),
        row("idle TLS connection: bytes per connection ≤ nginx's", "idle",
            "bytes_per_conn", 0, lambda m, n: m <= n, " B"),
        row("TLS proxy: front CPU per request ≤ nginx's", "proxy", "cpu_us",
            2, lambda m, n: m <= n, " µs"),
    ]
    return ["### Summary: targets", "",
            "| target | Mill-IO | nginx | ratio | met? |",
            "|---|--:|--:|--:|---|"] + [r for r in rows if r] + [""]


# ---------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the top of bench/tls_bench.py for what is measured.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 rep, 2 s runs, 1 s warm-up, 200 "
                             "idle connections")
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument("--duration", type=float,
                        help="measured seconds per run (default 5; s_time "
                             "and wrk take whole seconds)")
    parser.add_argument("--warmup", type=float,
                        help="warm-up seconds before each s_time/wrk run "
                             "(default 1; 0: none)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of " + ",".join(SCENARIOS))
    parser.add_argument("--connections", type=int,
                        help="idle TLS connections (default 1000; --quick "
                             "200)")
    parser.add_argument("--clients", type=int, default=2,
                        help="parallel openssl s_time processes (default 2)")
    parser.add_argument("--big-mib", type=int, default=BIG_MIB,
                        help=f"download file size (default {BIG_MIB})")
    parser.add_argument("--mill-mode", choices=("direct", "pool"),
                        default="direct",
                        help="Mill-IO dispatch mode (default direct; pool "
                             "runs with --workers=1)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--output", default=None,
                        help="also write the section to this file (between "
                             "<!-- BEGIN tls --> / <!-- END tls -->)")
    parser.add_argument("--no-build", action="store_true",
                        help="use what Bazel built last with --config=opt")
    parser.add_argument("--output_base", "--output-base", dest="output_base",
                        help="Bazel --output_base (startup option)")
    parser.add_argument("--bazel-arg", action="append", default=[],
                        help="extra Bazel build option (repeatable)")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    if args.warmup is None:
        args.warmup = 1.0
    args.connections = args.connections or (200 if args.quick else 1000)
    args.idle_warmup = 50 if args.quick else 200
    args.settle = 1.0
    if args.only:
        args.scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in args.scenarios if s not in SCENARIOS]
        if bad:
            parser.error(f"unknown scenario(s) {', '.join(bad)}; choose from "
                         f"{', '.join(SCENARIOS)}")
    else:
        args.scenarios = list(SCENARIOS)
    if args.reps < 1 or args.clients < 1 or args.connections < 1:
        parser.error("--reps, --clients and --connections must be >= 1")
    args.mill_flags = [f"--mode={args.mill_mode}", "--workers=1"]
    return args


def check_tools(args):
    missing = [t for t in ("openssl", "taskset", "curl", "wrk", "pgrep")
               if shutil.which(t) is None]
    if not os.path.exists(NGINX_BIN):
        missing.append("nginx (apt-get install nginx-light)")
    if missing:
        sys.exit("tls_bench: missing " + ", ".join(missing))
    version = run([NGINX_BIN, "-V"], 10).stderr
    if "--with-http_ssl_module" not in version:
        sys.exit("tls_bench: this nginx has no http_ssl_module")
    if (os.cpu_count() or 1) < 2:
        log("tls_bench: fewer than 2 CPUs: server and clients share one")


def machine_facts(args, ktls_text):
    nproc = run(["nproc"], 10).stdout.strip() or str(os.cpu_count())
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    openssl = run(["openssl", "version"], 10).stdout.strip()
    nginx_v = run([NGINX_BIN, "-V"], 10).stderr
    m = re.search(r"nginx version: (\S+)", nginx_v)
    n = re.search(r"built with (OpenSSL [\d.]+\w*)(?: [^(]*)?"
                  r"(?:\(running with (OpenSSL [\d.]+\w*))?", nginx_v)
    nginx_text = m.group(1) if m else "nginx ?"
    if n:
        nginx_text += f" (built with {n.group(1)}" + (
            f", running with {n.group(2)})" if n.group(2) else ")")
    wrk = run(["wrk", "-v"], 10)
    wrk_text = (wrk.stdout + wrk.stderr).splitlines()[0].split(" Copyright")[0]
    return {"nproc": nproc, "kernel": platform.release(), "cpu": cpu,
            "openssl": openssl, "nginx": nginx_text, "wrk": wrk_text,
            "ktls": ktls_text, "python": platform.python_version(),
            "ssl": ssl.OPENSSL_VERSION}


def build_binaries(args, fx):
    bazel = run_all.Bazel(args)
    targets = [HTTP_TARGET] + ([PROXY_TARGET] if "proxy" in args.scenarios
                               else [])
    if not args.no_build and not bazel.build(targets):
        sys.exit("tls_bench: build failed")
    # Not the bazel-bin symlink: it follows the last build of any config
    # (a sanitizer build would be measured instead).
    log("tls_bench: asking Bazel for the --config=opt output directory "
        "(waits while another Bazel command runs)")
    try:
        bin_dir = bazel.bin_dir()
    except subprocess.CalledProcessError as error:
        sys.exit(f"tls_bench: bazel info failed (exit {error.returncode})")
    binaries = {}
    for key, label in (("http", HTTP_TARGET), ("proxy", PROXY_TARGET)):
        if label not in targets:
            continue
        path = run_all.binary_path(bin_dir, label)
        if not path.exists():
            sys.exit(f"tls_bench: {path} does not exist (build {label} with "
                     f"--config=opt, or drop --no-build)")
        ldd = run(["ldd", str(path)], 30).stdout
        if re.search(r"lib(asan|tsan|ubsan)", ldd):
            sys.exit(f"tls_bench: {path} is a sanitizer build")
        binaries[key] = fx.copy_binary(path)
    return binaries


def on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    args = parse_args(argv)
    command = shlex.join(["python3", "bench/tls_bench.py"] + argv)
    check_tools(args)
    # Ctrl-C stops the run even when started with SIGINT ignored (a
    # background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 2048
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)),
                                                    hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < args.connections + 256:
        args.connections = max(1, limit - 256)
        log(f"tls_bench: file descriptor limit {limit}: idle connections "
            f"lowered to {args.connections}")

    fx = Fixture()
    upstream = None
    notes = []
    results = {s: {MILL: [], NGINX: []} for s in args.scenarios}
    probes = {}
    try:
        binaries = build_binaries(args, fx)
        log("tls_bench: binaries ready; making certificates and the site")
        fx.make_certificates()
        fx.make_site(args.big_mib)
        _, ktls_text = ktls_available()
        facts = machine_facts(args, ktls_text)
        load_before = os.getloadavg()
        if load_before[0] > 0.5:
            log(f"tls_bench: load average {load_before[0]:.2f}: the figures "
                f"will be noisy")
        # Whatever is not pinned explicitly (the Python idle clients, the
        # probes) runs on the client CPU.
        try:
            os.sched_setaffinity(0, {args.client_cpu})
        except (OSError, AttributeError):
            pass
        if "proxy" in args.scenarios:
            upstream = start_upstream(fx, args)

        def http_pair():
            return {MILL: lambda: start_mill_http(fx, binaries, args),
                    NGINX: lambda: start_nginx_https(fx, binaries, args)}

        def proxy_pair():
            return {MILL: lambda: start_mill_proxy(fx, binaries, args,
                                                   upstream.port),
                    NGINX: lambda: start_nginx_proxy(fx, binaries, args,
                                                     upstream.port)}

        plan = {
            "handshake": (http_pair, lambda r: measure_handshakes(r, args,
                                                                  False)),
            "resumed": (http_pair, lambda r: measure_handshakes(r, args,
                                                                True)),
            "keepalive": (http_pair, lambda r: measure_wrk(r, args)),
            "download": (http_pair, lambda r: measure_download(r, args, fx)),
            "idle": (http_pair, lambda r: measure_idle(r, args, fx)),
            "proxy": (proxy_pair, lambda r: measure_wrk(r, args)),
        }
        total = args.reps * len(args.scenarios) * 2
        done = 0
        for rep in range(args.reps):
            order = [MILL, NGINX] if rep % 2 == 0 else [NGINX, MILL]
            for scenario in args.scenarios:
                starters, measure = plan[scenario]
                for who in order:
                    done += 1
                    prefix = (f"[{done}/{total}] rep {rep + 1} {scenario:<9} "
                              f"{who:<7}")
                    running = None
                    try:
                        running = starters()[who]()
                        key = (scenario == "proxy", who)
                        if key not in probes:
                            probes[key] = probe(running, fx, scenario, notes)
                        outcome = measure(running)
                        outcome["ok"] = True
                    except KeyboardInterrupt:
                        raise
                    except Exception as error:  # noqa: BLE001 (reported)
                        outcome = {"ok": False,
                                   "error": f"{type(error).__name__}: "
                                            f"{error}"}
                    if running is not None:
                        if not running.alive():
                            outcome = {"ok": False, "error":
                                       "the server died: " +
                                       "; ".join(running.errors()[-3:])}
                        status = running.stop()
                        check_exit(running, status, scenario, notes)
                    results[scenario][who].append(outcome)
                    log(prefix + " " + describe(outcome))
    except KeyboardInterrupt:
        log("tls_bench: interrupted; stopping servers")
        cleanup(upstream, fx)
        return 130
    finally:
        if LIVE or fx.dir.exists():
            cleanup(upstream, fx)
    load_after = os.getloadavg()

    lines = ["## TLS: Mill-IO vs nginx", "",
             f"Generated by `{command}` on "
             f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}"
             f" (median of {args.reps} rep(s), {max(1, round(args.duration))}"
             f" s runs after {args.warmup:g} s warm-ups; servers "
             f"interleaved).", ""]
    if args.quick:
        lines += ["**Quick mode** (smoke test): one short run per figure; do "
                  "not draw conclusions from these numbers.", ""]
    lines += [
        f"- Machine: nproc {facts['nproc']}, Linux {facts['kernel']}, "
        f"{facts['cpu']}; load average (1/5/15 min) before "
        f"{' / '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{' / '.join(f'{x:.2f}' for x in load_after)}.",
        f"- {facts['openssl']} (CLI; Mill-IO links the system libssl); "
        f"{facts['nginx']}; {facts['wrk']}; Python {facts['python']} "
        f"({facts['ssl']}).",
        f"- Kernel TLS offload (TCP_ULP \"tls\"): {facts['ktls']} "
        f"(Mill-IO uses it when available; nginx 1.22 only with "
        f"`ssl_conf_command Options KTLS`, not set here).",
        f"- Server pinned to CPU {args.server_cpu}, clients to CPU "
        f"{args.client_cpu}. Mill-IO: `{' '.join(args.mill_flags)} "
        f"--tls-cert --tls-key` (CPU and RSS of the whole process); nginx: "
        f"`worker_processes 1`, `ssl_protocols TLSv1.3`, session tickets "
        f"on, access log off, `keepalive_requests 100000` (CPU and RSS of "
        f"the worker). Same EC P-256 certificate for both; every client "
        f"asks for TLS 1.3 with OpenSSL 3's default suite list (wrk cannot "
        f"choose one; s_time, wrk, curl and Python's ssl all offer the list "
        f"`s_client` offers below).",
    ]
    for (is_proxy, who), info in sorted(probes.items()):
        what = f"{who} {'proxy' if is_proxy else 'HTTPS server'}"
        lines.append(
            f"- Negotiated with {what} (`openssl s_client -tls1_3`): "
            f"{info.get('protocol', '?')} {info.get('cipher', '?')}, "
            f"key exchange {info.get('group', '?')}, signature "
            f"{info.get('signature', '?')}, ALPN {info.get('alpn', '?')}, "
            f"certificate {info.get('verify', '?')}; session resumed with "
            f"`-sess_in`: {'yes' if info.get('resumed') else '**no**'}; "
            f"curl: {info.get('curl', '?')}; Python ssl: "
            f"{info.get('python', '?')}.")
    lines.append("")
    for scenario in args.scenarios:
        lines += scenario_lines(scenario, results, args)
    lines += summary_lines(results, args.scenarios)
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(lines)
    print(text)
    if args.output:
        write_output(Path(args.output), text)
        log(f"tls_bench: wrote the tls section of {args.output}")
    return 0


def probe(running, fx, scenario, notes):
    """Checks the server answers 200 with hello.txt's body, and what TLS
    it negotiates. Returns the s_client facts."""
    status, _, body, negotiated = https_get(running.port, "/hello.txt", fx.ca)
    if status != 200 or body != HELLO:
        notes.append(f"{running.name} ({scenario}): GET /hello.txt answered "
                     f"{status} with {body[:60]!r}, expected 200 "
                     f"{HELLO!r}.")
    info = s_client_probe(running.port, fx.ca)
    info["python"] = negotiated
    curl = run(["curl", "-sv", "-o", "/dev/null", "--tlsv1.3", "--cacert",
                str(fx.ca), "--resolve", f"localhost:{running.port}:127.0.0.1",
                f"https://localhost:{running.port}/hello.txt"], 30)
    m = re.search(r"SSL connection using (\S+) / (\S+)", curl.stderr)
    info["curl"] = f"{m.group(1)} {m.group(2)}" if m else "?"
    if not info.get("resumed"):
        notes.append(f"{running.name} ({scenario}): `openssl s_client "
                     f"-sess_in` did not resume the saved session.")
    return info


def check_exit(running, status, scenario, notes):
    if running.name != MILL:
        return
    if status != 0:
        message = (f"Mill-IO ({scenario}) exited with status {status} on "
                   f"SIGTERM (expected 0): "
                   f"{'; '.join(running.errors()[-3:])}")
        if message not in notes:
            notes.append(message)
    # "...: stopped; N connections, ..., K TLS handshakes failed" (on
    # stderr, drained by a thread: give it a moment).
    deadline = time.monotonic() + 1.0
    while (time.monotonic() < deadline and
           not any("stopped;" in line for line in running.errors())):
        time.sleep(0.02)
    for line in running.errors():
        m = re.search(r"stopped; (\d+) connections.*?(\d+) TLS handshakes "
                      r"failed", line)
        if m and int(m.group(2)) > running.wrk_runs:
            notes.append(f"Mill-IO ({scenario}): {m.group(2)} of "
                         f"{m.group(1)} connections failed their TLS "
                         f"handshake ({running.wrk_runs} expected: wrk's "
                         f"test connections, one per wrk run).")


def describe(outcome):
    if not outcome.get("ok"):
        return "FAILED " + outcome.get("error", "")
    parts = []
    for key, fmt_text in (("cpu_us", "{:.2f} µs CPU/op"),
                          ("per_s", "{:,.0f} handshakes/s"),
                          ("reused_pct", "{:.0f}% reused"),
                          ("requests_per_s", "{:,.0f} req/s"),
                          ("errors", "{} errors"),
                          ("mb_per_s", "{:,.0f} MB/s"),
                          ("rss_growth_mib", "RSS +{:.1f} MiB"),
                          ("rss_samples", "{} RSS samples"),
                          ("bytes_per_conn", "{:,.0f} B/conn"),
                          ("ciphers", "{}")):
        if outcome.get(key) is not None:
            parts.append(fmt_text.format(outcome[key]))
    return ", ".join(parts)


def cleanup(upstream, fx):
    for running in list(LIVE):
        try:
            running.stop()
        except Exception:  # noqa: BLE001 (best effort on the way out)
            try:
                running.server.proc.kill()
            except OSError:
                pass
    fx.remove()


def write_output(path, text):
    begin, end = "<!-- BEGIN tls -->", "<!-- END tls -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    if path.exists():
        run_all.write_section(path, "tls", text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
