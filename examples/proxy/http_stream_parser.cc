#include "examples/proxy/http_stream_parser.h"

#include <string>
#include <utility>
#include <vector>

#include "examples/common/http_text.h"

namespace mill::proxy {
namespace {

using ::mill::examples::EqualsIgnoreCase;
using ::mill::examples::ReadTransferCodings;
using ::mill::examples::TransferCodingList;

HttpStreamParser* Self(http_parser* parser) {
  return static_cast<HttpStreamParser*>(parser->data);
}

}  // namespace

const std::string* MessageHead::Find(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (EqualsIgnoreCase(field, name)) return &value;
  }
  return nullptr;
}

HttpStreamParser::HttpStreamParser(Type type, Listener* listener,
                                   Options options)
    : type_(type), listener_(listener), options_(options) {
  http_parser_init(&parser_, type == kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
  parser_.data = this;
}

const http_parser_settings& HttpStreamParser::Settings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_begin = &HttpStreamParser::OnMessageBegin;
    s.on_url = &HttpStreamParser::OnUrl;
    s.on_status = &HttpStreamParser::OnStatus;
    s.on_header_field = &HttpStreamParser::OnHeaderField;
    s.on_header_value = &HttpStreamParser::OnHeaderValue;
    s.on_headers_complete = &HttpStreamParser::OnHeadersComplete;
    s.on_body = &HttpStreamParser::OnBodyPiece;
    s.on_message_complete = &HttpStreamParser::OnMessageComplete;
    return s;
  }();
  return settings;
}

void HttpStreamParser::Fail(int status, std::string message) {
  failed_ = true;
  error_status_ = status;
  error_ = std::move(message);
}

size_t HttpStreamParser::Feed(std::string_view bytes) {
  // An empty execute would mean end of stream to http-parser.
  if (failed_ || upgraded_ || bytes.empty()) return 0;
  const size_t parsed =
      http_parser_execute(&parser_, &Settings(), bytes.data(), bytes.size());
  const http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_PAUSED) {
    // OnHeadersComplete or OnMessageComplete stopped here on purpose.
    http_parser_pause(&parser_, 0);
    return parsed;
  }
  if (err != HPE_OK) {
    const int status = reject_status_ != 0          ? reject_status_
                       : type_ == kResponse         ? 502
                       : err == HPE_HEADER_OVERFLOW ? 431
                                                    : 400;
    Fail(status, http_errno_description(err));
    return parsed;
  }
  return parsed;
}

bool HttpStreamParser::FinishAtEof() {
  if (failed_) return false;
  if (phase_ == Phase::kIdle) return true;
  // A zero-length execute tells http-parser the stream ended: that
  // completes a close-delimited body and fails anything else.
  http_parser_execute(&parser_, &Settings(), nullptr, 0);
  const http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_PAUSED) http_parser_pause(&parser_, 0);
  if (phase_ != Phase::kIdle) {
    Fail(type_ == kResponse ? 502 : 400, err == HPE_OK || err == HPE_PAUSED
                                             ? "message cut short by EOF"
                                             : http_errno_description(err));
    return false;
  }
  return true;
}

bool HttpStreamParser::CountHeaderBytes(size_t length) {
  header_bytes_ += length;
  if (header_bytes_ <= options_.max_header_bytes) return true;
  reject_status_ = type_ == kRequest ? 431 : 502;
  return false;
}

void HttpStreamParser::FinishHeaderLine() {
  // Trailer fields (after a chunked body) are not header fields: the head
  // has gone on already (RFC 9110 §6.5.1).
  if (phase_ != Phase::kBody) {
    head_.headers.emplace_back(std::move(field_), std::move(value_));
  }
  field_.clear();
  value_.clear();
  in_value_ = false;
}

int HttpStreamParser::OnMessageBegin(http_parser* parser) {
  HttpStreamParser* self = Self(parser);
  self->phase_ = Phase::kHead;
  ++self->started_;
  self->head_ = MessageHead();
  self->field_.clear();
  self->value_.clear();
  self->in_value_ = false;
  self->header_bytes_ = 0;
  return 0;
}

int HttpStreamParser::OnUrl(http_parser* parser, const char* at,
                            size_t length) {
  HttpStreamParser* self = Self(parser);
  if (!self->CountHeaderBytes(length)) return -1;
  self->head_.target.append(at, length);
  return 0;
}

int HttpStreamParser::OnStatus(http_parser* parser, const char* at,
                               size_t length) {
  HttpStreamParser* self = Self(parser);
  if (!self->CountHeaderBytes(length)) return -1;
  self->head_.reason.append(at, length);
  return 0;
}

int HttpStreamParser::OnHeaderField(http_parser* parser, const char* at,
                                    size_t length) {
  HttpStreamParser* self = Self(parser);
  if (self->in_value_) self->FinishHeaderLine();
  if (self->field_.empty() && !self->CountHeaderBytes(4)) return -1;
  if (!self->CountHeaderBytes(length)) return -1;
  self->field_.append(at, length);
  return 0;
}

int HttpStreamParser::OnHeaderValue(http_parser* parser, const char* at,
                                    size_t length) {
  HttpStreamParser* self = Self(parser);
  if (!self->CountHeaderBytes(length)) return -1;
  // (An obsolete line folding arrives without its CRLF: the value keeps
  // the whitespace that followed, as RFC 9112 §5.2 asks of a proxy.)
  self->value_.append(at, length);
  self->in_value_ = true;
  return 0;
}

int HttpStreamParser::OnHeadersComplete(http_parser* parser) {
  HttpStreamParser* self = Self(parser);
  // A field with an empty value gets no value callback.
  if (self->in_value_ || !self->field_.empty()) self->FinishHeaderLine();
  MessageHead& head = self->head_;
  head.version_major = parser->http_major;
  head.version_minor = parser->http_minor;
  if (parser->http_major != 1) {
    self->reject_status_ = self->type_ == kRequest ? 505 : 502;
    return -1;
  }
  const int bad_framing = self->type_ == kRequest ? 400 : 502;
  const bool chunked = (parser->flags & F_CHUNKED) != 0;
  // (Both a length and Transfer-Encoding, or two lengths: http-parser
  // failed before this callback.)
  head.has_content_length = (parser->flags & F_CONTENTLENGTH) != 0;
  if (head.has_content_length) head.content_length = parser->content_length;
  bool skip_body = false;
  if (self->type_ == kResponse) {
    head.status = parser->status_code;
    // RFC 9110 §6.4.1: these never have a body, whatever the headers say
    // (http-parser would read a 204's Content-Length bytes).
    skip_body = self->head_response_ || head.status / 100 == 1 ||
                head.status == 204 || head.status == 304;
  } else {
    head.method = http_method_str(static_cast<http_method>(parser->method));
    head.upgrade = parser->upgrade != 0 || parser->method == HTTP_CONNECT;
  }
  TransferCodingList codings;
  if (!skip_body) codings = ReadTransferCodings(head.headers);
  if (codings.present) {
    // The list must say what http-parser is about to do with the body.
    if (!codings.valid || codings.chunked != chunked ||
        (self->type_ == kRequest &&
         (!codings.chunked || head.version_minor == 0))) {
      self->reject_status_ = bad_framing;
      return -1;
    }
    head.transfer_codings = std::move(codings.others);
  }
  if (skip_body) {
    head.framing = BodyFraming::kNone;
  } else if (chunked) {
    head.framing = BodyFraming::kChunked;
  } else if (head.has_content_length) {
    head.framing = BodyFraming::kLength;
  } else if (self->type_ == kResponse) {
    // No length (or a transfer coding other than chunked last): the body
    // runs until the server closes (RFC 9112 §6.3, items 4 and 8).
    head.framing = BodyFraming::kUntilClose;
  }
  head.keep_alive = http_should_keep_alive(parser) != 0 &&
                    head.framing != BodyFraming::kUntilClose &&
                    !(codings.present && head.version_minor == 0);
  self->phase_ = Phase::kBody;
  self->listener_->OnHead(head);
  http_parser_pause(parser, 1);  // Feed() returns; the caller resumes.
  return skip_body ? 1 : 0;
}

int HttpStreamParser::OnBodyPiece(http_parser* parser, const char* at,
                                  size_t length) {
  Self(parser)->listener_->OnBody(std::string_view(at, length));
  return 0;
}

int HttpStreamParser::OnMessageComplete(http_parser* parser) {
  HttpStreamParser* self = Self(parser);
  self->phase_ = Phase::kIdle;
  if (self->type_ == kRequest && self->head_.upgrade) self->upgraded_ = true;
  if (self->type_ == kResponse && self->head_.status >= 200) {
    self->head_response_ = false;
  }
  self->listener_->OnComplete();
  http_parser_pause(parser, 1);
  return 0;
}

}  // namespace mill::proxy
