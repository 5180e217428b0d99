#!/usr/bin/env python3
"""Bytes copied per byte received by Mill-IO's read path (issue 16 §3).

    python3 bench/copies.py               # builds --config=opt first
    python3 bench/copies.py --no-build    # use what bazel-bin holds

Connections read straight into their input buffer (a block of the loop's
BufferPool, grown before the read once reads fill it); only growth that
moves bytes the buffer holds copies. Every server example prints, when it stops, the bytes it received
and the bytes its read path copied after reading (TcpServerStats::
input_bytes_copied); this script drives a load, stops the server with
SIGINT and reports copied / received:

  * echo_server with //bench:echo_load at 64 B, 4 KiB and 64 KiB messages
    (1 and 100 connections): an echo consumes everything it reads;
  * http_server with wrk (GET keep-alive) and with 1 MiB uploads through
    curl: the request head is parsed in place; an upload's body is consumed
    as it arrives;
  * jsonrpc_server with a stream of requests larger than a block (16 KiB
    lines): the line framer waits for a whole line, so the buffer grows
    while it holds part of one (a copy of that part).

Prints a table (markdown) for docs/BENCHMARKS.md.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bazel-bin"
STOPPED = re.compile(r"(\d+) bytes received, (\d+) copied after reading")


def start(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"listening on [\d.]+:(\d+)", line or "")
        if m:
            return proc, int(m.group(1))
        if not line:
            break
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not report its port")


def stop(proc):
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    m = STOPPED.search(err)
    if not m:
        raise RuntimeError(f"no statistics line in: {err[-400:]}")
    return int(m.group(1)), int(m.group(2))


def echo_row(size, conns, duration):
    proc, port = start([str(BIN / "examples/echo/echo_server"), "--port=0",
                        "--mode=direct"])
    subprocess.run([str(BIN / "bench/echo_load"), f"--port={port}",
                    f"--connections={conns}", f"--size={size}",
                    f"--duration={duration}", "--warmup=0.2"],
                   check=True, stdout=subprocess.DEVNULL)
    received, copied = stop(proc)
    return (f"echo_server, {conns} x {size} B messages", received, copied)


def http_rows(duration):
    rows = []
    with tempfile.TemporaryDirectory() as root:
        Path(root, "index.html").write_text("hello\n")
        proc, port = start([str(BIN / "examples/http/http_server"),
                            "--port=0", f"--root={root}", "--mode=direct"])
        seconds = max(1, round(duration))  # wrk takes whole seconds
        subprocess.run(["wrk", "-t1", "-c100", f"-d{seconds}s",
                        f"http://127.0.0.1:{port}/index.html"], check=True,
                       stdout=subprocess.DEVNULL)
        received, copied = stop(proc)
        rows.append(("http_server, wrk GET keep-alive (100 connections)",
                     received, copied))
        # Uploads: the body is skipped as it arrives (answered 405).
        upload = Path(root, "upload.bin")
        upload.write_bytes(b"u" * (1 << 20))
        proc, port = start([str(BIN / "examples/http/http_server"),
                            "--port=0", f"--root={root}", "--mode=direct"])
        uploads = 20
        for _ in range(uploads):
            subprocess.run(["curl", "-s", "-o", "/dev/null",
                            "--data-binary", f"@{upload}",
                            f"http://127.0.0.1:{port}/index.html"],
                           check=True)
        received, copied = stop(proc)
        rows.append((f"http_server, {uploads} uploads of 1 MiB (curl POST)",
                     received, copied))
    return rows


def jsonrpc_row(lines, line_bytes):
    proc, port = start([str(BIN / "examples/jsonrpc/jsonrpc_server"),
                        "--port=0", "--mode=direct"])
    payload = "x" * (line_bytes - 64)
    request = ('{"jsonrpc":"2.0","method":"echo","params":["%s"],"id":1}\n'
               % payload).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(30)
        reader = s.makefile("rb")
        for _ in range(lines):
            s.sendall(request)
            reader.readline()
    received, copied = stop(proc)
    return (f"jsonrpc_server, {lines} requests of {len(request)} B "
            "(a line larger than a block)", received, copied)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run([str(ROOT / "bazelw"), "build", "--config=opt",
                        "//examples/echo:echo_server",
                        "//examples/http:http_server",
                        "//examples/jsonrpc:jsonrpc_server",
                        "//bench:echo_load"], check=True, cwd=ROOT)
    rows = []
    for size, conns in ((64, 1), (4096, 1), (4096, 100), (65536, 1)):
        rows.append(echo_row(size, conns, args.duration))
    rows.extend(http_rows(args.duration))
    rows.append(jsonrpc_row(200, 16 * 1024))
    print("| load | bytes received | bytes copied after reading | "
          "copied / received |")
    print("|---|--:|--:|--:|")
    for name, received, copied in rows:
        ratio = copied / received if received else 0.0
        print(f"| {name} | {received:,} | {copied:,} | {ratio:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
