// A reference model of HttpConnection (http_connection.h) for the HTTP fuzz
// target: what responses a byte stream must get, and a checker that parses
// the connection's output and compares it with them. Kept apart from the
// code that feeds the connection, so that the rules are stated once and the
// fuzz target adapts to API changes by editing only its feeding code.
//
// The model parses the whole stream in one go with its own http-parser
// instance (a request's tokens then each arrive in one callback) and applies
// the documented rules to each request in order:
//   * a header section over max_header_bytes (request-target plus, per
//     header line, name + value + 4) -> 431 and close;
//   * an HTTP major version other than 1 -> 505 and close;
//   * several Host headers, or none in HTTP/1.1 -> 400 and close;
//   * Transfer-Encoding in HTTP/1.0, or a Transfer-Encoding list that is
//     malformed or that http-parser reads otherwise -> 400 and close;
//   * a parser error -> 400 (431 for http-parser's own header overflow) and
//     close;
//   * otherwise the test handler's response (ModelHandler), closing when the
//     client does not keep the connection alive, the handler asks, or the
//     request is an upgrade;
// and nothing after a closing response. A request still incomplete at the
// end of the stream gets no response, unless one of the errors above is
// already certain.
//
// One answer depends on the split, and the model allows both: a header
// section that is malformed (a parser error) and also, counting the bytes
// of the token the error cut short, over max_header_bytes. HttpConnection
// counts the bytes of a token as they arrive, so when the token's bytes came
// in an earlier Feed the limit trips first (431); when they come with the
// offending byte, the parser rejects the token before its bytes are counted
// (400). Reported to the maintainers of http_connection.cc.
//
// Thread-safety: pure functions and plain values. Ownership: values own
// their strings.
#ifndef MILL_IO_EXAMPLES_HTTP_HTTP_FUZZ_MODEL_H_
#define MILL_IO_EXAMPLES_HTTP_HTTP_FUZZ_MODEL_H_

#include <cstddef>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace mill::http {

// The fixed clock of the fuzzed connection (Sun, 06 Nov 1994 08:49:37 GMT).
inline constexpr std::time_t kModelTime = 784111777;

// One request as the model's parser saw it.
struct ModelRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  int version_major = 0;
  int version_minor = 0;
  bool keep_alive = false;
  bool upgrade = false;
  bool chunked = false;  // http-parser reads the body as chunked
  bool headers_complete = false;
  bool complete = false;
  // Trailer fields (after a chunked body) are not headers: only their bytes
  // count, against the same limit.
  size_t trailer_bytes = 0;

  // Header-section bytes as HttpConnection counts them, and those plus the
  // trailers' (what the limit applies to once the body has begun).
  size_t HeaderBytes() const;
  size_t CountedBytes() const { return HeaderBytes() + trailer_bytes; }
};

// The deterministic handler the fuzzed connection uses, as a pure function
// of the request: 200 with a body describing the request (method, target,
// each header as "name: value" on its own line); an empty body with the
// same Content-Length for HEAD; the handler asks to close when the target
// contains "close"; it throws (-> 500) when the target contains "throw".
struct ModelHandlerResponse {
  int status = 200;
  std::string body;  // For HEAD: empty, with content_length set.
  std::optional<size_t> content_length;
  bool close = false;
  bool throws = false;
};
ModelHandlerResponse ModelHandler(const ModelRequest& request);
// The body ModelHandler describes `request` with.
std::string DescribeRequest(const ModelRequest& request);

// One response the connection must produce.
struct ExpectedResponse {
  int status = 0;
  bool head = false;  // Answers a HEAD: headers only.
  bool close = false;
  size_t content_length = 0;
  std::string body;  // Empty for HEAD.
  // "Connection: keep-alive" must be sent (an HTTP/1.0 client opted in).
  bool keep_alive_header = false;
  // Another acceptable answer, which depends on how the stream was split:
  // the same error response with this status instead (see
  // ExpectedResponses). 0: none.
  int or_error_status = 0;
};

// Every response the connection must produce for `stream`, in order.
std::vector<ExpectedResponse> ExpectedResponses(std::string_view stream,
                                                size_t max_header_bytes);

// Parses `output` as consecutive HTTP/1.1 responses (status line, headers,
// exactly one Content-Length, then that many body bytes unless the response
// answers HEAD) and compares them with `expected`. Returns an error
// describing the first difference.
absl::Status CheckResponses(std::string_view output,
                            const std::vector<ExpectedResponse>& expected);

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_HTTP_FUZZ_MODEL_H_
