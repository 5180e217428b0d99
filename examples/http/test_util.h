// Test helpers: feed bytes to an HttpConnection and collect its output, and
// split a server's output into responses.
#ifndef MILL_IO_EXAMPLES_HTTP_TEST_UTIL_H_
#define MILL_IO_EXAMPLES_HTTP_TEST_UTIL_H_

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "examples/common/http_text.h"
#include "examples/http/http_connection.h"
#include "examples/http/http_message.h"
#include "gtest/gtest.h"

namespace mill::http::testing {

struct ParsedResponse {
  std::string status_line;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // First value of `name` (case-insensitive), or "<absent>".
  std::string Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (examples::EqualsIgnoreCase(k, name)) return v;
    }
    return "<absent>";
  }
  int HeaderCount(std::string_view name) const {
    int n = 0;
    for (const auto& [k, v] : headers) {
      if (examples::EqualsIgnoreCase(k, name)) ++n;
    }
    return n;
  }
};

// Parses consecutive responses. `head[i]` says response i answers a HEAD
// (headers only, whatever Content-Length says); missing entries mean false.
// Fails the test on malformed output or trailing bytes.
inline std::vector<ParsedResponse> ParseResponses(
    std::string_view output, const std::vector<bool>& head = {}) {
  std::vector<ParsedResponse> out;
  while (!output.empty()) {
    const size_t end = output.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      ADD_FAILURE() << "incomplete response head: " << output;
      break;
    }
    ParsedResponse r;
    std::string_view head_text = output.substr(0, end);
    output.remove_prefix(end + 4);
    size_t line_end = head_text.find("\r\n");
    r.status_line = std::string(head_text.substr(0, line_end));
    if (r.status_line.size() >= 12 &&
        r.status_line.rfind("HTTP/1.1 ", 0) == 0) {
      r.status = std::atoi(r.status_line.c_str() + 9);
    } else {
      ADD_FAILURE() << "bad status line: " << r.status_line;
    }
    while (line_end != std::string_view::npos) {
      head_text.remove_prefix(line_end + 2);
      line_end = head_text.find("\r\n");
      const std::string_view line = head_text.substr(0, line_end);
      const size_t colon = line.find(": ");
      if (colon == std::string_view::npos) {
        ADD_FAILURE() << "bad header line: " << line;
        continue;
      }
      r.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(line.substr(colon + 2)));
    }
    const bool is_head = out.size() < head.size() && head[out.size()];
    if (!is_head) {
      const size_t length =
          std::strtoull(r.Header("Content-Length").c_str(), nullptr, 10);
      if (length > output.size()) {
        ADD_FAILURE() << "body shorter than Content-Length " << length;
        break;
      }
      r.body = std::string(output.substr(0, length));
      output.remove_prefix(length);
    }
    out.push_back(std::move(r));
  }
  return out;
}

// Feeds `bytes` to `conn`, appending its output to `*out` with file bodies
// read in (StringResponseSink); fails the test if a file read fails.
inline HttpConnection::Action FeedToString(HttpConnection& conn,
                                           std::string_view bytes,
                                           std::string* out) {
  StringResponseSink sink(out);
  const HttpConnection::Action action = conn.Feed(bytes, &sink);
  EXPECT_TRUE(sink.status().ok()) << sink.status();
  return action;
}

}  // namespace mill::http::testing

#endif  // MILL_IO_EXAMPLES_HTTP_TEST_UTIL_H_
