#!/usr/bin/env python3
"""Compares Mill-IO with libuv, libevent, Asio and bare epoll/io_uring here.

One command, from the repository root:

    python3 bench/run_all.py            # everything, 3 runs each (~15 min)
    python3 bench/run_all.py --quick    # smoke test: 1 run of 2 s each
    python3 bench/run_all.py --only=echo        # or --only=http
    python3 bench/run_all.py --micro    # also every Google Benchmark binary
    python3 bench/run_all.py --only=micro       # only those

It builds everything with `./bazelw build --config=opt //bench/... //examples/...`,
then runs each server in turn pinned to CPU 0 (taskset) with the load
generator pinned to CPU 1:

  * echo: //bench:echo_load (closed loop, every byte verified) with 1, 100
    and 1000 connections at 64 B and 4 KiB messages, against
    //bench/peers:echo_{epoll,uring,libuv,libevent,asio,asio_uring} and
    //examples/echo:echo_server;
  * HTTP hello: `wrk -t1 -c100 -d5s --latency` (keep-alive) against
    //bench/peers:http_{epoll,uring,libuv,libevent,asio,asio_uring}
    and //examples/http:http_server;
  * two floors: bare epoll (echo_epoll) and bare io_uring (echo_uring:
    multishot accept and receive, provided buffers); Asio on its default
    epoll reactor and on its io_uring backend (ASIO_HAS_IO_URING);
  * Mill-IO servers in `--mode=direct` and `--mode=pool` with 1 and 2
    `--workers` (all pinned to CPU 0 like the peers' single loop thread: in
    pool mode that is one polling thread, plus a standby with 2 workers),
    each run with `--io=epoll` and again with `--io=uring` when the binary
    has the `--io` flag (found in its --helpfull; else only the epoll rows,
    with a note);
  * nginx (Debian's nginx-light, installed with apt on first use) as an HTTP
    peer: one process (master_process off), access log off, answering `/`
    with the same status, content type and body;
  * with --curve, the pool-mode scaling curve: for k = 1..nproc polling
    threads the echo server is pinned to CPUs 0..k-1 (so it polls with k
    threads) with --workers=k+1, the load generator to the last CPU.

Besides throughput, every table gives the server's CPU time per message
(µs) and its ratio to the bare-epoll floor's and to the bare io_uring
floor's in the same run, which is what issue #12's and issue #21's targets
are stated in: it is much less sensitive to a loaded machine than
messages/s. The section ends with issue #21's io_uring targets, each with
its measured ratio and met/missed (also printed on stderr);
--io-targets runs only the servers those targets name.

Each measurement is repeated (--runs, default 3; servers interleaved so that
drift hits all of them alike) and the median is reported. The results replace
the section between `<!-- BEGIN peer-comparison -->` and
`<!-- END peer-comparison -->` of docs/BENCHMARKS.md (created if missing;
the rest of the file is kept), with charts in docs/bench/*.png (matplotlib,
else gnuplot, else none) and the raw figures in docs/bench/peer-comparison.json.
`--micro` runs every cc_binary tagged "benchmark" with
`--benchmark_format=json --benchmark_min_time=0.3` and writes the
`<!-- BEGIN micro -->` section.

Mill-IO targets that do not exist or do not build are skipped with a note.
Other options: --runs/--duration/--warmup, --workers=1,2, --server-cpu=0,
--scenarios=1x64,100x64 (echo subset), --servers=epoll,Mill (substrings of
the names to include; both floors always run), --io-targets, --curve
(only the scaling curve with --only=curve),
--client-cpu=1, --no-pin, --no-build, --output=FILE, --charts-dir=DIR,
--mill-echo/--mill-http=LABEL, and for a shared machine --output_base=DIR
(Bazel startup option) and --bazel-arg=FLAG (repeatable build option, e.g.
--bazel-arg=--experimental_convenience_symlinks=ignore).
Needs: taskset (util-linux), wrk, python3; Bazel via ./bazelw; for charts
python3-matplotlib (also found as /usr/bin/python3 when another python3 runs
this script) or gnuplot.
"""

import argparse
import datetime
import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PEERS = [  # (display name, echo target, http target)
    ("epoll (floor)", "//bench/peers:echo_epoll", "//bench/peers:http_epoll"),
    ("io_uring (floor)", "//bench/peers:echo_uring",
     "//bench/peers:http_uring"),
    ("libuv", "//bench/peers:echo_libuv", "//bench/peers:http_libuv"),
    ("libevent", "//bench/peers:echo_libevent", "//bench/peers:http_libevent"),
    ("Asio", "//bench/peers:echo_asio", "//bench/peers:http_asio"),
    ("Asio io_uring", "//bench/peers:echo_asio_uring",
     "//bench/peers:http_asio_uring"),
]
FLOOR = "epoll (floor)"
URING_FLOOR = "io_uring (floor)"
FLOORS = (FLOOR, URING_FLOOR)
LIBRARY_PEERS = ["libuv", "libevent", "Asio", "Asio io_uring"]
# Suffix of the Mill-IO rows run with --io=uring (the others get --io=epoll
# when the binary has the flag, so that "auto" cannot change what they are).
URING_SUFFIX = ", io_uring"
MILL_ECHO = "//examples/echo:echo_server"
MILL_HTTP = "//examples/http:http_server"
ECHO_LOAD = "//bench:echo_load"
ECHO_SCENARIOS = [(1, 64), (1, 4096), (100, 64), (100, 4096), (1000, 64),
                  (1000, 4096)]  # (conns, B)
HTTP_CONNECTIONS = 100
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LISTENING_RE = re.compile(r"listening on \S*?:(\d+)")


def log(message):
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- Bazel


class Bazel:
    """Runs ./bazelw with the caller's startup and build options."""

    def __init__(self, args):
        self.startup = []
        if args.output_base:
            self.startup.append("--output_base=" + args.output_base)
        self.build_flags = ["--config=opt"] + list(args.bazel_arg)

    def _cmd(self, command, flags):
        return [str(ROOT / "bazelw")] + self.startup + [command] + flags

    def build(self, targets, keep_going=False):
        flags = self.build_flags + (["--keep_going"] if keep_going else [])
        cmd = self._cmd("build", flags) + ["--"] + targets
        log("$ " + shlex.join(cmd))
        return subprocess.run(cmd, cwd=ROOT).returncode == 0

    def exists(self, target):
        cmd = self._cmd("query", []) + [target]
        return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    def query(self, expression):
        cmd = self._cmd("query", ["--keep_going"]) + [expression]
        result = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        # 3: partial result because some package does not load.
        if result.returncode not in (0, 3):
            return None
        return [line for line in result.stdout.split() if line.startswith("//")]

    def bin_dir(self):
        cmd = self._cmd("info", self.build_flags) + ["bazel-bin"]
        out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, check=True)
        return Path(out.stdout.strip())


def binary_path(bin_dir, label):
    package, _, name = label[2:].partition(":")
    return bin_dir / package / name


# ------------------------------------------------------------ processes


def pin(cpu):
    """`cpu` is a CPU number or a taskset list such as "0-3"."""
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def cpu_seconds(pid):
    """utime + stime of a whole process (all threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Server:
    """A server subprocess; knows its port once it announced it."""

    def __init__(self, cmd, cpu):
        self.cmd = pin(cpu) + cmd
        self.tail = []  # Last lines of its output, for error messages.
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, errors="replace")
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream,),
                             daemon=True).start()
        self.port = None
        self.perf = {}

    def _drain(self, stream):
        for line in stream:
            self.tail = (self.tail + [line.rstrip()])[-15:]
            self.lines.put(line)

    def wait_ready(self, timeout=30.0, fixed_port=None):
        deadline = time.monotonic() + timeout
        if fixed_port is not None:  # A peer that announces nothing (nginx).
            while time.monotonic() < deadline and self.alive():
                try:
                    socket.create_connection(("127.0.0.1", fixed_port),
                                             timeout=1).close()
                    self.port = fixed_port
                    return True
                except OSError:
                    time.sleep(0.05)
            return False
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            match = LISTENING_RE.search(line)
            if match:
                self.port = int(match.group(1))
                return True
        return False

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def describe_failure(self):
        return "; ".join(self.tail[-3:]) or "no output"


PERF_EVENTS = "raw_syscalls:sys_enter,context-switches"


def start_perf(pid):
    """`perf stat` attached to the server for the run (software events and
    tracepoints only: they exist in VMs without hardware counters)."""
    if not PERF_ENABLED or not shutil.which("perf"):
        return None
    return subprocess.Popen(["perf", "stat", "-x,", "-e", PERF_EVENTS, "-p",
                             str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def stop_perf(proc):
    """{"syscalls": n, "switches": n} counted since start_perf, or {}."""
    if proc is None:
        return {}
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return {}
    counts = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) < 3 or not fields[0].strip().isdigit():
            continue
        if "sys_enter" in fields[2]:
            counts["syscalls"] = int(fields[0])
        elif "context-switches" in fields[2]:
            counts["switches"] = int(fields[0])
    return counts


PERF_ENABLED = False  # set by --perf


def run_measured(cmd, server, timeout):
    """Runs a load command; returns (returncode, stdout, stderr, server CPU
    seconds per wall second during the run). With --perf, also counts the
    server's system calls and context switches into server.perf."""
    perf = start_perf(server.proc.pid)
    before_cpu = cpu_seconds(server.proc.pid)
    before = time.monotonic()
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                timeout=timeout)
        rc, out, err = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", f"timed out after {timeout:.0f} s"
    wall = time.monotonic() - before
    after_cpu = cpu_seconds(server.proc.pid)
    server.perf = stop_perf(perf)
    util = None
    if before_cpu is not None and after_cpu is not None and wall > 0:
        util = (after_cpu - before_cpu) / wall
    return rc, out, err, util


# ------------------------------------------------------------------ echo


def run_echo(echo_load, server, conns, size, args):
    cmd = pin(args.client_cpu) + [
        str(echo_load), "--host=127.0.0.1", f"--port={server.port}",
        f"--connections={conns}", f"--size={size}",
        f"--duration={args.duration}", f"--warmup={args.warmup}"]
    rc, out, err, util = run_measured(
        cmd, server, timeout=args.duration + args.warmup + 60)
    lines = out.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        data = {}
    if rc != 0 or not data or data.get("errors", 1) != 0:
        stderr_tail = err.strip().splitlines()[-1:]
        reason = (data.get("error") or (stderr_tail[0] if stderr_tail else "")
                  or f"exit {rc}")
        return {"ok": False, "error": reason}
    data.update(ok=True, server_cpu=util)
    if util is not None and data.get("msgs_per_s"):
        data["cpu_us"] = util * 1e6 / data["msgs_per_s"]
    add_perf(data, server.perf, data.get("msgs_per_s"),
             args.duration + args.warmup)
    return data


def add_perf(data, perf, rate, seconds):
    """Per-message system calls and context switches (perf counted the
    warmup too, at about the same rate, hence rate * seconds)."""
    if not perf or not rate:
        return
    messages = rate * seconds
    if "syscalls" in perf:
        data["syscalls_per_msg"] = perf["syscalls"] / messages
    if "switches" in perf:
        data["switches_per_msg"] = perf["switches"] / messages


# ------------------------------------------------------------------ http


def parse_duration_us(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return None
    scale = {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[match.group(2)]
    return float(match.group(1)) * scale


def parse_wrk(output):
    """Extracts requests/s, latency (µs) and error counts from wrk's text."""
    result = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match:
        result["requests_per_s"] = float(match.group(1))
    match = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", output, re.M)
    if match:
        result["avg_us"] = parse_duration_us(match.group(1))
        result["max_us"] = parse_duration_us(match.group(3))
    for pct, key in (("50", "p50_us"), ("75", "p75_us"), ("90", "p90_us"),
                     ("99", "p99_us")):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M)
        if match:
            result[key] = parse_duration_us(match.group(1))
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+), (\S+) read", output)
    if match:
        result["requests"] = int(match.group(1))
    errors = 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                      r"timeout (\d+)", output)
    if match:
        errors += sum(int(g) for g in match.groups())
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if match:
        errors += int(match.group(1))
    result["errors"] = errors
    return result


def probe_http(port):
    """The bytes the server answers to one GET /, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(HTTP_REQUEST)
            data = b""
            while True:
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    if match and len(body) >= int(match.group(1)):
                        return data
                chunk = sock.recv(65536)
                if not chunk:
                    return data or None
                data += chunk
    except OSError:
        return None


def run_http(server, args):
    url = f"http://127.0.0.1:{server.port}/"
    base = pin(args.client_cpu) + ["wrk", "-t1", f"-c{HTTP_CONNECTIONS}"]
    if args.warmup > 0:
        subprocess.run(base + [f"-d{max(1, round(args.warmup))}s", url],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=args.warmup + 60)
    cmd = base + [f"-d{max(1, round(args.duration))}s", "--latency", url]
    rc, out, err, util = run_measured(cmd, server,
                                      timeout=args.duration + 60)
    data = parse_wrk(out)
    if rc != 0 or not data.get("requests_per_s"):
        return {"ok": False,
                "error": (err.strip() or out.strip() or f"exit {rc}")[-200:]}
    data.update(ok=True, server_cpu=util)
    if util is not None and data.get("requests_per_s"):
        data["cpu_us"] = util * 1e6 / data["requests_per_s"]
    add_perf(data, server.perf, data.get("requests_per_s"), args.duration)
    return data


# ----------------------------------------------------------------- nginx

NGINX = "/usr/sbin/nginx"


def ensure_nginx():
    """Installs Debian's nginx-light on first use (like tools/bootstrap.sh:
    root or password-less sudo, apt only). Returns the binary or None."""
    if os.path.exists(NGINX):
        return NGINX
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = sudo + ["apt-get", "install", "-y", "-q",
                      "--no-install-recommends", "nginx-light"]
    log("$ " + shlex.join(install))
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-q"], env=env)
        subprocess.run(install, env=env)
    return NGINX if os.path.exists(NGINX) else None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_command(workdir, port):
    """One nginx process answering every request like the HTTP peers: 200,
    Content-Type text/plain, body "Hello, world!". nginx adds Server, Date
    and Connection headers that cannot be turned off without extra
    modules, so its response is longer (the table says by how much)."""
    conf = Path(workdir) / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server_tokens off;
  keepalive_requests 1000000;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  server {{
    listen 127.0.0.1:{port} reuseport;
    tcp_nodelay on;
    location / {{
      default_type text/plain;
      return 200 "Hello, world!";
    }}
  }}
}}
""")
    return [NGINX, "-p", str(workdir), "-c", str(conf)]


# ----------------------------------------------------------- measuring


class Contender:
    """One server configuration in the comparison."""

    def __init__(self, name, label, extra_args=(), is_mill=False,
                 external=None):
        self.name = name
        self.label = label
        self.extra_args = list(extra_args)
        self.is_mill = is_mill
        self.external = external  # "nginx": not a Bazel target


IO_FLAG_RE = re.compile(r"(?m)^\s*--io\b(?![-_])")


def has_io_flag(binary):
    """Whether a Mill-IO example server takes --io=auto|epoll|uring. Its
    --helpfull is read: Abseil's --help lists only the flags of the file
    holding main(), and --io lives in examples/common/server_main.cc."""
    try:
        result = subprocess.run([str(binary), "--helpfull"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                errors="replace", timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(IO_FLAG_RE.search(result.stdout))


def contenders(protocol, mill_label, mill_ok, workers, io_flag=False):
    """The servers of one protocol's tables. With `io_flag` (the Mill-IO
    binary takes --io), each Mill-IO row runs with --io=epoll and is
    followed by the same configuration with --io=uring."""
    index = 1 if protocol == "echo" else 2
    result = [Contender(p[0], p[index]) for p in PEERS]
    if protocol == "http" and ensure_nginx():
        result.append(Contender("nginx", None, external="nginx"))
    # The peers send no Date or Server header: neither does Mill-IO here.
    same_bytes = ["--date=false", "--server_name="] if protocol == "http" else []
    if mill_ok:
        # Direct mode runs handlers on the loop thread: --workers is unused.
        modes = [("Mill-IO direct", ["--mode=direct"])]
        for n in workers:
            noun = "worker" if n == 1 else "workers"
            modes.append((f"Mill-IO pool, {n} {noun}",
                          [f"--workers={n}", "--mode=pool"]))
        for name, mode_args in modes:
            result.append(Contender(
                name, mill_label, mode_args + same_bytes +
                (["--io=epoll"] if io_flag else []), is_mill=True))
            if io_flag:
                result.append(Contender(
                    name + URING_SUFFIX, mill_label,
                    mode_args + same_bytes + ["--io=uring"], is_mill=True))
    return result


def measure(protocol, entries, bin_dir, args, notes):
    """Runs every scenario of `protocol` for every contender, args.runs
    times (interleaved). Returns {(name, scenario): [result, ...]}."""
    scenarios = args.echo_scenarios if protocol == "echo" else [("http",)]
    echo_load = binary_path(bin_dir, ECHO_LOAD)
    results = {}
    responses = {}
    total = args.runs * len(entries) * len(scenarios)
    done = 0
    for run in range(args.runs):
        for entry in entries:
            workdir = None
            fixed_port = None
            if entry.external == "nginx":
                workdir = tempfile.TemporaryDirectory(prefix="mill-nginx-")
                fixed_port = free_port()
                server = Server(nginx_command(workdir.name, fixed_port),
                                args.server_cpu)
            elif entry.external is not None:  # --extra-server binary
                server = Server([entry.external, "--port=0"] +
                                entry.extra_args, args.server_cpu)
            else:
                binary = binary_path(bin_dir, entry.label)
                server = Server([str(binary), "--port=0"] + entry.extra_args,
                                args.server_cpu)
            if not server.wait_ready(fixed_port=fixed_port):
                message = (f"{entry.name} ({entry.label}) did not announce "
                           f"'listening on ...:PORT': "
                           f"{server.describe_failure()}")
                server.stop()
                if workdir is not None:
                    workdir.cleanup()
                if message not in notes:
                    notes.append(message)
                for scenario in scenarios:
                    results.setdefault((entry.name, scenario), []).append(
                        {"ok": False, "error": "did not start (see notes)"})
                done += len(scenarios)
                continue
            if protocol == "http" and entry.name not in responses:
                responses[entry.name] = probe_http(server.port)
            for scenario in scenarios:
                done += 1
                if protocol == "echo":
                    outcome = run_echo(echo_load, server, scenario[0],
                                       scenario[1], args)
                    label = f"{scenario[0]} conn, {scenario[1]} B"
                    figure = outcome.get("msgs_per_s")
                    unit = "msg/s"
                else:
                    outcome = run_http(server, args)
                    label = f"wrk -c{HTTP_CONNECTIONS}"
                    figure = outcome.get("requests_per_s")
                    unit = "req/s"
                if outcome["ok"]:
                    log(f"[{done}/{total}] {protocol} {label:>16} "
                        f"{entry.name:<28} run {run + 1}: {figure:,.0f} {unit}")
                else:
                    log(f"[{done}/{total}] {protocol} {label:>16} "
                        f"{entry.name:<28} run {run + 1}: FAILED "
                        f"{outcome['error']}")
                results.setdefault((entry.name, scenario), []).append(outcome)
                if not server.alive():
                    break
            status = server.stop()
            if workdir is not None:
                workdir.cleanup()
            if status != 0 and entry.external != "nginx":
                message = (f"{entry.name} exited with status {status} on "
                           f"SIGTERM (expected 0): {server.describe_failure()}")
                if message not in notes:
                    notes.append(message)
    return results, responses


def median_of(runs, key):
    values = [r[key] for r in runs if r.get("ok") and r.get(key) is not None]
    return statistics.median(values) if values else None


def spread_pct(runs, key):
    values = [r[key] for r in runs if r.get("ok") and r.get(key) is not None]
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    return 100.0 * (max(values) - min(values)) / middle if middle else None


# -------------------------------------------------------------- report


def fmt_num(value, digits=0):
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def fmt_ratio(value, base):
    if value is None or not base:
        return "—"
    return f"{value / base:.2f}×"


def fmt_pct(value):
    return "—" if value is None else f"{100 * value:.0f}%"


def best_peer(entries, results, scenario, key):
    best = None
    for entry in entries:
        if entry.name in LIBRARY_PEERS:
            value = median_of(results.get((entry.name, scenario), []), key)
            if value is not None and (best is None or value > best[1]):
                best = (entry.name, value)
    return best


def cpu_ratio(results, name, scenario, base_name):
    """Median server CPU per message of `name` over that of `base_name`."""
    mine = median_of(results.get((name, scenario), []), "cpu_us")
    base = median_of(results.get((base_name, scenario), []), "cpu_us")
    return mine / base if mine and base else None


def echo_tables(entries, results, scenarios):
    out = []
    for scenario in scenarios:
        conns, size = scenario
        floor = median_of(results.get((FLOOR, scenario), []), "msgs_per_s")
        best = best_peer(entries, results, scenario, "msgs_per_s")
        best_text = f"{best[0]}" if best else "—"
        out.append(f"### Echo, {conns} connection{'s' if conns > 1 else ''}, "
                   f"{size} B messages\n")
        out.append(f"| Server | msgs/s | MB/s | p50 µs | p99 µs | vs epoll "
                   f"| vs best peer ({best_text}) | spread | server CPU "
                   f"| client CPU | server CPU µs/msg | CPU/msg vs epoll "
                   f"| CPU/msg vs io_uring | syscalls/msg | switches/msg |")
        out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:"
                   "|--:|")
        for entry in entries:
            runs = results.get((entry.name, scenario), [])
            ok = [r for r in runs if r.get("ok")]
            if not ok:
                error = runs[0]["error"] if runs else "not run"
                out.append(f"| {entry.name} | failed: {error[:60]} "
                           f"| | | | | | | | | | | | | |")
                continue
            mps = median_of(runs, "msgs_per_s")
            ratio = cpu_ratio(results, entry.name, scenario, FLOOR)
            uring = cpu_ratio(results, entry.name, scenario, URING_FLOOR)
            out.append(
                f"| {entry.name} | {fmt_num(mps)} "
                f"| {fmt_num(median_of(runs, 'mb_per_s'), 1)} "
                f"| {fmt_num(median_of(runs, 'p50_us'), 1)} "
                f"| {fmt_num(median_of(runs, 'p99_us'), 1)} "
                f"| {fmt_ratio(mps, floor)} "
                f"| {fmt_ratio(mps, best[1] if best else None)} "
                f"| {fmt_num(spread_pct(runs, 'msgs_per_s'), 1)}% "
                f"| {fmt_pct(median_of(runs, 'server_cpu'))} "
                f"| {fmt_pct(median_of(runs, 'client_cpu'))} "
                f"| {fmt_num(median_of(runs, 'cpu_us'), 2)} "
                f"| {'—' if ratio is None else f'{ratio:.2f}×'} "
                f"| {'—' if uring is None else f'{uring:.2f}×'} "
                f"| {fmt_num(median_of(runs, 'syscalls_per_msg'), 2)} "
                f"| {fmt_num(median_of(runs, 'switches_per_msg'), 3)} |"
                .replace("| —% |", "| — |"))
        out.append("")
    return out


def cpu_summary(protocols):
    """Issue #12's figure: server CPU per message as a ratio to the epoll
    floor (and, for HTTP, to nginx), lower is better; one row per server.
    Then the same relative to the io_uring floor (issue #21), when it ran."""
    out = []
    for base, base_text in ((FLOOR, "bare-epoll floor"),
                            (URING_FLOOR, "bare io_uring floor")):
        columns = []  # (title, results, scenario, base)
        names = []
        ran = False
        for protocol, entries, results, _ in protocols:
            for entry in entries:
                if entry.name not in names and entry.name != base:
                    names.append(entry.name)
            ran = ran or any(name == base and any(r.get("ok") for r in runs)
                             for (name, _), runs in results.items())
            scenarios = ([s for s in results_scenarios(results)]
                         if protocol == "echo" else [("http",)])
            for scenario in scenarios:
                if protocol == "echo":
                    columns.append((f"echo {scenario[0]}×{scenario[1]} B",
                                    results, scenario, base))
                elif base == FLOOR:
                    columns.append(("HTTP vs epoll", results, scenario, base))
                    columns.append(("HTTP vs nginx", results, scenario,
                                    "nginx"))
                else:
                    columns.append(("HTTP vs io_uring", results, scenario,
                                    base))
        if not columns or (base != FLOOR and not ran):
            continue
        which = "" if base == FLOOR else ", to the io_uring floor"
        also = " (or nginx's)" if base == FLOOR else ""
        out += [f"### Server CPU per message, relative{which} (lower is "
                f"better)\n",
                f"Median server CPU time per message (per request for HTTP) "
                f"divided by the {base_text}'s{also} in the same run.\n",
                "| Server | " + " | ".join(c[0] for c in columns) + " |",
                "|---|" + "--:|" * len(columns)]
        for name in names:
            cells = []
            for _, results, scenario, column_base in columns:
                ratio = cpu_ratio(results, name, scenario, column_base)
                cells.append("—" if ratio is None else f"{ratio:.2f}×")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def io_targets(protocols):
    """Issue #21's io_uring targets, each with the measured ratio of server
    CPU per message (medians) and met/missed, for every Mill-IO
    configuration run with --io=uring. Returns markdown lines ([] when no
    Mill-IO io_uring row ran)."""
    echo = next((r for p, _, r, _ in protocols if p == "echo"), {})
    http = next((r for p, _, r, _ in protocols if p == "http"), {})
    names = []
    for _, entries, _, _ in protocols:
        for entry in entries:
            if entry.is_mill and entry.name.endswith(URING_SUFFIX) and \
                    entry.name not in names:
                names.append(entry.name)
    if not names:
        return []
    rows = []  # (target, scenario, server, measured, bound, result)

    def check(target, where, name, results, scenario, base, bound,
              strict=False):
        ratio = cpu_ratio(results, name, scenario, base)
        if ratio is None:
            verdict = "not measured"
        elif ratio < bound or (not strict and ratio == bound):
            verdict = "**met**"
        else:
            verdict = "**missed**"
        measured = "—" if ratio is None else f"{ratio:.2f}× {base}"
        rows.append((target, where, name, measured,
                     f"{'<' if strict else '≤'} {bound:.2f}×", verdict))
        return ratio

    def echo_where(scenario):
        return f"echo {scenario[0]}×{scenario[1]} B"

    echo_scenarios = results_scenarios(echo)
    for name in names:
        epoll_name = name[:-len(URING_SUFFIX)]
        for scenario in [s for s in echo_scenarios if s[0] == 100]:
            check("(a) 100 conns", echo_where(scenario), name, echo,
                  scenario, FLOOR, 0.9)
            check("(a) 100 conns", echo_where(scenario), name, echo,
                  scenario, URING_FLOOR, 1.05)
        for scenario in [s for s in echo_scenarios if s[0] == 1000]:
            check("(b) 1000 conns", echo_where(scenario), name, echo,
                  scenario, FLOOR, 1.0)
        for scenario in [s for s in echo_scenarios if s[0] == 1]:
            check("(c) 1 conn, same mode", echo_where(scenario), name, echo,
                  scenario, epoll_name, 1.0)
        # (d): the worst scenario against each Asio backend, one row each.
        for asio in ("Asio", "Asio io_uring"):
            worst = None
            for results, scenario, where in (
                    [(echo, s, echo_where(s)) for s in echo_scenarios] +
                    ([(http, ("http",), "HTTP")] if http else [])):
                ratio = cpu_ratio(results, name, scenario, asio)
                if ratio is not None and (worst is None or ratio > worst[0]):
                    worst = (ratio, results, scenario, where)
            if worst is None:
                rows.append(("(d) below Asio everywhere", "all", name,
                             f"— {asio}", "< 1.00×", "not measured"))
            else:
                check("(d) below Asio everywhere",
                      f"worst: {worst[3]}", name, worst[1], worst[2], asio,
                      1.0, strict=True)
        if http:
            check("(e) HTTP c=100 vs nginx", "HTTP", name, http, ("http",),
                  "nginx", 0.9)
    met = sum(1 for r in rows if r[5] == "**met**")
    missed = sum(1 for r in rows if r[5] == "**missed**")
    out = ["### Issue #21 io_uring targets\n",
           "Server CPU per message (per request for HTTP), median, as a ratio "
           "to the named server's in the same run: (a) at 100 connections "
           "Mill-IO on io_uring ≤ 0.9× the epoll floor and ≤ 1.05× the "
           "io_uring floor; (b) at 1000 connections ≤ 1.0× the epoll floor; "
           "(c) at 1 connection ≤ Mill-IO on epoll in the same mode; (d) "
           "below Asio on epoll and on io_uring in every scenario (the "
           "worst one is shown); (e) HTTP hello, 100 connections, ≤ 0.9× "
           "nginx. Every Mill-IO configuration run with --io=uring is "
           "checked.\n",
           f"{met} met, {missed} missed, "
           f"{len(rows) - met - missed} not measured.\n",
           "| Target | Scenario | Mill-IO | Measured | Bound | Result |",
           "|---|---|---|--:|--:|---|"]
    for row in rows:
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return out


def results_scenarios(results):
    seen = []
    for (_, scenario) in results:
        if scenario not in seen and scenario != ("http",):
            seen.append(scenario)
    return sorted(seen)


def http_table(entries, results, responses):
    scenario = ("http",)
    floor = median_of(results.get((FLOOR, scenario), []), "requests_per_s")
    best = best_peer(entries, results, scenario, "requests_per_s")
    reference = responses.get(FLOOR)
    out = [f"### HTTP hello, {HTTP_CONNECTIONS} keep-alive connections "
           f"(wrk -t1 -c{HTTP_CONNECTIONS})\n",
           f"| Server | requests/s | avg µs | p50 µs | p99 µs | vs epoll "
           f"| vs best peer ({best[0] if best else '—'}) | spread "
           f"| server CPU | server CPU µs/req | CPU/req vs epoll "
           f"| CPU/req vs io_uring | CPU/req vs nginx | response | errors |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    differing = []
    for entry in entries:
        runs = results.get((entry.name, scenario), [])
        response = responses.get(entry.name)
        if response is None:
            response_text = "—"
        else:
            response_text = f"{len(response)} B"
            if reference is not None and response != reference:
                response_text += " (differs)"
                differing.append((entry.name, response))
        if not any(r.get("ok") for r in runs):
            error = runs[0]["error"] if runs else "not run"
            out.append(f"| {entry.name} | failed: {error[:60]} "
                       f"| | | | | | | | | | | | {response_text} | |")
            continue
        rps = median_of(runs, "requests_per_s")
        vs_floor = cpu_ratio(results, entry.name, scenario, FLOOR)
        vs_uring = cpu_ratio(results, entry.name, scenario, URING_FLOOR)
        vs_nginx = cpu_ratio(results, entry.name, scenario, "nginx")
        errors = sum(r.get("errors", 0) for r in runs if r.get("ok"))
        out.append(
            f"| {entry.name} | {fmt_num(rps)} "
            f"| {fmt_num(median_of(runs, 'avg_us'), 1)} "
            f"| {fmt_num(median_of(runs, 'p50_us'), 1)} "
            f"| {fmt_num(median_of(runs, 'p99_us'), 1)} "
            f"| {fmt_ratio(rps, floor)} "
            f"| {fmt_ratio(rps, best[1] if best else None)} "
            f"| {fmt_num(spread_pct(runs, 'requests_per_s'), 1)}% "
            f"| {fmt_pct(median_of(runs, 'server_cpu'))} "
            f"| {fmt_num(median_of(runs, 'cpu_us'), 2)} "
            f"| {'—' if vs_floor is None else f'{vs_floor:.2f}×'} "
            f"| {'—' if vs_uring is None else f'{vs_uring:.2f}×'} "
            f"| {'—' if vs_nginx is None else f'{vs_nginx:.2f}×'} "
            f"| {response_text} | {errors} |".replace("| —% |", "| — |"))
    out.append("")
    if reference is not None:
        out.append(f"The peers answer each request with the same "
                   f"{len(reference)} bytes (bench/peers/hello_response.h).")
    for name, response in differing:
        if name == "nginx":
            out.append(f"nginx sends the same status, content type and body "
                       f"but adds Server, Date and Connection headers "
                       f"({len(response)} B), which nginx-light cannot "
                       f"remove.")
            continue
        out.append(f"{name} answers differently, so its figures are not "
                   f"byte-for-byte comparable: `{response[:120]!r}`.")
    out.append("")
    return out


def machine_info():
    info = {"nproc": os.cpu_count(), "cpu": "unknown",
            "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["nproc"] = int(subprocess.run(
            ["nproc"], stdout=subprocess.PIPE, text=True).stdout)
    except (OSError, ValueError):
        pass
    versions = {}
    for package in ("libuv1-dev", "libevent-dev", "libasio-dev", "wrk", "g++"):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if result.returncode == 0:
            versions[package] = result.stdout.strip()
    info["versions"] = versions
    info["loadavg"] = os.getloadavg()
    return info


def machine_lines(info, load_after):
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return [
        f"- Machine: {info['cpu']}, nproc {info['nproc']}, Linux "
        f"{info['kernel']}.",
        f"- Packages: {versions}.",
        f"- Load average (1/5/15 min) before: "
        f"{' / '.join(f'{x:.2f}' for x in info['loadavg'])}; after: "
        f"{' / '.join(f'{x:.2f}' for x in load_after)} "
        f"(anything well above 0 means the figures are noisy).",
    ]


def method_lines(args, pinned):
    if pinned:
        placement = (f"Each server runs pinned to CPU {args.server_cpu} "
                     f"(`taskset`), the load generator to CPU "
                     f"{args.client_cpu}; Mill-IO's workers share the "
                     f"server's CPU, so extra workers cannot add CPU, only "
                     f"overhead or overlap.")
    else:
        placement = ("Not pinned (fewer than 2 CPUs or --no-pin): server and "
                     "load share the machine.")
    return [
        f"- {placement}",
        "- Peers: one loop thread; 127.0.0.1, SO_REUSEADDR, TCP_NODELAY on "
        "accepted sockets, 16 KiB reads, identical per-connection protocol "
        "code (bench/peers/session.h); only the event loop differs.",
        f"- Echo load: `//bench:echo_load`, one thread, closed loop (one "
        f"message in flight per connection), every echoed byte verified; "
        f"{args.warmup:g} s warmup then {args.duration:g} s measured. MB/s "
        f"counts payload one way (1 MB = 10^6 B). Latency: first byte sent "
        f"to last byte received.",
        f"- HTTP load: wrk 1 thread, {HTTP_CONNECTIONS} keep-alive "
        f"connections, {max(1, round(args.duration))} s after a "
        f"{max(1, round(args.warmup)) if args.warmup > 0 else 0} s warmup "
        f"run.",
        f"- Each figure is the median of {args.runs} run"
        f"{'s' if args.runs > 1 else ''} (servers interleaved); *spread* is "
        f"(max − min) / median of throughput; *server CPU* / *client CPU* "
        f"are CPU seconds per wall second (a client near 100% may be the "
        f"bottleneck, not the server). vs epoll and vs best peer are "
        f"throughput ratios (higher is better).",
    ]


# --------------------------------------------------------------- charts


def chart_tool():
    """("matplotlib", python or None) / ("gnuplot", None) / (None, None).

    matplotlib may be importable only by the system's /usr/bin/python3
    (python3-matplotlib) when another python3 (pyenv, venv) runs this script;
    charts are then drawn by a /usr/bin/python3 child."""
    try:
        import matplotlib  # noqa: F401
        return "matplotlib", None
    except ImportError:
        pass
    system_python = "/usr/bin/python3"
    if (os.path.exists(system_python) and os.path.realpath(system_python)
            != os.path.realpath(sys.executable)):
        probe = subprocess.run([system_python, "-c", "import matplotlib"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            return "matplotlib", system_python
    if shutil.which("gnuplot"):
        return "gnuplot", None
    return None, None


def chart_series(protocol, entries, results):
    """(title, ylabel, categories, {server: [values]}) or None."""
    if protocol == "echo":
        measured = results_scenarios(results)
        categories = [f"{c} conn, {s} B" for c, s in measured]
        series = {}
        for entry in entries:
            values = []
            for scenario in measured:
                floor = median_of(results.get((FLOOR, scenario), []),
                                  "msgs_per_s")
                value = median_of(results.get((entry.name, scenario), []),
                                  "msgs_per_s")
                values.append(value / floor if value and floor else 0)
            series[entry.name] = values
        return ("Echo throughput relative to bare epoll (higher is better)",
                "msgs/s ÷ epoll msgs/s", categories, series)
    categories = ["HTTP hello"]
    series = {e.name: [median_of(results.get((e.name, ("http",)), []),
                                 "requests_per_s") or 0] for e in entries}
    return (f"HTTP hello, wrk -t1 -c{HTTP_CONNECTIONS} keep-alive: "
            f"requests/s (higher is better)", "requests/s", categories,
            series)


def draw_matplotlib(path, title, ylabel, categories, series):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(series)
    if len(categories) == 1:
        # One scenario: one horizontal bar per server, labelled with it.
        values = [series[n][0] for n in names]
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.4), dpi=100)
        bars = ax.barh(names[::-1], values[::-1],
                       color=[f"C{i}" for i in range(len(names))][::-1])
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values[::-1]],
                     fontsize=8, padding=3)
        ax.set_xlabel(ylabel)
        ax.set_title(title)
        ax.margins(x=0.15)
        ax.grid(axis="x", alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(10, 4.8), dpi=100)
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            offset = (i - (len(names) - 1) / 2) * width
            bars = ax.bar([c + offset for c in range(len(categories))],
                          series[name], width, label=name)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90,
                         padding=2)
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.margins(y=0.15)
        ax.legend(fontsize=8, ncol=2)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_gnuplot(path, title, ylabel, categories, series):
    names = list(series)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.tsv"
        with open(data, "w") as f:
            f.write("scenario\t" + "\t".join(f'"{n}"' for n in names) + "\n")
            for i, category in enumerate(categories):
                f.write(f'"{category}"\t' + "\t".join(
                    f"{series[n][i]:.4f}" for n in names) + "\n")
        script = "\n".join([
            f"set output '{path}'",
            f"set title '{title}'",
            f"set ylabel '{ylabel}'",
            "set style data histograms",
            "set style histogram cluster gap 1",
            "set style fill solid 0.8 border -1",
            "set key outside right top",
            "set yrange [0:*]",
            "set offsets 0, 0, graph 0.1, 0",
            "set grid ytics",
            "set datafile separator '\\t'",
            f"plot for [i=2:{len(names) + 1}] '{data}' using i:xtic(1) "
            "title columnheader(i)",
        ])
        for terminal in ("pngcairo size 1000,480", "png size 1000,480"):
            result = subprocess.run(
                ["gnuplot"], input=f"set terminal {terminal}\n{script}\n",
                text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if result.returncode == 0:
                return
        raise RuntimeError(result.stderr.strip()[-200:])


def draw_charts(protocols, charts_dir, md_dir):
    """protocols: [(protocol, entries, results)]. Returns markdown lines."""
    tool, python = chart_tool()
    if tool is None:
        return ["Charts skipped: neither matplotlib (`python3-matplotlib`) "
                "nor gnuplot (`gnuplot-nox`) is installed.", ""]
    charts_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for protocol, entries, results in protocols:
        title, ylabel, categories, series = chart_series(protocol, entries,
                                                         results)
        path = charts_dir / f"peer-{protocol}.png"
        try:
            if tool == "matplotlib" and python:
                spec = json.dumps([str(path), title, ylabel, categories,
                                   series])
                subprocess.run([python, __file__, "--draw-chart", spec],
                               check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            elif tool == "matplotlib":
                draw_matplotlib(path, title, ylabel, categories, series)
            else:
                draw_gnuplot(path, title, ylabel, categories, series)
        except Exception as error:  # A chart must not lose the tables.
            lines += [f"Chart {path.name} failed ({tool}): {error}", ""]
            continue
        rel = os.path.relpath(path, md_dir)
        lines += [f"![{title}]({rel})", ""]
    return lines


# ------------------------------------------------------------- markdown


def write_section(path, name, body):
    """Replaces the `name` section of `path` (or appends it)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if path.exists():
        text = path.read_text()
        start = text.find(begin)
        stop = text.find(end, start + len(begin)) if start >= 0 else -1
        if start >= 0 and stop >= 0:
            text = text[:start] + block + text[stop + len(end):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = ("# Mill-IO benchmarks\n\nSections between BEGIN/END markers "
                "are generated by `python3 bench/run_all.py`; edit outside "
                "them.\n\n" + block + "\n")
    path.write_text(text)


# ---------------------------------------------------------------- micro


def fmt_time(value, unit):
    return f"{value:,.1f} {unit}" if value is not None else "—"


def fmt_rate(value):
    if value is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {suffix}/s"
    return f"{value:.1f} /s"


def source_universe():
    """`//a/... + //b/...` over the repository's top-level folders that hold
    BUILD files. Not `//...`: that would also walk the bazel-* convenience
    symlinks when they belong to another output base (no .bazelignore)."""
    patterns = []
    for child in sorted(ROOT.iterdir()):
        if (not child.is_dir() or child.is_symlink() or
                child.name.startswith((".", "bazel-")) or
                child.name == "third_party"):
            continue
        if any(name in ("BUILD", "BUILD.bazel")
               for _, _, files in os.walk(child) for name in files):
            patterns.append(f"//{child.name}/...")
    return " + ".join(patterns) or "//..."


def run_micro(bazel, bin_dir, args, command):
    targets = bazel.query(
        'kind("cc_binary", attr(tags, "\\bbenchmark\\b", '
        f'{source_universe()}))')
    lines = ["## Micro-benchmarks", "",
             f"Generated by `{command}` on {now_text()}: every `cc_binary` "
             f"tagged `benchmark`, run with `--benchmark_format=json "
             f"--benchmark_min_time={args.micro_min_time}` (not pinned: "
             f"some are multi-threaded).", ""]
    if targets is None:
        return lines + ["`bazel query` failed; nothing was run."]
    if not targets:
        return lines + ["No benchmark targets found."]
    if not bazel.build(targets, keep_going=True):
        log("note: some benchmark targets failed to build")
    for target in targets:
        binary = binary_path(bin_dir, target)
        lines.append(f"### `{target}`\n")
        if not binary.exists():
            lines += ["Did not build.", ""]
            continue
        cmd = [str(binary), "--benchmark_format=json",
            f"--benchmark_min_time={args.micro_min_time}"]
        log("$ " + shlex.join(cmd))
        try:
            result = subprocess.run(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    timeout=1800)
            start = result.stdout.find("{")
            data = json.loads(result.stdout[start:]) if start >= 0 else None
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as error:
            result, data = None, None
            lines += [f"Failed: {error}", ""]
            continue
        if result.returncode != 0 or data is None:
            tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
            lines += [f"Failed (exit {result.returncode}): {tail[0]}", ""]
            continue
        context = data.get("context", {})
        load = context.get("load_avg") or []
        lines.append(f"{context.get('num_cpus', '?')} CPUs; load average "
                     f"{' / '.join(f'{x:.2f}' for x in load) or '?'}; "
                     f"libbenchmark built as "
                     f"{context.get('library_build_type', '?')}.\n")
        lines.append("| Benchmark | real time | CPU time | iterations "
                     "| items/s | bytes/s |")
        lines.append("|---|--:|--:|--:|--:|--:|")
        for bench in data.get("benchmarks", []):
            if bench.get("error_occurred"):
                lines.append(f"| {bench.get('name')} | error: "
                             f"{bench.get('error_message', '')} | | | | |")
                continue
            unit = bench.get("time_unit", "ns")
            lines.append(
                f"| {bench.get('name')} "
                f"| {fmt_time(bench.get('real_time'), unit)} "
                f"| {fmt_time(bench.get('cpu_time'), unit)} "
                f"| {bench.get('iterations', '—')} "
                f"| {fmt_rate(bench.get('items_per_second'))} "
                f"| {fmt_rate(bench.get('bytes_per_second'))} |")
        lines.append("")
    return lines


# ----------------------------------------------------------------- main


def now_text():
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the top of bench/run_all.py for what is measured.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 run, 2 s each, 0.5 s warmup")
    parser.add_argument("--only", choices=("echo", "http", "micro", "curve"),
                        help="run only this part")
    parser.add_argument("--extra-server", action="append", default=[],
                        metavar="NAME|PATH|ARGS",
                        help="also measure this server binary (repeatable; "
                             "for A/B runs of another build), e.g. "
                             "'old pool, 2 workers|/tmp/old/echo_server|"
                             "--mode=pool --workers=2'; a name prefixed "
                             "'echo:' or 'http:' is measured for that "
                             "protocol only")
    parser.add_argument("--perf", action="store_true",
                        help="count the server's system calls and context "
                             "switches per message with perf stat")
    parser.add_argument("--io-targets", action="store_true",
                        help="run only the servers issue #21's io_uring "
                             "targets name (the floors, both Asio backends, "
                             "nginx, Mill-IO), all echo scenarios and HTTP")
    parser.add_argument("--curve", action="store_true",
                        help="also measure pool mode with 1..nproc polling "
                             "threads (echo, 100 connections, 64 B)")
    parser.add_argument("--scenarios", default=None,
                        help="echo scenarios, e.g. 1x64,100x64 (default: "
                             "1, 100 and 1000 connections x 64 and 4096 B)")
    parser.add_argument("--servers", default=None,
                        help="comma-separated substrings; only servers whose "
                             "name contains one (the floors always run)")
    parser.add_argument("--micro", action="store_true",
                        help="also run the Google Benchmark binaries")
    parser.add_argument("--runs", type=int, help="repetitions (default 3)")
    parser.add_argument("--duration", type=float,
                        help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float,
                        help="warmup seconds per run (default 1)")
    parser.add_argument("--workers", default="1,2",
                        help="Mill-IO worker counts (default 1,2)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true",
                        help="do not use taskset")
    parser.add_argument("--micro-min-time", default="0.3",
                        help="--benchmark_min_time for --micro")
    parser.add_argument("--mill-echo", default=MILL_ECHO,
                        help=f"Mill-IO echo server label ({MILL_ECHO})")
    parser.add_argument("--mill-http", default=MILL_HTTP,
                        help=f"Mill-IO HTTP server label ({MILL_HTTP})")
    parser.add_argument("--output", default=str(ROOT / "docs/BENCHMARKS.md"),
                        help="markdown file to update")
    parser.add_argument("--charts-dir", default=None,
                        help="default: bench/ next to the markdown file")
    parser.add_argument("--no-build", action="store_true",
                        help="use what is already built")
    parser.add_argument("--output_base", "--output-base", dest="output_base",
                        help="Bazel --output_base (startup option)")
    parser.add_argument("--bazel-arg", action="append", default=[],
                        help="extra Bazel build option (repeatable)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.duration = args.duration or (2.0 if quick else 5.0)
    if args.warmup is None:
        args.warmup = 0.5 if quick else 1.0
    args.workers = [int(w) for w in args.workers.split(",") if w]
    if args.scenarios:
        args.echo_scenarios = [tuple(int(x) for x in item.split("x"))
                               for item in args.scenarios.split(",") if item]
    else:
        args.echo_scenarios = list(ECHO_SCENARIOS)
    args.server_filter = ([x.strip() for x in args.servers.split(",")]
                          if args.servers else None)
    return args


def keep_server(args, name):
    if name in FLOORS:
        return True
    if args.io_targets and name in ("libuv", "libevent"):
        return False
    if args.server_filter is None:
        return True
    return any(part in name for part in args.server_filter)


def raise_fd_limit(args):
    """Lets the 1000-connection scenarios open their sockets: the soft
    RLIMIT_NOFILE (inherited by the servers and echo_load) goes up to the
    hard limit. Returns a note if that is still too low, else None."""
    import resource
    need = 2 * max([c for c, _ in args.echo_scenarios] + [HTTP_CONNECTIONS])
    need += 256  # Listeners, rings, pipes, the loops' own descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = hard if hard == resource.RLIM_INFINITY else max(soft, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        return (f"open-file limit {soft} is below the {need} descriptors the "
                f"largest echo scenario needs (raise `ulimit -n`); its "
                f"connections may fail")
    return None


# ---------------------------------------------------------------- curve


def run_curve(bin_dir, args, notes):
    """Pool mode with k = 1..nproc polling threads: the echo server pinned
    to CPUs 0..k-1 (its default polling_threads is the CPUs it may run on)
    with --workers=k+1 (one standby), echo_load pinned to the last CPU.
    Returns markdown lines."""
    nproc = os.cpu_count() or 1
    client_cpu = nproc - 1
    echo_load = binary_path(bin_dir, ECHO_LOAD)
    binary = binary_path(bin_dir, args.mill_echo)
    rows = []
    for conns, size in ((100, 64), (1, 64)):
        for k in range(1, nproc + 1):
            cpus = "0" if k == 1 else f"0-{k - 1}"
            runs = []
            for run in range(args.runs):
                server = Server([str(binary), "--port=0", "--mode=pool",
                                 f"--workers={k + 1}"], cpus)
                if not server.wait_ready():
                    notes.append(f"curve: echo_server did not start: "
                                 f"{server.describe_failure()}")
                    server.stop()
                    continue
                saved = args.client_cpu
                args.client_cpu = client_cpu
                outcome = run_echo(echo_load, server, conns, size, args)
                args.client_cpu = saved
                server.stop()
                log(f"curve {conns}x{size} B, {k} polling thread(s), run "
                    f"{run + 1}: " + (f"{outcome['msgs_per_s']:,.0f} msg/s"
                                      if outcome["ok"] else outcome["error"]))
                runs.append(outcome)
            rows.append((conns, size, k, cpus, runs))
    out = ["## Pool mode scaling: polling threads 1..nproc", "",
           f"Generated by `{args.command}` on {now_text()}. Echo through "
           f"`//examples/echo:echo_server --mode=pool --workers=k+1` pinned "
           f"to CPUs 0..k-1 (so it polls with k threads, plus one standby), "
           f"`//bench:echo_load` pinned to CPU {client_cpu}; median of "
           f"{args.runs} run(s) of {args.duration:g} s. On a machine with "
           f"few cores the last point shares its CPU with the load "
           f"generator.", "",
           "| load | polling threads | server CPUs | msgs/s | server CPU "
           "| server CPU µs/msg |", "|---|--:|---|--:|--:|--:|"]
    for conns, size, k, cpus, runs in rows:
        out.append(f"| {conns} conn × {size} B | {k} | {cpus} "
                   f"| {fmt_num(median_of(runs, 'msgs_per_s'))} "
                   f"| {fmt_pct(median_of(runs, 'server_cpu'))} "
                   f"| {fmt_num(median_of(runs, 'cpu_us'), 2)} |")
    out.append("")
    return out


def main(argv):
    if len(argv) == 2 and argv[0] == "--draw-chart":  # See chart_tool().
        draw_matplotlib(*json.loads(argv[1]))
        return 0
    args = parse_args(argv)
    global PERF_ENABLED
    PERF_ENABLED = args.perf
    command = shlex.join(["python3", "bench/run_all.py"] + argv)
    output = Path(args.output).resolve()
    charts_dir = (Path(args.charts_dir).resolve() if args.charts_dir
                  else output.parent / "bench")
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2 and bool(
        shutil.which("taskset"))
    if not pinned:
        args.server_cpu = args.client_cpu = None
    protocols = []
    if args.only in (None, "echo"):
        protocols.append("echo")
    if args.only in (None, "http"):
        protocols.append("http")
        if not shutil.which("wrk"):
            sys.exit("wrk is not installed (apt-get install wrk, or run "
                     "./bazelw once so tools/bootstrap.sh installs it)")
    micro = args.micro or args.only == "micro"
    curve = args.curve or args.only == "curve"
    args.command = command

    bazel = Bazel(args)
    notes = []
    if protocols:
        note = raise_fd_limit(args)
        if note:
            notes.append(note)
    mill_labels = {"echo": args.mill_echo, "http": args.mill_http}
    mill_ok = {}
    if protocols:
        for protocol in protocols:
            mill_ok[protocol] = bazel.exists(mill_labels[protocol])
            if not mill_ok[protocol]:
                notes.append(f"{mill_labels[protocol]} does not exist yet; "
                             f"Mill-IO is missing from the {protocol} "
                             f"tables.")
        if not args.no_build and not bazel.build(["//bench/...",
                                                  "//examples/..."]):
            log("note: the full build failed; building the harness alone")
            if not bazel.build(["//bench/..."]):
                sys.exit("building //bench/... failed")
            for protocol in protocols:
                if mill_ok[protocol] and not bazel.build(
                        [mill_labels[protocol]]):
                    mill_ok[protocol] = False
                    notes.append(f"{mill_labels[protocol]} does not build; "
                                 f"Mill-IO is missing from the {protocol} "
                                 f"tables.")
    bin_dir = bazel.bin_dir()
    io_flag = {}
    for protocol in protocols:
        io_flag[protocol] = mill_ok[protocol] and has_io_flag(
            binary_path(bin_dir, mill_labels[protocol]))
        if mill_ok[protocol] and not io_flag[protocol]:
            notes.append(f"{mill_labels[protocol]} has no --io flag (not in "
                         f"its --helpfull): Mill-IO runs on its default "
                         f"backend only, without io_uring rows.")

    if protocols:
        info = machine_info()
        started = now_text()
        measured = []
        for protocol in protocols:
            entries = [e for e in contenders(protocol, mill_labels[protocol],
                                             mill_ok[protocol], args.workers,
                                             io_flag[protocol])
                       if keep_server(args, e.name)]
            for spec in args.extra_server:
                name, path, extra = (spec.split("|") + ["", ""])[:3]
                # "echo:NAME" / "http:NAME": that protocol only.
                only, _, rest = name.partition(":")
                if rest and only in ("echo", "http"):
                    if only != protocol:
                        continue
                    name = rest
                entries.append(Contender(name, None, extra.split(),
                                         is_mill=True, external=path))
            results, responses = measure(protocol, entries, bin_dir, args,
                                         notes)
            measured.append((protocol, entries, results, responses))
        load_after = os.getloadavg()

        body = ["## Mill-IO vs libuv, libevent, Asio and bare epoll/io_uring",
                "",
                f"Generated by `{command}` on {started}. Do not edit by "
                f"hand: rerun the command.", ""]
        if args.quick:
            body += ["**Quick mode** (smoke test): one short run per figure; "
                     "do not draw conclusions from these numbers.", ""]
        body += machine_lines(info, load_after) + method_lines(args, pinned)
        body.append("")
        for protocol, entries, results, responses in measured:
            body += (echo_tables(entries, results, args.echo_scenarios)
                     if protocol == "echo"
                     else http_table(entries, results, responses))
        body += cpu_summary(measured)
        targets = io_targets(measured)
        body += targets
        if targets:
            log("\n".join(line for line in targets if line.startswith("|")))
        body += draw_charts([(p, e, r) for p, e, r, _ in measured],
                            charts_dir, output.parent)
        if notes:
            body += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
        write_section(output, "peer-comparison", "\n".join(body))
        charts_dir.mkdir(parents=True, exist_ok=True)
        raw = {"command": command, "date": started, "machine": info,
               "runs": args.runs, "duration_s": args.duration,
               "warmup_s": args.warmup, "notes": notes, "results": [
                   {"protocol": p, "server": name, "scenario": list(s),
                    "runs": runs}
                   for p, _, results, _ in measured
                   for (name, s), runs in results.items()]}
        (charts_dir / "peer-comparison.json").write_text(
            json.dumps(raw, indent=1) + "\n")
        log(f"wrote the peer-comparison section of {output}")

    if curve:
        if not protocols and not args.no_build:
            bazel.build(["//bench:echo_load", args.mill_echo])
        curve_notes = []
        lines = run_curve(bin_dir, args, curve_notes)
        if curve_notes:
            lines += ["Notes:", ""] + [f"- {n}" for n in curve_notes] + [""]
        write_section(output, "pool-curve", "\n".join(lines))
        log(f"wrote the pool-curve section of {output}")

    if micro:
        lines = run_micro(bazel, bin_dir, args, command)
        write_section(output, "micro", "\n".join(lines))
        log(f"wrote the micro section of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
