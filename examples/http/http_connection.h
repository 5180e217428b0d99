// HttpConnection: the HTTP/1.1 protocol state of one TCP connection.
//
// Feed() takes the bytes a socket delivered (split anywhere) and writes the
// responses they complete into a ResponseSink, as ordered pieces: bytes for
// the status line, headers and in-memory bodies, and a file range
// (ResponseSink::WriteFile) for a file body, which the connection never
// reads. It parses incrementally with nodejs http-parser, hands each
// complete request to an HttpHandler, and answers pipelined requests in
// order. Connection management follows RFC 9112:
//   * HTTP/1.1 stays open unless the request says "Connection: close";
//     HTTP/1.0 closes unless it says "Connection: keep-alive" (then the
//     response says so too). Closing responses carry "Connection: close".
//   * Responses are always HTTP/1.1 with a Content-Length (no chunking),
//     except 1xx, 204 and 304, which have neither a body nor a
//     Content-Length. HEAD gets the same headers as GET, Content-Length
//     included, and no body. A handler's file range that does not lie within
//     the file is answered with 500 instead.
//   * Malformed requests (any parser error) get 400 and the connection
//     closes; so does an HTTP/1.1 request without exactly one Host header,
//     and a request with several Host headers.
//   * Request bodies are framed by Content-Length and Transfer-Encoding
//     alone (a Connection field naming them changes nothing). Framing that
//     a peer before this one may have read differently gets 400 and the
//     connection closes (RFC 9112 6.1, 6.3): both a Content-Length and
//     Transfer-Encoding, several Content-Lengths, a Transfer-Encoding list
//     that is malformed or does not end in a single chunked, and any
//     Transfer-Encoding in an HTTP/1.0 request.
//   * Header sections larger than Options::max_header_bytes get 431 and the
//     connection closes. Counted: the request-target plus, for each header
//     line, name + value + 4 (": " and CRLF). http-parser's own, process-wide
//     limit (80 KiB of raw header bytes) also yields 431.
//   * HTTP major versions other than 1 get 505 and the connection closes.
//   * Upgrade and CONNECT requests are answered like any other request (the
//     example handler refuses CONNECT with 405), then the connection closes:
//     no protocol switch is supported.
//   * After a closing response, further bytes are ignored, and Feed keeps
//     returning kClose.
// Memory is bounded by the header limit: request bodies are skipped, never
// buffered, and file bodies are passed on as ranges, never read.
//
// Thread-safety: thread-compatible. One instance per connection, fed by one
// thread at a time. Ownership: the connection owns a copy of the handler
// functor (typically a lambda holding a pointer to a shared, thread-safe
// service that must outlive the connection). Not movable: http-parser keeps
// a pointer back to the object.
#ifndef MILL_IO_EXAMPLES_HTTP_HTTP_CONNECTION_H_
#define MILL_IO_EXAMPLES_HTTP_HTTP_CONNECTION_H_

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "examples/http/http_message.h"

namespace mill::http {

// Per-connection HTTP/1.1 server state machine:
//
//   HttpConnection conn([&service](const HttpRequest& r) {
//     return service.Handle(r);
//   });
//   MySink sink(socket);  // A ResponseSink: Send() bytes, SendFile() ranges.
//   HttpConnection::Action action = conn.Feed(received, &sink);
//   if (action == HttpConnection::Action::kClose) CloseAfterFlush();
//
// StringResponseSink (http_message.h) collects everything into a string.
class HttpConnection {
 public:
  enum class Action {
    kKeepOpen,  // Send the output, keep reading.
    kClose,     // Send the output, then close; feed nothing more.
  };

  struct Options {
    // Limit on the header section (see the file comment for how it counts).
    size_t max_header_bytes = 8 * 1024;
    // Value of the Server header; empty sends none.
    std::string server_name = "mill-io";
    // Whether to send a Date header, and the clock it reads (seconds since
    // the epoch; null means std::time). Tests pin the clock.
    bool send_date = true;
    std::function<std::time_t()> clock;
  };

  explicit HttpConnection(HttpHandler handler)
      : HttpConnection(std::move(handler), Options{}) {}
  HttpConnection(HttpHandler handler, Options options);
  // Options shared by many connections (a server's), not copied into each.
  HttpConnection(HttpHandler handler, std::shared_ptr<const Options> options);

  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Consumes `bytes`, writing the responses they complete to `*sink`, in
  // order. `sink` is used only during the call.
  Action Feed(std::string_view bytes, ResponseSink* sink);

  // Where the parser is: between requests, inside a request's header
  // section, or inside its body. (Servers time the header section and the
  // body with their own timers: see http_server.cc.)
  enum class Phase { kIdle, kHeaders, kBody };
  Phase phase() const { return phase_; }
  // Requests whose first byte was seen (the current one included).
  uint64_t requests_started() const { return requests_started_; }

  // Gives up on the request in progress: writes an error response with
  // `status` (e.g. 408 Request Timeout) and "Connection: close" to `sink`;
  // the connection is closed() from then on. Nothing when already closed.
  void FailRequest(int status, ResponseSink* sink);

  // True once a closing response was produced.
  bool closed() const { return closed_; }
  // Responses produced so far, error responses included.
  uint64_t responses() const { return responses_; }

 private:
  static int OnMessageBegin(http_parser* parser);
  static int OnUrl(http_parser* parser, const char* at, size_t length);
  static int OnHeaderField(http_parser* parser, const char* at, size_t length);
  static int OnHeaderValue(http_parser* parser, const char* at, size_t length);
  static int OnHeadersComplete(http_parser* parser);
  static int OnMessageComplete(http_parser* parser);
  static const http_parser_settings& Settings();

  // Adds `length` header bytes; false (and 431 pending) past the limit.
  bool CountHeaderBytes(size_t length);
  void FinishHeaderLine();
  void Respond();
  void WriteResponse(const HttpResponse& response, bool head, bool close);
  void WriteError(int status);

  HttpHandler handler_;
  std::shared_ptr<const Options> options_;
  http_parser parser_;

  // The request being parsed.
  HttpRequest request_;
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  size_t header_bytes_ = 0;
  int error_status_ = 0;  // Set by a callback that rejects the request.

  ResponseSink* sink_ = nullptr;  // Valid during Feed().
  Phase phase_ = Phase::kIdle;
  uint64_t requests_started_ = 0;
  bool closed_ = false;
  uint64_t responses_ = 0;
};

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_HTTP_CONNECTION_H_
