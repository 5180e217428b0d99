#!/usr/bin/env python3
"""Black-box check of a Windows echo_server.exe running under Wine, from the
Linux side of the loopback interface (CI's windows phase).

    echo_blackbox.py SERVER_COMMAND [ARGS...]

SERVER_COMMAND is the runfiles wrapper that runs echo_server.exe through
tools/windows/wine_run.sh. For each of --mode=direct and --mode=pool the
server is started with --port=0, and Linux clients check: one short echo;
100 concurrent clients each echoing 64 KiB in uneven writes; one 8 MiB
stream written while reading; a client that half-closes gets everything
echoed, then EOF; a client that resets its connection does not disturb the
others; the server then stops on Ctrl-C (SIGINT, which Wine turns into
CTRL_C_EVENT for the console handler, SetConsoleCtrlHandler) and exits 0.
Prints one line per check; exits 1 if any failed.
"""
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

TIMEOUT = 60


def start(command, mode):
    proc = subprocess.Popen(command + ["--port=0", "--mode=" + mode],
                            stdout=subprocess.PIPE, stderr=sys.stderr,
                            start_new_session=True)
    deadline = time.monotonic() + TIMEOUT
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    match = re.search(rb"listening on [^ ]*:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError("server did not report its port: %r" % line)
    return proc, int(match.group(1))


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(1 << 16, n - got))
        if not chunk:
            raise RuntimeError("EOF after %d of %d bytes" % (got, n))
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def short_echo(port):
    with connect(port) as s:
        s.sendall(b"hello, windows\n")
        assert recv_exactly(s, 15) == b"hello, windows\n"


def concurrent_clients(port):
    errors = []

    def client(seed):
        try:
            rng = random.Random(seed)
            payload = bytes(rng.getrandbits(8) for _ in range(64 * 1024))
            with connect(port) as s:
                sent = 0
                while sent < len(payload):
                    step = rng.randint(1, 8192)
                    s.sendall(payload[sent:sent + step])
                    sent += step
                if recv_exactly(s, len(payload)) != payload:
                    errors.append("client %d: wrong bytes" % seed)
        except Exception as e:  # reported below
            errors.append("client %d: %s" % (seed, e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]


def large_stream(port):
    payload = os.urandom(8 << 20)
    with connect(port) as s:
        received = []
        def reader():
            received.append(recv_exactly(s, len(payload)))
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(payload)
        t.join(TIMEOUT)
        assert received and received[0] == payload, "8 MiB echo differs"


def half_close(port):
    with connect(port) as s:
        s.sendall(b"x" * 100000)
        s.shutdown(socket.SHUT_WR)
        data = recv_exactly(s, 100000)
        assert data == b"x" * 100000
        assert s.recv(1) == b"", "no EOF after the echo of a half-close"


def reset_does_not_disturb(port):
    with connect(port) as good:
        bad = connect(port)
        bad.sendall(b"y" * 1000)
        bad.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       struct.pack("ii", 1, 0))
        bad.close()  # RST
        good.sendall(b"still here")
        assert recv_exactly(good, 10) == b"still here"


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError("no exit within %d s of Ctrl-C" % TIMEOUT)
    assert code == 0, "exit status %d after Ctrl-C" % code


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    command = argv[1:]
    failed = 0
    for mode in ("direct", "pool"):
        try:
            proc, port = start(command, mode)
        except Exception as e:
            print("FAIL %s start: %s" % (mode, e))
            failed += 1
            continue
        for check in (short_echo, concurrent_clients, large_stream,
                      half_close, reset_does_not_disturb):
            name = "%s %s" % (mode, check.__name__)
            try:
                start_time = time.monotonic()
                check(port)
                print("PASS %s (%.1f s)" % (name, time.monotonic() - start_time))
            except Exception as e:
                print("FAIL %s: %s" % (name, e))
                failed += 1
        try:
            stop(proc)
            print("PASS %s stop on Ctrl-C, exit 0" % mode)
        except Exception as e:
            print("FAIL %s stop: %s" % (mode, e))
            failed += 1
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
