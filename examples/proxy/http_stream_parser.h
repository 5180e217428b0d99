// HttpStreamParser: an incremental HTTP/1.x message parser for a proxy, on
// nodejs http-parser, for requests (HTTP_REQUEST) and responses
// (HTTP_RESPONSE). Unlike a server's parser it keeps no body: the head
// (start line and header fields) is collected, bounded by a header limit,
// and the body is passed on in pieces as it is parsed, already de-chunked,
// so a proxy can forward it under backpressure without holding it.
//
// Feed() stops at every point where a proxy may have to wait before going
// on: right after a message's head (it may need an upstream connection
// first) and right after a message ends (the next pipelined request waits
// for the current response). It returns how many bytes it consumed; the
// rest stays with the caller (in a Connection's input buffer) until the
// caller feeds it again. A body piece's bytes point into the fed bytes and
// are valid only during the OnBody call.
//
// Framing follows RFC 9112 §6: chunked, Content-Length, or (responses only)
// until the connection closes, which FinishAtEof() reports. A response to
// HEAD and every 1xx, 204 and 304 response has no body. The framing comes
// from the Content-Length and Transfer-Encoding fields alone (never from
// what a Connection field names), and what the parser cannot frame
// reliably is an error, so that no two readers of a stream can disagree on
// where a message ends (request smuggling):
//   * both Content-Length and Transfer-Encoding (RFC 9112 §6.3 item 3),
//     or several Content-Lengths;
//   * a Transfer-Encoding list that is malformed, applies chunked more than
//     once or not last, or that http-parser reads differently;
//   * a request whose final transfer coding is not chunked (§6.3 item 4),
//     and a request with Transfer-Encoding in HTTP/1.0 (§6.1: the framing
//     may have been faulty at an earlier hop).
// Transfer codings other than chunked are not decoded: they are reported
// (MessageHead::transfer_codings) for the proxy to forward. An HTTP/1.0
// response with Transfer-Encoding is read as framed, then never kept alive.
// Obsolete line folding is replaced by spaces (§5.2) and trailer fields are
// counted against the header limit but not kept.
//
// Thread-safety: thread-compatible (one instance per connection direction,
// used by one thread at a time). Ownership: owns the collected head; not
// movable (http-parser keeps a pointer back to the object).
#ifndef MILL_IO_EXAMPLES_PROXY_HTTP_STREAM_PARSER_H_
#define MILL_IO_EXAMPLES_PROXY_HTTP_STREAM_PARSER_H_

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mill::proxy {

// How a message's body is delimited (RFC 9112 §6.3).
enum class BodyFraming {
  kNone,        // no body (a request without length; HEAD/1xx/204/304)
  kLength,      // Content-Length bytes
  kChunked,     // Transfer-Encoding: chunked
  kUntilClose,  // a response without length: ends when the connection does
};

// The start line and header fields of a request or response.
struct MessageHead {
  // Requests.
  std::string method;  // "GET", ...
  std::string target;  // the request-target as sent
  // Responses.
  int status = 0;
  std::string reason;
  int version_major = 1;
  int version_minor = 1;
  // Header fields in arrival order, names and values as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Whether the sender lets the connection stay open after this message
  // (RFC 9112 §9.3: HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
  // "Connection: keep-alive"; a close-delimited response never).
  bool keep_alive = true;
  BodyFraming framing = BodyFraming::kNone;
  // The Content-Length field as parsed: the body's length with kLength; for
  // a HEAD or 304 response, the length it describes (framing kNone).
  bool has_content_length = false;
  uint64_t content_length = 0;
  // The transfer codings applied to the body besides a final chunked, in
  // order, as listed (parameters included): {"gzip"} for
  // "Transfer-Encoding: gzip, chunked" (kChunked) or, in a response
  // delimited by closing, for "Transfer-Encoding: gzip" (kUntilClose).
  // Empty for bodiless responses.
  std::vector<std::string> transfer_codings;
  // A request asked to switch protocols (Upgrade with "Connection: upgrade")
  // or is CONNECT.
  bool upgrade = false;

  // First value of `name` (case-insensitive), or nullptr.
  const std::string* Find(std::string_view name) const;
};

// Incremental parser of a stream of requests or of responses.
//
//   HttpStreamParser parser(HttpStreamParser::kRequest, &listener);
//   size_t used = parser.Feed(input.view());
//   input.Consume(used);
//   if (parser.failed()) Reply(parser.error_status());
//
// Listener calls happen inside Feed() / FinishAtEof().
class HttpStreamParser {
 public:
  enum Type { kRequest, kResponse };

  class Listener {
   public:
    virtual ~Listener() = default;
    // A message's head is complete. Feed() returns right after it.
    virtual void OnHead(MessageHead& head) = 0;
    // The next piece of the body (de-chunked); valid during the call.
    virtual void OnBody(std::string_view piece) = 0;
    // The message ended. Feed() returns right after it.
    virtual void OnComplete() = 0;
  };

  struct Options {
    // Limit on the head, counted like examples/http: the request-target
    // (or reason phrase) plus name + value + 4 per header line. Past it
    // the parse fails with status 431 (requests) or 502 (responses).
    size_t max_header_bytes = 8 * 1024;
  };

  HttpStreamParser(Type type, Listener* listener)
      : HttpStreamParser(type, listener, Options{}) {}
  HttpStreamParser(Type type, Listener* listener, Options options);
  HttpStreamParser(const HttpStreamParser&) = delete;
  HttpStreamParser& operator=(const HttpStreamParser&) = delete;

  // Parses a prefix of `bytes`, stopping after a head, after a message, at
  // an error, or at the end of `bytes`; returns the bytes consumed. Does
  // nothing (returns 0) once failed(), or after a request with
  // head.upgrade completed (what follows it is not HTTP/1.1: the proxy
  // answers that request and closes).
  size_t Feed(std::string_view bytes);

  // Responses: the next message answers a HEAD request (no body whatever
  // its headers say). Set before feeding that response's head; cleared
  // when a final (non-1xx) response completes.
  void ExpectHeadResponse(bool head) { head_response_ = head; }

  // The peer closed its side. Completes a close-delimited body (OnComplete
  // runs) and returns true; returns false when a message was cut short
  // (inside a head or a delimited body), which is then failed().
  // True between messages.
  bool FinishAtEof();

  enum class Phase { kIdle, kHead, kBody };
  Phase phase() const { return phase_; }
  // Messages begun so far (the current one included).
  uint64_t messages_started() const { return started_; }

  bool failed() const { return failed_; }
  // With failed(): the status to answer (400, 431 or 505 for requests; 502
  // for responses) and http-parser's description.
  int error_status() const { return error_status_; }
  const std::string& error() const { return error_; }

 private:
  static int OnMessageBegin(http_parser* parser);
  static int OnUrl(http_parser* parser, const char* at, size_t length);
  static int OnStatus(http_parser* parser, const char* at, size_t length);
  static int OnHeaderField(http_parser* parser, const char* at, size_t length);
  static int OnHeaderValue(http_parser* parser, const char* at, size_t length);
  static int OnHeadersComplete(http_parser* parser);
  static int OnBodyPiece(http_parser* parser, const char* at, size_t length);
  static int OnMessageComplete(http_parser* parser);
  static const http_parser_settings& Settings();

  bool CountHeaderBytes(size_t length);
  void FinishHeaderLine();
  void Fail(int status, std::string message);

  const Type type_;
  Listener* const listener_;
  const Options options_;
  http_parser parser_;

  MessageHead head_;
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  size_t header_bytes_ = 0;
  int reject_status_ = 0;  // set by a callback that rejects the message
  bool head_response_ = false;
  Phase phase_ = Phase::kIdle;
  uint64_t started_ = 0;
  bool upgraded_ = false;  // an upgrade request ended the HTTP stream
  bool failed_ = false;
  int error_status_ = 0;
  std::string error_;
};

}  // namespace mill::proxy

#endif  // MILL_IO_EXAMPLES_PROXY_HTTP_STREAM_PARSER_H_
