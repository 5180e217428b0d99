// HTTP/1.1 request and response values shared by the HTTP example's
// connection (protocol) and handler (content) layers.
//
// HttpConnection parses bytes into an HttpRequest, calls an HttpHandler, and
// serializes the returned HttpResponse; the handler never sees framing,
// keep-alive or HEAD body suppression.
//
// Thread-safety: plain values, thread-compatible. The free functions are
// thread-safe. Ownership: values own their strings.
#ifndef MILL_IO_EXAMPLES_HTTP_HTTP_MESSAGE_H_
#define MILL_IO_EXAMPLES_HTTP_HTTP_MESSAGE_H_

#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mill::http {

// One parsed request. The body, if any, is not kept: the example serves
// only GET and HEAD, whose bodies carry no meaning.
struct HttpRequest {
  std::string method;  // "GET", "HEAD", "POST", ...
  std::string target;  // The request-target exactly as sent ("/a%20b?q=1").
  int version_major = 1;
  int version_minor = 1;
  // Header fields in arrival order, names as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Whether the client lets the connection stay open after this request
  // (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive).
  bool keep_alive = true;

  // The first value of header `name` (case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
};

// What a handler answers. HttpConnection adds Server, Date, Content-Length
// and Connection itself, so `headers` must not contain those.
struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Content-Length to announce when `body` was deliberately left empty (a
  // handler answering HEAD need not read a file); nullopt means body.size().
  std::optional<uint64_t> content_length;
  // Asks the connection to close after this response.
  bool close = false;

  // A response with a text/plain body.
  static HttpResponse Text(int status, std::string body);
};

// Maps a request to a response. Called on the connection's thread; one
// handler object is typically shared by all connections, so it must be
// thread-safe. Exceptions become 500 Internal Server Error.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// The reason phrase for `status` ("Not Found"), or "Unknown".
const char* StatusReason(int status);

// `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), independent of the
// process locale.
std::string FormatHttpDate(std::time_t t);

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_HTTP_MESSAGE_H_
