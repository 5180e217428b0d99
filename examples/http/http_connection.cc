#include "examples/http/http_connection.h"

#include <string>
#include <utility>

#include "base/thread_scratch.h"
#include "examples/common/http_text.h"

namespace mill::http {
namespace {

using ::mill::examples::EqualsIgnoreCase;
using ::mill::examples::ReadTransferCodings;
using ::mill::examples::TransferCodingList;

HttpConnection* Self(http_parser* parser) {
  return static_cast<HttpConnection*>(parser->data);
}

}  // namespace

HttpConnection::HttpConnection(HttpHandler handler, Options options)
    : HttpConnection(std::move(handler),
                     std::make_shared<const Options>(std::move(options))) {}

HttpConnection::HttpConnection(HttpHandler handler,
                               std::shared_ptr<const Options> options)
    : handler_(std::move(handler)), options_(std::move(options)) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

const http_parser_settings& HttpConnection::Settings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_begin = &HttpConnection::OnMessageBegin;
    s.on_url = &HttpConnection::OnUrl;
    s.on_header_field = &HttpConnection::OnHeaderField;
    s.on_header_value = &HttpConnection::OnHeaderValue;
    s.on_headers_complete = &HttpConnection::OnHeadersComplete;
    s.on_message_complete = &HttpConnection::OnMessageComplete;
    return s;  // No on_body: bodies are skipped.
  }();
  return settings;
}

HttpConnection::Action HttpConnection::Feed(std::string_view bytes,
                                            ResponseSink* sink) {
  if (closed_) return Action::kClose;
  sink_ = sink;
  // Never call http_parser_execute with 0 bytes: that means end of stream.
  while (!bytes.empty() && !closed_) {
    const size_t parsed =
        http_parser_execute(&parser_, &Settings(), bytes.data(), bytes.size());
    const http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {
      // OnMessageComplete answered one request and paused, so that nothing
      // after a closing response is parsed. Resume with the next one.
      http_parser_pause(&parser_, 0);
      bytes.remove_prefix(parsed);
      continue;
    }
    if (err != HPE_OK) {
      WriteError(error_status_ != 0           ? error_status_
                 : err == HPE_HEADER_OVERFLOW ? 431
                                              : 400);
      break;
    }
    if (parsed < bytes.size()) {
      // Only after an upgrade, which OnMessageComplete already closed.
      closed_ = true;
    }
    break;
  }
  sink_ = nullptr;
  return closed_ ? Action::kClose : Action::kKeepOpen;
}

bool HttpConnection::CountHeaderBytes(size_t length) {
  header_bytes_ += length;
  if (header_bytes_ <= options_->max_header_bytes) return true;
  error_status_ = 431;
  return false;
}

int HttpConnection::OnMessageBegin(http_parser* parser) {
  HttpConnection* self = Self(parser);
  self->phase_ = Phase::kHeaders;
  ++self->requests_started_;
  self->request_ = HttpRequest();
  self->field_.clear();
  self->value_.clear();
  self->in_value_ = false;
  self->header_bytes_ = 0;
  return 0;
}

int HttpConnection::OnUrl(http_parser* parser, const char* at, size_t length) {
  HttpConnection* self = Self(parser);
  if (!self->CountHeaderBytes(length)) return -1;
  self->request_.target.append(at, length);
  return 0;
}

void HttpConnection::FinishHeaderLine() {
  // Trailer fields (after a chunked body) count against the header limit
  // but are not kept: they must not be merged into the header section
  // (RFC 9110, 6.5.1), and nothing here uses them.
  if (phase_ != Phase::kBody) {
    request_.headers.emplace_back(std::move(field_), std::move(value_));
  }
  field_.clear();
  value_.clear();
  in_value_ = false;
}

int HttpConnection::OnHeaderField(http_parser* parser, const char* at,
                                  size_t length) {
  HttpConnection* self = Self(parser);
  if (self->in_value_) self->FinishHeaderLine();
  if (self->field_.empty() && !self->CountHeaderBytes(4)) return -1;
  if (!self->CountHeaderBytes(length)) return -1;
  self->field_.append(at, length);
  return 0;
}

int HttpConnection::OnHeaderValue(http_parser* parser, const char* at,
                                  size_t length) {
  HttpConnection* self = Self(parser);
  if (!self->CountHeaderBytes(length)) return -1;
  self->value_.append(at, length);
  self->in_value_ = true;
  return 0;
}

int HttpConnection::OnHeadersComplete(http_parser* parser) {
  HttpConnection* self = Self(parser);
  // A field with an empty value gets no value callback.
  if (self->in_value_ || !self->field_.empty()) self->FinishHeaderLine();
  self->phase_ = Phase::kBody;  // header callbacks from now on are trailers
  HttpRequest& request = self->request_;
  request.method = http_method_str(static_cast<http_method>(parser->method));
  request.version_major = parser->http_major;
  request.version_minor = parser->http_minor;
  request.keep_alive = http_should_keep_alive(parser) != 0;
  if (parser->http_major != 1) {
    self->error_status_ = 505;
    return -1;
  }
  int hosts = 0;
  for (const auto& header : request.headers) {
    if (EqualsIgnoreCase(header.first, "Host")) ++hosts;
  }
  if (hosts > 1 || (hosts == 0 && parser->http_minor >= 1)) {
    self->error_status_ = 400;
    return -1;
  }
  // Framing a peer before this one may have read differently (RFC 9112
  // 6.1, 6.3): a list http-parser would read another way, and any
  // Transfer-Encoding in HTTP/1.0. (Both a length and Transfer-Encoding
  // failed in http-parser already; a final coding other than chunked fails
  // there right after this callback.)
  const TransferCodingList codings = ReadTransferCodings(request.headers);
  if (codings.present &&
      (!codings.valid ||
       codings.chunked != ((parser->flags & F_CHUNKED) != 0) ||
       parser->http_minor == 0)) {
    self->error_status_ = 400;
    return -1;
  }
  return 0;
}

int HttpConnection::OnMessageComplete(http_parser* parser) {
  HttpConnection* self = Self(parser);
  self->phase_ = Phase::kIdle;
  self->Respond();
  http_parser_pause(parser, 1);  // Feed() resumes, unless now closed.
  return 0;
}

void HttpConnection::Respond() {
  HttpResponse response;
  try {
    response = handler_(request_);
  } catch (...) {
    response = HttpResponse::Text(500, "Internal Server Error\n");
  }
  // An upgrade request leaves the parser expecting another protocol.
  const bool close = !request_.keep_alive || response.close || parser_.upgrade;
  WriteResponse(response, request_.method == "HEAD", close);
}

void HttpConnection::FailRequest(int status, ResponseSink* sink) {
  if (closed_) return;
  sink_ = sink;
  WriteError(status);
  sink_ = nullptr;
  phase_ = Phase::kIdle;
}

void HttpConnection::WriteError(int status) {
  std::string body = StatusReason(status);
  body.push_back('\n');
  WriteResponse(HttpResponse::Text(status, std::move(body)), /*head=*/false,
                /*close=*/true);
}

void HttpConnection::WriteResponse(const HttpResponse& response, bool head,
                                   bool close) {
  if (response.file != nullptr &&
      (response.file_offset > response.file->size() ||
       response.file_length > response.file->size() - response.file_offset)) {
    // A handler bug; sending it would break the framing.
    WriteResponse(HttpResponse::Text(500, "Internal Server Error\n"), head,
                  close);
    return;
  }
  // RFC 9110 §6.4.1 / §8.6: these never have content nor a Content-Length.
  const bool bodiless = (response.status >= 100 && response.status < 200) ||
                        response.status == 204 || response.status == 304;
  // The head is assembled in a per-thread buffer (the sink copies it), so
  // serving allocates nothing once warm and an idle connection holds none.
  struct HttpHeadOut;
  std::string& out = mill::ThreadScratch<std::string, HttpHeadOut>();
  out.clear();
  out.append("HTTP/1.1 ");
  out.append(std::to_string(response.status));
  out.push_back(' ');
  out.append(StatusReason(response.status));
  out.append("\r\n");
  if (!options_->server_name.empty()) {
    out.append("Server: ").append(options_->server_name).append("\r\n");
  }
  if (options_->send_date) {
    const std::time_t now =
        options_->clock ? options_->clock() : std::time(nullptr);
    out.append("Date: ").append(FormatHttpDate(now)).append("\r\n");
  }
  for (const auto& [name, value] : response.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!bodiless) {
    out.append("Content-Length: ");
    out.append(std::to_string(response.ContentLength()));
    out.append("\r\n");
  }
  if (close) {
    out.append("Connection: close\r\n");
  } else if (request_.version_minor == 0) {
    out.append("Connection: keep-alive\r\n");  // HTTP/1.0 opted in.
  }
  out.append("\r\n");
  const bool send_body = !head && !bodiless;
  if (send_body && response.file == nullptr) out.append(response.body);
  sink_->Write(out);
  if (send_body && response.file != nullptr && response.file_length > 0) {
    sink_->WriteFile(response.file, response.file_offset, response.file_length);
  }
  if (out.capacity() > 64 * 1024) std::string().swap(out);
  ++responses_;
  if (close) closed_ = true;
}

}  // namespace mill::http
