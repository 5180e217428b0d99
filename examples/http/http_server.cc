// http_server: an HTTP/1.1 server for GET and HEAD on Mill-IO's TcpServer.
//
//   bazel run //examples/http:http_server -- --port=8080 --root=/srv/www
//
// Each TCP connection gets one HttpConnection (the protocol state, kept in
// the connection's user context) feeding a StaticFileService shared by every
// connection: "/" answers a greeting, and with --root the files under that
// directory are served (see static_file_service.h for the rules: 403 for
// anything escaping the root, 404, 405 with Allow, ...). Keep-alive and
// pipelined requests are answered in order; malformed requests get 400 and
// oversized header sections 431 (--max_header_bytes), then the connection
// closes. Connections without traffic for --idle_timeout are closed.
//
// Backpressure: a client that pipelines requests without reading the
// responses is served only until its output queue reaches the high-water
// mark (1 MiB); the remaining requests wait in the connection's input buffer
// (which stops reading) and are answered as the client reads. Files are
// never read into the process: a file body over 16 KiB is queued on the
// connection and streamed with sendfile(2), counted against the same mark,
// so memory per connection stays bounded whatever the files' sizes and
// however many requests are pipelined. A file that shrinks while it is sent
// closes the connection (the client sees a body shorter than its
// Content-Length).
//
// Slow clients: a request's header section must be complete within
// --header_timeout of its first byte and its body within --body_timeout of
// the headers; bytes trickling in do not extend either. Otherwise the
// server answers 408 and closes.
//
// Closing after an error response, or with more of the client's bytes in
// hand, is a "lingering close": the server flushes the response, shuts down
// its write side (the client reads EOF) and keeps discarding what the client
// still sends until the client closes or --linger_timeout passes. Closing
// the socket at once could make the kernel send a reset that destroys the
// response before the client has read it. After a complete request with
// nothing behind it ("Connection: close", HTTP/1.0) it closes at once, as
// nginx does.
//
// HTTPS: with --tls-cert=CERT.pem --tls-key=KEY.pem the port speaks TLS
// 1.2/1.3 (ALPN "http/1.1") and everything above works unchanged over it;
// file bodies still go through SendFile (in-kernel with kTLS, otherwise read
// and encrypted a piece at a time under the same high-water mark). A client
// whose handshake fails (plaintext HTTP on the port, a client that distrusts
// the certificate) is closed without a response; the count is printed at
// exit. One of the two flags without the other, or a file that cannot be
// used, is a startup error naming it.
//
// Prints "listening on ADDRESS:PORT" on stdout once it accepts connections
// (with --port=0 the port is the kernel's pick). On SIGINT or SIGTERM it
// stops the loop, closes every connection and exits with status 0. Bad flags
// print a message on stderr and exit with status 2.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/thread_scratch.h"
#include "examples/common/server_main.h"
#include "examples/common/tls_flags.h"
#include "examples/http/http_connection.h"
#include "examples/http/http_message.h"
#include "examples/http/static_file_service.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 8080, "TCP port (0: let the kernel pick a free one)");
ABSL_FLAG(std::string, root, "",
          "directory whose files are served (empty: only the greeting at /)");
ABSL_FLAG(int, max_header_bytes, 8 * 1024,
          "largest request header section accepted; larger ones get 431");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(30),
          "close connections without traffic for this long (0: never)");
ABSL_FLAG(absl::Duration, linger_timeout, absl::Seconds(2),
          "after a closing response, how long to keep discarding the "
          "client's bytes before closing (0: close as soon as flushed)");
ABSL_FLAG(absl::Duration, header_timeout, absl::Seconds(10),
          "a request's header section must be complete this long after its "
          "first byte, else 408 and close (0: no limit)");
ABSL_FLAG(absl::Duration, body_timeout, absl::Seconds(30),
          "a request's body must be complete this long after its headers, "
          "else 408 and close (0: no limit)");
ABSL_FLAG(std::string, server_name, "mill-io",
          "value of the Server header (empty: no Server header)");
ABSL_FLAG(bool, date, true, "send a Date header");

namespace {

using mill::http::HttpConnection;
using mill::http::StaticFileService;

// Input is fed to the protocol in small slices from the connection's input
// buffer, and the output is handed to the connection whenever kSendChunk
// bytes have collected or a file body was queued, checking the output queue
// each time. Once the queue reaches the high-water mark the rest of the
// input simply stays in the connection's buffer (which stops reading): the
// connection calls on_data again when the queue drains, so a client that
// pipelines requests for a large file and never reads costs at most the
// high-water mark of memory, whatever the files' sizes.
constexpr size_t kFeedSlice = 128;
constexpr size_t kSendChunk = 64 * 1024;
// File bodies up to this size are read and sent with the headers in one
// write; larger ones are queued for sendfile(2) and never read into memory.
constexpr uint64_t kInlineFileBytes = 16 * 1024;

// Per-connection state while a request is in progress, stored in the
// Connection's user context. It is only touched from the connection's
// callbacks and Dispatch tasks, which never overlap, so the fields need no
// lock. Between requests (nothing buffered, parser idle, not closing) the
// session is dropped, so an idle keep-alive connection costs only the
// Connection itself; the next byte makes a new one.
class Session : public std::enable_shared_from_this<Session> {
 public:
  struct Config {
    mill::EventLoop* loop;
    mill::http::HttpHandler handler;
    std::shared_ptr<const HttpConnection::Options> http;
    size_t high_water_mark;  // 0: no throttling
    absl::Duration linger_timeout;
    absl::Duration header_timeout;  // 0: none
    absl::Duration body_timeout;    // 0: none
  };

  explicit Session(const Config& config)
      : config_(config), http_(config.handler, config.http) {}

  // on_data (also called again when the output queue drained).
  void OnData(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
    if (closing_) {
      input.Consume(input.size());  // lingering: discard
      return;
    }
    Serve(conn, input);
    if (peer_eof_ && input.empty() && !closing_) conn->Close();
  }

  // True between requests: nothing the next request needs is kept here.
  bool idle(const mill::ByteBuffer& input) const {
    return !closing_ && !peer_eof_ && input.empty() &&
           http_.phase() == HttpConnection::Phase::kIdle &&
           !request_timer_.valid() && !linger_timer_.valid();
  }

  // on_peer_shutdown: the client sent everything. Answer what is still
  // buffered (OnData finishes it once the output drains), then close.
  void OnPeerShutdown(const mill::ConnectionPtr& conn) {
    peer_eof_ = true;
    if (closing_ || conn->input().empty()) conn->Close();
  }

  // on_close.
  void OnClose() {
    CancelTimer(&linger_timer_);
    CancelTimer(&request_timer_);
  }

 private:
  // Hands response pieces to the connection. Bytes collect in `*out` and
  // are sent in batches; a large file range is queued with SendFile (the
  // connection streams it with sendfile(2) under its backpressure).
  class ConnectionSink : public mill::http::ResponseSink {
   public:
    ConnectionSink(const mill::ConnectionPtr& conn, std::string* out)
        : conn_(conn), out_(out) {}

    void Write(std::string_view bytes) override {
      if (!failed_) out_->append(bytes.data(), bytes.size());
    }

    void WriteFile(std::shared_ptr<const mill::http::FileBody> file,
                   uint64_t offset, uint64_t length) override {
      if (failed_) return;
      if (length <= kInlineFileBytes) {
        const absl::Status status = mill::http::ReadFileRange(
            *file, offset, length, [this](std::string_view chunk) {
              out_->append(chunk.data(), chunk.size());
            });
        // The file shrank or could not be read: the response is shorter
        // than its Content-Length, so nothing after it can be framed.
        if (!status.ok()) failed_ = true;
        return;
      }
      Flush();
      queued_file_ = true;
      const int fd = file->fd();
      // The shared FileBody keeps the descriptor open until the range is
      // sent (or dropped with the connection). A file that shrinks
      // meanwhile closes the connection (its framing would break).
      (void)conn_->SendFile(fd, offset, length, [file = std::move(file)] {});
    }

    void Flush() {
      if (out_->empty()) return;
      // Fails only if the connection is closing; then nobody reads it.
      (void)conn_->Send(*out_);
      out_->clear();
    }

    // Whether the queue may have grown past the batch size since last asked.
    bool TakeQueuedFile() { return std::exchange(queued_file_, false); }
    bool failed() const { return failed_; }

   private:
    const mill::ConnectionPtr& conn_;
    std::string* const out_;
    bool queued_file_ = false;
    bool failed_ = false;
  };

  void Serve(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
    // Reused per thread: most responses fit, so serving allocates nothing.
    struct HttpServeOut;
    std::string& out = mill::ThreadScratch<std::string, HttpServeOut>();
    out.clear();
    ConnectionSink sink(conn, &out);
    bool close = false;
    const uint64_t started_before = http_.requests_started();
    const HttpConnection::Phase phase_before = http_.phase();
    while (!input.empty()) {
      const size_t slice = std::min(input.size(), kFeedSlice);
      const std::string_view bytes(input.data(), slice);
      const HttpConnection::Action action = http_.Feed(bytes, &sink);
      input.Consume(slice);
      if (action == HttpConnection::Action::kClose || sink.failed()) {
        close = true;
        break;
      }
      if (out.size() < kSendChunk && !sink.TakeQueuedFile()) continue;
      sink.Flush();
      if (config_.high_water_mark > 0 &&
          conn->pending_output_bytes() >= config_.high_water_mark) {
        // The rest waits in the input buffer; on_data comes again once the
        // queue drained to the low-water mark.
        break;
      }
    }
    sink.Flush();
    if (out.capacity() > 2 * kSendChunk) std::string().swap(out);
    if (close) {
      StartClosing(conn);
      return;
    }
    if (!input.empty()) {
      // Stopped by our own backpressure with the client's bytes in hand:
      // the client is not slow, whatever the parser's phase.
      CancelTimer(&request_timer_);
    } else if (http_.requests_started() != started_before ||
               http_.phase() != phase_before || !request_timer_.valid()) {
      TimeRequest(conn);
    }
  }

  // A request's header section must be complete within header_timeout of
  // its first byte, and its body within body_timeout of the headers: bytes
  // trickling in do not extend either (the connection's idle timeout alone
  // would be reset by every byte). Otherwise 408 and close.
  void TimeRequest(const mill::ConnectionPtr& conn) {
    CancelTimer(&request_timer_);
    const HttpConnection::Phase phase = http_.phase();
    const absl::Duration limit = phase == HttpConnection::Phase::kHeaders
                                     ? config_.header_timeout
                                     : config_.body_timeout;
    if (phase == HttpConnection::Phase::kIdle ||
        limit <= absl::ZeroDuration()) {
      return;
    }
    const uint64_t request = http_.requests_started();
    std::weak_ptr<mill::Connection> weak_conn = conn;
    std::weak_ptr<Session> weak_self = weak_from_this();
    request_timer_ = config_.loop->RunAfter(limit, [=] {
      mill::ConnectionPtr c = weak_conn.lock();
      if (c == nullptr) return;
      c->Dispatch([weak_self, request, phase](const mill::ConnectionPtr& c) {
        std::shared_ptr<Session> self = weak_self.lock();
        if (self == nullptr || self->closing_ ||
            self->http_.requests_started() != request ||
            self->http_.phase() != phase) {
          return;  // that request moved on meanwhile
        }
        self->request_timer_ = mill::EventLoop::TimerId();
        struct HttpTimeoutOut;
        std::string& out = mill::ThreadScratch<std::string, HttpTimeoutOut>();
        out.clear();
        ConnectionSink sink(c, &out);
        self->http_.FailRequest(408, &sink);
        sink.Flush();
        self->StartClosing(c);
      });
    });
  }

  void CancelTimer(mill::EventLoop::TimerId* timer) {
    if (timer->valid()) config_.loop->Cancel(*timer);
    *timer = mill::EventLoop::TimerId();
  }

  // After a closing response: flush, send FIN, keep reading (and
  // discarding) until the client closes or the linger timeout passes.
  void StartClosing(const mill::ConnectionPtr& conn) {
    closing_ = true;
    CancelTimer(&request_timer_);
    // nginx's heuristic: linger only when the client may still be sending
    // (bytes after the request, or a request cut short by an error). After
    // a complete request ("Connection: close", HTTP/1.0) with nothing
    // behind it, close now: a half-close, a timer and a wait for the
    // client's FIN per connection buy nothing there.
    const bool client_may_send =
        !conn->input().empty() || http_.phase() != HttpConnection::Phase::kIdle;
    conn->input().Consume(conn->input().size());
    if (config_.linger_timeout == absl::ZeroDuration() || peer_eof_ ||
        !client_may_send) {
      conn->Close();
      return;
    }
    conn->Shutdown();
    std::weak_ptr<mill::Connection> weak = conn;
    linger_timer_ = config_.loop->RunAfter(config_.linger_timeout, [weak] {
      if (mill::ConnectionPtr c = weak.lock()) c->Close();
    });
  }

  const Config& config_;  // outlives every connection (lives in main)
  HttpConnection http_;
  bool closing_ = false;
  bool peer_eof_ = false;
  mill::EventLoop::TimerId linger_timer_;
  mill::EventLoop::TimerId request_timer_;
};

}  // namespace

int main(int argc, char** argv) {
  mill::examples::ServerProgram program(
      "http_server",
      "HTTP/1.1 GET/HEAD server on Mill-IO.\n  http_server --port=8080 "
      "--root=DIR --mode=pool|direct --workers=4 "
      "[--tls-cert=CERT.pem --tls-key=KEY.pem]",
      FLAGS_port, FLAGS_idle_timeout);
  if (!program.ParseCommandLine(argc, argv)) return program.exit_code();
  const int max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  if (max_header_bytes < 1) {
    return program.Fail(absl::StrCat(
        "--max_header_bytes must be at least 1, got ", max_header_bytes));
  }
  const absl::Duration linger_timeout = absl::GetFlag(FLAGS_linger_timeout);
  if (linger_timeout < absl::ZeroDuration()) {
    return program.Fail("--linger_timeout must not be negative");
  }
  const absl::Duration header_timeout = absl::GetFlag(FLAGS_header_timeout);
  const absl::Duration body_timeout = absl::GetFlag(FLAGS_body_timeout);
  if (header_timeout < absl::ZeroDuration() ||
      body_timeout < absl::ZeroDuration()) {
    return program.Fail(
        "--header_timeout and --body_timeout must not be negative");
  }

  StaticFileService::Options service_options;
  service_options.root = absl::GetFlag(FLAGS_root);
  absl::StatusOr<std::unique_ptr<StaticFileService>> service =
      StaticFileService::Create(service_options);
  if (!service.ok()) return program.Fail(service.status().ToString());
  absl::StatusOr<std::shared_ptr<const mill::ConnectionLayer>> tls =
      mill::examples::ServerTlsFromFlags({"http/1.1"});
  if (!tls.ok()) return program.Fail(tls.status().message());

  HttpConnection::Options http_options;
  http_options.max_header_bytes = static_cast<size_t>(max_header_bytes);
  http_options.server_name = absl::GetFlag(FLAGS_server_name);
  http_options.send_date = absl::GetFlag(FLAGS_date);

  mill::EventLoop* const event_loop = program.CreateLoop();
  if (event_loop == nullptr) return program.exit_code();
  mill::TcpServerOptions options = program.server_options();
  // Requests wait in the input buffer while the output is above the mark;
  // the buffer itself only ever needs the header limit plus a read.
  options.connection.max_input_bytes =
      static_cast<size_t>(max_header_bytes) + 64 * 1024;
  options.layer = *tls;  // null: plain TCP

  const Session::Config session_config = {
      event_loop,
      (*service)->AsHandler(),
      std::make_shared<const HttpConnection::Options>(http_options),
      options.connection.high_water_mark,
      linger_timeout,
      header_timeout,
      body_timeout};
  mill::TcpServerCallbacks callbacks;
  callbacks.on_data = [&session_config](const mill::ConnectionPtr& conn,
                                        mill::ByteBuffer& input) {
    std::shared_ptr<Session> session = conn->GetContext<Session>();
    if (session == nullptr) {
      session = std::make_shared<Session>(session_config);
      conn->SetContext(session);
    }
    session->OnData(conn, input);
    if (session->idle(input)) conn->SetContext(nullptr);
  };
  callbacks.on_peer_shutdown = [](const mill::ConnectionPtr& conn) {
    if (auto session = conn->GetContext<Session>()) {
      session->OnPeerShutdown(conn);
    } else {
      conn->Close();  // between requests: nothing left to answer
    }
  };
  callbacks.on_close = [](const mill::ConnectionPtr& conn, mill::CloseReason,
                          const absl::Status&) {
    if (auto session = conn->GetContext<Session>()) session->OnClose();
    conn->SetContext(nullptr);  // free the protocol state now
  };
  if (!program.Listen(std::move(callbacks), options)) {
    return program.exit_code();
  }
  // The service and session_config outlive the server (Serve destroys
  // it): every connection's handler points to them.
  return program.Serve();
}
