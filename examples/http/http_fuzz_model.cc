#include "examples/http/http_fuzz_model.h"

#include <http_parser.h>
#include <strings.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "examples/common/http_text.h"
#include "examples/http/http_message.h"

namespace mill::http {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The model's parse of a whole stream.
struct ModelParse {
  std::vector<ModelRequest> requests;  // The last one may be incomplete.
  http_errno error = HPE_OK;
  size_t parsed = 0;  // Bytes consumed; the offending byte's offset on error.
};

ModelParse* Parse(http_parser* parser) {
  return static_cast<ModelParse*>(parser->data);
}

int OnMessageBegin(http_parser* parser) {
  Parse(parser)->requests.emplace_back();
  return 0;
}

int OnUrl(http_parser* parser, const char* at, size_t length) {
  Parse(parser)->requests.back().target.append(at, length);
  return 0;
}

// One parse of one buffer delivers each field in one callback, so every
// field callback starts a header line.
int OnHeaderField(http_parser* parser, const char* at, size_t length) {
  ModelRequest& request = Parse(parser)->requests.back();
  if (request.headers_complete) {  // a trailer: counted, not kept
    request.trailer_bytes += length + 4;
    return 0;
  }
  request.headers.emplace_back(std::string(at, length), std::string());
  return 0;
}

int OnHeaderValue(http_parser* parser, const char* at, size_t length) {
  ModelRequest& request = Parse(parser)->requests.back();
  if (request.headers_complete) {
    request.trailer_bytes += length;
    return 0;
  }
  request.headers.back().second.append(at, length);
  return 0;
}

int OnHeadersComplete(http_parser* parser) {
  ModelRequest& request = Parse(parser)->requests.back();
  request.method = http_method_str(static_cast<http_method>(parser->method));
  request.version_major = parser->http_major;
  request.version_minor = parser->http_minor;
  request.keep_alive = http_should_keep_alive(parser) != 0;
  request.upgrade = parser->upgrade != 0;
  request.chunked = (parser->flags & F_CHUNKED) != 0;
  request.headers_complete = true;
  return 0;
}

int OnMessageComplete(http_parser* parser) {
  ModelRequest& request = Parse(parser)->requests.back();
  request.complete = true;
  request.upgrade = parser->upgrade != 0;
  return 0;
}

ModelParse ParseStream(std::string_view stream) {
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_message_begin = OnMessageBegin;
  settings.on_url = OnUrl;
  settings.on_header_field = OnHeaderField;
  settings.on_header_value = OnHeaderValue;
  settings.on_headers_complete = OnHeadersComplete;
  settings.on_message_complete = OnMessageComplete;
  ModelParse parse;
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &parse;
  if (!stream.empty()) {
    parse.parsed =
        http_parser_execute(&parser, &settings, stream.data(), stream.size());
  }
  parse.error = HTTP_PARSER_ERRNO(&parser);
  return parse;
}

bool HostRuleBroken(const ModelRequest& request) {
  int hosts = 0;
  for (const auto& [name, value] : request.headers) {
    if (EqualsIgnoreCase(name, "Host")) ++hosts;
  }
  return hosts > 1 || (hosts == 0 && request.version_minor >= 1);
}

bool FramingRuleBroken(const ModelRequest& request) {
  const examples::TransferCodingList codings =
      examples::ReadTransferCodings(request.headers);
  return codings.present &&
         (!codings.valid || codings.chunked != request.chunked ||
          request.version_minor == 0);
}

ExpectedResponse Error(int status) {
  ExpectedResponse response;
  response.status = status;
  response.close = true;
  response.body = absl::StrCat(StatusReason(status), "\n");
  response.content_length = response.body.size();
  return response;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string Show(std::string_view bytes) {
  return absl::StrCat("\"", absl::CHexEscape(std::string(bytes.substr(0, 300))),
                      bytes.size() > 300 ? "...\"" : "\"");
}

}  // namespace

size_t ModelRequest::HeaderBytes() const {
  size_t bytes = target.size();
  for (const auto& [name, value] : headers)
    bytes += name.size() + value.size() + 4;
  return bytes;
}

std::string DescribeRequest(const ModelRequest& request) {
  std::string body = absl::StrCat(request.method, " ", request.target, "\n");
  for (const auto& [name, value] : request.headers) {
    absl::StrAppend(&body, name, ": ", value, "\n");
  }
  return body;
}

ModelHandlerResponse ModelHandler(const ModelRequest& request) {
  ModelHandlerResponse response;
  if (Contains(request.target, "throw")) {
    response.throws = true;
    return response;
  }
  response.close = Contains(request.target, "close");
  std::string body = DescribeRequest(request);
  if (request.method == "HEAD") {
    response.content_length = body.size();
  } else {
    response.body = std::move(body);
  }
  return response;
}

std::vector<ExpectedResponse> ExpectedResponses(std::string_view stream,
                                                size_t max_header_bytes) {
  const ModelParse parse = ParseStream(stream);
  std::vector<ExpectedResponse> out;
  for (const ModelRequest& request : parse.requests) {
    // Checked in the order the connection meets them: bytes as they arrive,
    // version and Host once the header section is complete.
    if (request.HeaderBytes() > max_header_bytes) {
      out.push_back(Error(431));
      return out;
    }
    if (request.headers_complete) {
      if (request.version_major != 1) {
        out.push_back(Error(505));
        return out;
      }
      if (HostRuleBroken(request) || FramingRuleBroken(request)) {
        out.push_back(Error(400));
        return out;
      }
    }
    // Trailers arrive after those checks and count against the same limit.
    if (request.CountedBytes() > max_header_bytes) {
      out.push_back(Error(431));
      return out;
    }
    if (!request.complete) break;  // The parse ended inside it.
    ExpectedResponse response;
    response.head = request.method == "HEAD";
    const ModelHandlerResponse handled = ModelHandler(request);
    if (handled.throws) {
      response.status = 500;
      response.body = "Internal Server Error\n";
      response.content_length = response.body.size();
    } else {
      response.status = handled.status;
      response.body = handled.body;
      response.content_length =
          handled.content_length.value_or(handled.body.size());
    }
    if (response.head) response.body.clear();
    response.close = !request.keep_alive || handled.close || request.upgrade;
    response.keep_alive_header = !response.close && request.version_minor == 0;
    const bool close = response.close;
    out.push_back(std::move(response));
    if (close) return out;
  }
  if (parse.error != HPE_OK) {
    const int status = parse.error == HPE_HEADER_OVERFLOW ? 431 : 400;
    out.push_back(Error(status));
    // Up to the offending byte, a split may have delivered the bytes of the
    // token the error cut short; if they take the header section over the
    // limit, 431 is as right as 400 (see the header).
    if (status == 400) {
      const ModelParse upto = ParseStream(stream.substr(0, parse.parsed));
      if (!upto.requests.empty() && !upto.requests.back().complete &&
          upto.requests.back().CountedBytes() > max_header_bytes) {
        out.back().or_error_status = 431;
      }
    }
  }
  return out;
}

absl::Status CheckResponses(std::string_view output,
                            const std::vector<ExpectedResponse>& expected) {
  size_t index = 0;
  while (!output.empty()) {
    const std::string where = absl::StrCat("response ", index, ": ");
    if (index >= expected.size()) {
      return absl::InternalError(absl::StrCat(where, "unexpected (only ",
                                              expected.size(),
                                              " expected): ", Show(output)));
    }
    const ExpectedResponse& expected_here = expected[index];
    const size_t head_end = output.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      return absl::InternalError(
          absl::StrCat(where, "no end of header section: ", Show(output)));
    }
    std::string_view head = output.substr(0, head_end + 2);  // Lines + CRLF.
    output.remove_prefix(head_end + 4);

    const size_t status_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, status_end);
    head.remove_prefix(status_end + 2);
    const ExpectedResponse alternative =
        expected_here.or_error_status != 0
            ? Error(expected_here.or_error_status)
            : ExpectedResponse();
    const std::string alternative_prefix =
        absl::StrCat("HTTP/1.1 ", expected_here.or_error_status, " ");
    const ExpectedResponse& want =
        expected_here.or_error_status != 0 &&
                status_line.substr(0, alternative_prefix.size()) ==
                    alternative_prefix
            ? alternative
            : expected_here;
    const std::string expected_status_line =
        absl::StrCat("HTTP/1.1 ", want.status, " ", StatusReason(want.status));
    if (status_line != expected_status_line) {
      return absl::InternalError(absl::StrCat(where, "status line ",
                                              Show(status_line), ", expected ",
                                              Show(expected_status_line)));
    }
    int content_lengths = 0;
    size_t content_length = 0;
    bool close = false;
    bool keep_alive = false;
    while (!head.empty()) {
      const size_t line_end = head.find("\r\n");
      const std::string_view line = head.substr(0, line_end);
      head.remove_prefix(line_end + 2);
      const size_t colon = line.find(": ");
      if (colon == std::string_view::npos || colon == 0 ||
          line.find_first_of("\r\n") != std::string_view::npos) {
        return absl::InternalError(
            absl::StrCat(where, "bad header line ", Show(line)));
      }
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = line.substr(colon + 2);
      for (const char c : name) {
        if (c <= ' ' || c >= 127 || c == ':') {
          return absl::InternalError(
              absl::StrCat(where, "bad header name ", Show(name)));
        }
      }
      if (EqualsIgnoreCase(name, "Content-Length")) {
        ++content_lengths;
        if (value.empty() ||
            value.find_first_not_of("0123456789") != std::string_view::npos) {
          return absl::InternalError(
              absl::StrCat(where, "bad Content-Length ", Show(value)));
        }
        content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
      } else if (EqualsIgnoreCase(name, "Connection")) {
        close = close || value == "close";
        keep_alive = keep_alive || value == "keep-alive";
      }
    }
    if (content_lengths != 1) {
      return absl::InternalError(
          absl::StrCat(where, content_lengths, " Content-Length headers"));
    }
    if (content_length != want.content_length) {
      return absl::InternalError(absl::StrCat(where, "Content-Length ",
                                              content_length, ", expected ",
                                              want.content_length));
    }
    if (close != want.close) {
      return absl::InternalError(
          absl::StrCat(where, close ? "closes" : "keeps the connection open",
                       ", expected the opposite"));
    }
    if (keep_alive != want.keep_alive_header) {
      return absl::InternalError(absl::StrCat(
          where, keep_alive ? "has" : "lacks", " Connection: keep-alive"));
    }
    if (!want.head) {
      if (output.size() < content_length) {
        return absl::InternalError(
            absl::StrCat(where, "body shorter than Content-Length ",
                         content_length, ": ", Show(output)));
      }
      const std::string_view body = output.substr(0, content_length);
      output.remove_prefix(content_length);
      if (body != want.body) {
        return absl::InternalError(absl::StrCat(
            where, "body ", Show(body), ", expected ", Show(want.body)));
      }
    }
    ++index;
  }
  if (index != expected.size()) {
    return absl::InternalError(
        absl::StrCat(index, " responses, expected ", expected.size()));
  }
  return absl::OkStatus();
}

}  // namespace mill::http
