#!/usr/bin/env python3
"""UDP flood against udp_echo: RSS growth and responsiveness (issue #18).

Usage: ./bazelw build //examples/udp:udp_echo &&
  bench/udp_abuse.py bazel-bin/examples/udp/udp_echo [direct|pool]
"""
import os, random, re, socket, subprocess, sys, time
binary = sys.argv[1]; mode = sys.argv[2] if len(sys.argv) > 2 else "direct"
p = subprocess.Popen([binary, "--port=0", f"--mode={mode}"], stdout=subprocess.PIPE, text=True)
line = p.stdout.readline()
port = int(re.search(r":(\d+) \(udp\)", line).group(1))
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
time.sleep(0.3)
base = rss()
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(50)]
for s in socks: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
payloads = [os.urandom(n) for n in (0, 1, 64, 1400, 9000, 65507)]
sent = 0; peak = base; t0 = time.time()
while time.time() - t0 < 10:
    for s in socks:
        try:
            s.sendto(random.choice(payloads), ("127.0.0.1", port)); sent += 1
        except (BlockingIOError, OSError):
            pass
    if sent % 5000 < 50: peak = max(peak, rss())
peak = max(peak, rss())
# Still responsive: one clean round trip.
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(2)
c.sendto(b"ping", ("127.0.0.1", port)); ok = c.recvfrom(100)[0] == b"ping"
p.terminate(); rc = p.wait(5)
print(f"mode={mode} sent={sent} rss_before={base}KiB peak={peak}KiB growth={peak-base}KiB echo_after={ok} exit={rc}")
