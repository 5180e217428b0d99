#!/usr/bin/env python3
"""An HTTP/1.1 upstream for the proxy's integration tests (test-only).

Built on the standard library's http.server (keep-alive, one thread per
connection). Prints "listening on 127.0.0.1:PORT" when ready.

  --idle_timeout=S   close a keep-alive connection idle for S seconds
  --drop_second      on every connection, read the 2nd request and close
                     without answering (a keep-alive connection that the
                     server gave up on just as the client reused it)
  --name=NAME        what /whoami answers
  --tls_cert=PEM --tls_key=PEM
                     speak TLS (handshake per connection thread; a failed
                     handshake just drops that connection, no request seen)

Paths: /hello, /id?i=N[&delay_ms=D], /whoami, /headers (the request head as
received), /chunked?n=K&size=S, /nolength?size=S (no length: ends at close),
/status?code=C, /hang (never answers), /big?bytes=N, /echo (POST/PUT: the
body back, chunked if it came chunked, with X-Request-Transfer-Encoding and
X-Request-Content-Length telling how it was framed), /sink?delay_ms=D
(waits, then reads the body and answers its length), /seen (every request
this process saw before, one line each: "METHOD PATH xff=X body=N", N the
body bytes read; /seen itself is not listed),
/framing?case=C (framing fields the proxy must not take at face value:
C=connection_cl: "Connection: Content-Length" on a Content-Length body;
C=connection_te: "Connection: Transfer-Encoding" on a chunked body;
C=te_and_cl: both Transfer-Encoding: chunked and Content-Length),
/coded?te=T&size=S (pattern(S) gzip-compressed, deterministic; T=identity:
sent with a Content-Length; T=gzip: "Transfer-Encoding: gzip", delimited by
closing; T=gzip_chunked: "Transfer-Encoding: gzip, chunked").
"""

import argparse
import gzip
import http.server
import ssl
import sys
import threading
import time
import urllib.parse


def pattern(n, seed=0):
    block = bytes((seed + i * 7) & 0xFF for i in range(65536))
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = "upstream"
    drop_second = False
    # Every request seen (but /seen): [method, path, X-Forwarded-For, body
    # bytes read], shared by the connection threads.
    seen = []
    seen_lock = threading.Lock()

    def setup(self):
        super().setup()
        self.requests_seen = 0

    def log_message(self, *args):
        pass

    def query(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(
            urllib.parse.urlparse(self.path).query).items()}

    def send_body(self, code, body, content_type="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        body, chunked = self.read_framed_body()
        with Handler.seen_lock:
            self.entry[3] = len(body)
        return body, chunked

    def read_framed_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body), True
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length), False

    def handle_request(self):
        self.requests_seen += 1
        if self.drop_second and self.requests_seen == 2:
            self.close_connection = True
            return
        path = urllib.parse.urlparse(self.path).path
        q = self.query()
        if path == "/seen":
            with Handler.seen_lock:
                lines = "".join("%s %s xff=%s body=%d\n" % tuple(e)
                                for e in Handler.seen)
            self.send_body(200, lines.encode())
            return
        self.entry = [self.command, path,
                      self.headers.get("X-Forwarded-For", "-"), 0]
        with Handler.seen_lock:
            Handler.seen.append(self.entry)
        if path == "/hello":
            self.send_body(200, b"hello\n")
        elif path == "/id":
            time.sleep(int(q.get("delay_ms", "0")) / 1000.0)
            self.send_body(200, q.get("i", "").encode())
        elif path == "/whoami":
            self.send_body(200, self.name.encode())
        elif path == "/headers":
            head = self.requestline + "\r\n" + str(self.headers)
            self.send_body(200, head.encode())
        elif path == "/chunked":
            n, size = int(q.get("n", "3")), int(q.get("size", "10"))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for k in range(n):
                self.wfile.write(chunk(pattern(size, k)))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/nolength":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(pattern(int(q.get("size", "1000"))))
            self.close_connection = True
        elif path == "/status":
            code = int(q.get("code", "200"))
            self.send_response(code)
            if code in (204, 304):
                self.end_headers()
            else:
                self.send_header("Content-Length", "2")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(b"ok")
        elif path == "/hang":
            time.sleep(3600)
        elif path == "/big":
            n = int(q.get("bytes", "0"))
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = pattern(65536)
            sent = 0
            while sent < n:
                piece = block[: min(len(block), n - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        elif path == "/echo":
            body, chunked = self.read_body()
            self.send_response(200)
            for field in ("Transfer-Encoding", "Content-Length"):
                self.send_header("X-Request-" + field,
                                 self.headers.get(field, "<absent>"))
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for at in range(0, len(body), 100000):
                    self.wfile.write(chunk(body[at:at + 100000]))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        elif path == "/sink":
            time.sleep(int(q.get("delay_ms", "0")) / 1000.0)
            body, _ = self.read_body()
            self.send_body(200, b"received %d" % len(body))
        elif path == "/framing":
            case = q.get("case", "")
            self.send_response(200)
            if case == "connection_cl":
                self.send_header("Connection", "Content-Length")
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"hello")
            elif case == "connection_te":
                self.send_header("Connection", "Transfer-Encoding")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(chunk(b"hel") + chunk(b"lo") + b"0\r\n\r\n")
            elif case == "te_and_cl":
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(chunk(b"hello") + b"0\r\n\r\n")
                self.close_connection = True
        elif path == "/coded":
            te = q.get("te", "identity")
            data = gzip.compress(pattern(int(q.get("size", "1000"))), mtime=0)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if te == "gzip":
                self.send_header("Transfer-Encoding", "gzip")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True
            elif te == "gzip_chunked":
                self.send_header("Transfer-Encoding", "gzip, chunked")
                self.end_headers()
                for at in range(0, len(data), 1000):
                    self.wfile.write(chunk(data[at:at + 1000]))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        else:
            self.send_body(404, b"not found\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_request


class TlsServer(http.server.ThreadingHTTPServer):
    """Wraps each accepted socket in TLS on its own thread, so a client that
    stalls or fails the handshake never blocks the accept loop."""

    context = None

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()
            return
        try:
            super().finish_request(request, client_address)
        finally:
            request.close()  # the server's shutdown_request sees the raw one


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle_timeout", type=float, default=0)
    parser.add_argument("--drop_second", action="store_true")
    parser.add_argument("--name", default="upstream")
    parser.add_argument("--tls_cert", "--tls-cert", default="")
    parser.add_argument("--tls_key", "--tls-key", default="")
    args = parser.parse_args()
    Handler.name = args.name
    Handler.drop_second = args.drop_second
    if args.idle_timeout > 0:
        Handler.timeout = args.idle_timeout  # socket timeout: idle close
    server_class = http.server.ThreadingHTTPServer
    if args.tls_cert:
        TlsServer.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        TlsServer.context.load_cert_chain(args.tls_cert, args.tls_key)
        server_class = TlsServer
    server = server_class(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
