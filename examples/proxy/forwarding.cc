#include "examples/proxy/forwarding.h"

#include <http_parser.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "examples/common/http_text.h"

namespace mill::proxy {
namespace {

constexpr std::string_view kVia = "1.1 mill-proxy";

using ::mill::examples::EqualsIgnoreCase;
using ::mill::examples::TrimOptionalWhitespace;

// Whether a comma-separated list (a Connection field value) has `token`.
bool ListHasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (EqualsIgnoreCase(TrimOptionalWhitespace(list.substr(0, comma)), token))
      return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void AppendField(std::string_view name, std::string_view value,
                 std::string* out) {
  out->append(name.data(), name.size());
  out->append(": ");
  out->append(value.data(), value.size());
  out->append("\r\n");
}

const char* Reason(int status) {
  const char* reason = http_status_str(static_cast<http_status>(status));
  return reason == nullptr || *reason == '<' ? "Unknown" : reason;
}

// Fields the proxy always writes itself from its parsed state: the framing
// (and Host, in requests). A Connection field naming them changes nothing.
bool IsWrittenByProxy(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") ||
         EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Host");
}

// The fields of `head` that are forwarded unchanged: everything but the
// hop-by-hop ones, the framing, Host (`skip_host`) and those merged
// elsewhere (Via; X-Forwarded-For with `skip_xff`).
void AppendEndToEndFields(const MessageHead& head, bool skip_host,
                          bool skip_xff, std::string* out) {
  const bool has_connection = head.Find("Connection") != nullptr;
  for (const auto& [name, value] : head.headers) {
    if (IsFixedHopByHop(name)) continue;
    if (EqualsIgnoreCase(name, "Content-Length")) continue;
    if (skip_host && EqualsIgnoreCase(name, "Host")) continue;
    if (has_connection && IsHopByHop(head, name)) continue;
    if (EqualsIgnoreCase(name, "Via")) continue;
    if (skip_xff && EqualsIgnoreCase(name, "X-Forwarded-For")) continue;
    AppendField(name, value, out);
  }
}

// The framing fields of a body sent with `framing`: the parsed `length`
// (kLength), or the parsed transfer `codings` followed by chunked
// (kChunked); for kUntilClose, the codings alone.
void AppendFraming(BodyFraming framing, uint64_t length,
                   const std::vector<std::string>& codings, std::string* out) {
  if (framing == BodyFraming::kLength) {
    AppendField("Content-Length", std::to_string(length), out);
    return;
  }
  if (framing == BodyFraming::kNone ||
      (framing == BodyFraming::kUntilClose && codings.empty())) {
    return;
  }
  out->append("Transfer-Encoding: ");
  for (size_t i = 0; i < codings.size(); ++i) {
    if (i > 0) out->append(", ");
    out->append(codings[i]);
  }
  if (framing == BodyFraming::kChunked) {
    out->append(codings.empty() ? "chunked" : ", chunked");
  }
  out->append("\r\n");
}

// Via with the proxy appended to what earlier hops put there.
void AppendVia(const MessageHead& head, std::string* out) {
  out->append("Via: ");
  for (const auto& [name, value] : head.headers) {
    if (EqualsIgnoreCase(name, "Via")) out->append(value).append(", ");
  }
  out->append(kVia.data(), kVia.size());
  out->append("\r\n");
}

}  // namespace

bool IsFixedHopByHop(std::string_view name) {
  // RFC 9110 §7.6.1 and RFC 9112 §6.1 (Transfer-Encoding is re-framed).
  switch (name.size()) {
    case 2:
      return EqualsIgnoreCase(name, "TE");
    case 7:
      return EqualsIgnoreCase(name, "Trailer") ||
             EqualsIgnoreCase(name, "Upgrade");
    case 10:
      return EqualsIgnoreCase(name, "Connection") ||
             EqualsIgnoreCase(name, "Keep-Alive");
    case 16:
      return EqualsIgnoreCase(name, "Proxy-Connection");
    case 17:
      return EqualsIgnoreCase(name, "Transfer-Encoding");
    default:
      return false;
  }
}

bool IsHopByHop(const MessageHead& head, std::string_view name) {
  if (IsFixedHopByHop(name)) return true;
  if (IsWrittenByProxy(name)) return false;
  for (const auto& [field, value] : head.headers) {
    if (EqualsIgnoreCase(field, "Connection") && ListHasToken(value, name)) {
      return true;
    }
  }
  return false;
}

void AppendUpstreamRequestHead(const MessageHead& request,
                               std::string_view client_ip,
                               std::string_view upstream_authority, bool close,
                               std::string* out) {
  out->append(request.method);
  out->push_back(' ');
  out->append(request.target);
  out->append(" HTTP/1.1\r\n");
  // The parser's user has checked that there is at most one.
  const std::string* host = request.Find("Host");
  AppendField("Host", host != nullptr ? *host : upstream_authority, out);
  AppendEndToEndFields(request, /*skip_host=*/true, /*skip_xff=*/true, out);
  // X-Forwarded-For: every earlier value (fields merged), then the client.
  out->append("X-Forwarded-For: ");
  for (const auto& [name, value] : request.headers) {
    if (EqualsIgnoreCase(name, "X-Forwarded-For") &&
        !TrimOptionalWhitespace(value).empty()) {
      out->append(TrimOptionalWhitespace(value)).append(", ");
    }
  }
  out->append(client_ip.data(), client_ip.size());
  out->append("\r\n");
  AppendVia(request, out);
  // (Requests are never delimited by closing.)
  AppendFraming(request.framing, request.content_length,
                request.transfer_codings, out);
  if (close) out->append("Connection: close\r\n");
  out->append("\r\n");
}

ClientResponsePlan PlanClientResponse(const MessageHead& request,
                                      const MessageHead& response,
                                      bool client_keep_alive) {
  ClientResponsePlan plan;
  plan.close = !client_keep_alive || request.upgrade;
  switch (response.framing) {
    case BodyFraming::kNone:
    case BodyFraming::kLength:
      plan.framing = response.framing;
      break;
    case BodyFraming::kChunked:
    case BodyFraming::kUntilClose:
      if (request.version_minor >= 1) {
        plan.framing = BodyFraming::kChunked;
      } else {
        // HTTP/1.0 has no chunked coding: the end is the close. Nor any
        // other transfer coding (RFC 9112 §6.1), and the proxy does not
        // decode.
        plan.framing = BodyFraming::kUntilClose;
        plan.close = true;
        plan.bad_gateway = !response.transfer_codings.empty();
      }
      break;
  }
  return plan;
}

void AppendClientResponseHead(const MessageHead& request,
                              const MessageHead& response,
                              const ClientResponsePlan& plan,
                              std::string* out) {
  out->append("HTTP/1.1 ");
  out->append(std::to_string(response.status));
  out->push_back(' ');
  if (!response.reason.empty()) {
    out->append(response.reason);
  } else {
    out->append(Reason(response.status));
  }
  out->append("\r\n");
  const bool interim = response.status / 100 == 1;
  AppendEndToEndFields(response, /*skip_host=*/false, /*skip_xff=*/false, out);
  AppendVia(response, out);
  if (!interim) {
    if (plan.framing != BodyFraming::kNone) {
      AppendFraming(plan.framing, response.content_length,
                    response.transfer_codings, out);
    } else if (response.status != 204 && response.has_content_length) {
      // A HEAD or 304 response: the length it describes. (1xx and 204
      // never carry one.)
      AppendField("Content-Length", std::to_string(response.content_length),
                  out);
    }
    if (plan.close) {
      out->append("Connection: close\r\n");
    } else if (request.version_minor == 0) {
      out->append("Connection: keep-alive\r\n");
    }
  }
  out->append("\r\n");
}

void AppendBodyPiece(BodyFraming framing, std::string_view piece,
                     std::string* out) {
  if (framing != BodyFraming::kChunked) {
    out->append(piece.data(), piece.size());
    return;
  }
  if (piece.empty()) return;
  char size[24];
  const int n = std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
  out->append(size, static_cast<size_t>(n));
  out->append(piece.data(), piece.size());
  out->append("\r\n");
}

std::string_view BodyEnd(BodyFraming framing) {
  return framing == BodyFraming::kChunked ? std::string_view("0\r\n\r\n")
                                          : std::string_view();
}

std::string ErrorResponse(int status, bool close) {
  std::string body = Reason(status);
  body.push_back('\n');
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                    Reason(status) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: " +
                    std::to_string(body.size()) + "\r\n";
  if (close) out.append("Connection: close\r\n");
  out.append("\r\n");
  out.append(body);
  return out;
}

}  // namespace mill::proxy
