// Fuzz target: HttpConnection::Feed with arbitrary bytes in arbitrary
// splits, a fixed clock and a deterministic handler.
//
// Input: bytes 0-3 seed the split, byte 4 picks max_header_bytes (16 to
// 1036, or the 8 KiB default for 255), the rest is the stream a client
// sends. The stream is fed three ways (whole, in seeded random chunks, byte
// by byte) into fresh connections. Checked:
//   * the three outputs are identical, byte for byte (except for the one
//     split-dependent answer the model documents: 400 or 431 for a header
//     section that is both malformed and too long);
//   * the output parses as HTTP/1.1 responses equal to the reference model's
//     (http_fuzz_model.h): one per complete request until the connection
//     closes, the right status, Content-Length matching the body (headers
//     only for HEAD), "Connection: close" exactly on the last response of a
//     closing connection, and a body (the handler's description of the
//     request as the connection parsed it) equal to the model's description
//     of the same request;
//   * Feed returns kClose exactly once the closing response is out, and a
//     closed connection ignores further bytes; responses() counts them.
//
// Only this file touches the HttpConnection API; the rules live in the
// model, so adapting to a reshaped connection means editing Feed() below.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "examples/http/http_connection.h"
#include "examples/http/http_fuzz_model.h"
#include "examples/http/http_message.h"
#include "tools/fuzz/chunks.h"
#include "tools/fuzz/fuzz_check.h"

namespace {

using mill::http::HttpConnection;
using mill::http::HttpRequest;
using mill::http::HttpResponse;
using mill::http::ModelRequest;

// The model's handler, run on the request as the connection parsed it.
HttpResponse Handle(const HttpRequest& request) {
  ModelRequest seen;
  seen.method = request.method;
  seen.target = request.target;
  seen.headers = request.headers;
  seen.version_major = request.version_major;
  seen.version_minor = request.version_minor;
  seen.keep_alive = request.keep_alive;
  const mill::http::ModelHandlerResponse handled =
      mill::http::ModelHandler(seen);
  if (handled.throws) throw std::runtime_error("handler throws");
  HttpResponse response;
  response.status = handled.status;
  response.body = handled.body;
  response.content_length = handled.content_length;
  response.close = handled.close;
  return response;
}

struct FeedResult {
  std::string output;
  uint64_t responses = 0;
};

// Feeds `chunks` to a fresh connection and checks the Feed contract along
// the way.
FeedResult Feed(const std::vector<std::string_view>& chunks,
                size_t max_header_bytes) {
  HttpConnection::Options options;
  options.max_header_bytes = max_header_bytes;
  options.clock = [] { return mill::http::kModelTime; };
  HttpConnection connection(Handle, options);
  FeedResult result;
  // The handler's responses carry their bodies in memory, so the string
  // sink sees every byte the connection would send.
  mill::http::StringResponseSink sink(&result.output);
  bool closed = false;
  for (const std::string_view chunk : chunks) {
    const size_t before = result.output.size();
    const HttpConnection::Action action = connection.Feed(chunk, &sink);
    if (closed && result.output.size() != before) {
      mill::fuzz::Require(
          absl::InternalError("a closed connection produced more output"));
    }
    const bool now_closed = action == HttpConnection::Action::kClose;
    if (closed && !now_closed) {
      mill::fuzz::Require(absl::InternalError("kClose was taken back"));
    }
    if (now_closed != connection.closed()) {
      mill::fuzz::Require(
          absl::InternalError("Feed's action disagrees with closed()"));
    }
    closed = now_closed;
  }
  result.responses = connection.responses();
  return result;
}

std::string Show(const std::string& bytes) {
  return absl::CHexEscape(bytes.substr(0, 400));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const uint32_t seed = mill::fuzz::TakeU32(&input);
  const uint8_t limit_byte = mill::fuzz::TakeByte(&input);
  const size_t max_header_bytes =
      limit_byte == 255 ? 8 * 1024 : 16 + 4 * size_t{limit_byte};

  const FeedResult whole = Feed({input}, max_header_bytes);
  const FeedResult chunked =
      Feed(mill::fuzz::SplitIntoChunks(input, seed, 64), max_header_bytes);
  std::vector<std::string_view> bytes;
  bytes.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  const FeedResult byte_by_byte = Feed(bytes, max_header_bytes);
  const std::vector<mill::http::ExpectedResponse> expected =
      mill::http::ExpectedResponses(input, max_header_bytes);
  // The one answer the model lets depend on the split (see its header).
  const bool split_dependent =
      !expected.empty() && expected.back().or_error_status != 0;
  for (const FeedResult* result : {&whole, &chunked, &byte_by_byte}) {
    const char* how = result == &whole     ? "whole"
                      : result == &chunked ? "chunked"
                                           : "byte-by-byte";
    const absl::Status checked =
        mill::http::CheckResponses(result->output, expected);
    if (!checked.ok()) {
      mill::fuzz::Require(absl::InternalError(
          absl::StrCat(how, " feeding: ", checked.message())));
    }
    if (result->responses != expected.size()) {
      mill::fuzz::Require(absl::InternalError(
          absl::StrCat(how, " feeding: responses() is ", result->responses,
                       ", expected ", expected.size())));
    }
    if (!split_dependent && result->output != whole.output) {
      mill::fuzz::Require(absl::InternalError(absl::StrCat(
          how, " feeding gave different output:\n", Show(result->output),
          "\nwhole:\n", Show(whole.output))));
    }
  }
  return 0;
}
