// What a reverse proxy changes in the messages it forwards (RFC 9110 §7.6,
// RFC 9112 §6, §7, §9): the request head it sends upstream, the response
// head it sends the client, and the body framing on each side.
//
// The rule against request smuggling and response splitting: the framing
// of every forwarded message is written by the proxy from its parsed state
// (Content-Length from the parsed length, or chunked re-framing with the
// parsed transfer codings), never copied from the peer's header, and never
// removed because the peer's Connection field names it. Host likewise is
// written by the proxy and never removed by Connection. So whatever a peer
// sends, the next hop frames each message exactly as the proxy parsed it.
//
//   * Hop-by-hop fields are removed in both directions: Connection, Keep-
//     Alive, Proxy-Connection, TE, Trailer, Upgrade, Transfer-Encoding, and
//     the fields Connection names except Content-Length, Transfer-Encoding
//     and Host (those are the proxy's to write, see above).
//   * Bodies are re-framed, not copied byte for byte: the parser de-chunks,
//     and the proxy frames again. A body with a Content-Length keeps its
//     parsed length; a chunked body is sent chunked (one chunk per piece
//     parsed; chunk extensions and trailer fields are dropped), and so is a
//     response delimited by the upstream closing, when the client speaks
//     HTTP/1.1. Transfer codings other than chunked are not decoded but
//     kept: "Transfer-Encoding: gzip" upstream reaches the client as
//     "Transfer-Encoding: gzip, chunked". To an HTTP/1.0 client such a
//     response is delimited by closing; one with a coding other than
//     chunked cannot reach it at all (it must not get Transfer-Encoding,
//     RFC 9112 §6.1): 502.
//   * Requests go upstream as HTTP/1.1, keep-alive (no Connection field), or
//     with "Connection: close" when the proxy does not reuse upstream
//     connections. The client's Host is kept (a request without one, HTTP/1.0,
//     gets the upstream's authority). X-Forwarded-For gets the client's
//     address appended to any the request had (all such fields are merged
//     into one). Both directions get "Via: 1.1 mill-proxy" appended.
//   * Responses go to the client as HTTP/1.1 with the upstream's status and
//     reason; "Connection: close" when the proxy will close after it,
//     "Connection: keep-alive" for an HTTP/1.0 client that asked for it.
//     1xx responses (e.g. 100 Continue) are forwarded to HTTP/1.1 clients
//     only (RFC 9110 §15.2), without framing fields; 204 without a length,
//     a HEAD or 304 response with the parsed length it describes.
//
// Thread-safety: free functions and plain values; thread-compatible.
#ifndef MILL_IO_EXAMPLES_PROXY_FORWARDING_H_
#define MILL_IO_EXAMPLES_PROXY_FORWARDING_H_

#include <string>
#include <string_view>

#include "examples/proxy/http_stream_parser.h"

namespace mill::proxy {

// True for the fields that are hop-by-hop whatever the Connection field says.
bool IsFixedHopByHop(std::string_view name);

// True if `name` is hop-by-hop in a message with head `head`: a fixed one or
// one listed in its Connection field(s) (case-insensitive tokens), except
// Content-Length and Host, which Connection cannot make hop-by-hop.
bool IsHopByHop(const MessageHead& head, std::string_view name);

// The request head to send upstream for `request` from a client at
// `client_ip` ("127.0.0.1" or "::1"), appended to `*out`. `upstream_authority`
// ("host:port") becomes Host when the request has none; `close` asks the
// upstream to close after the response. The body framing follows
// `request.framing`: kLength sends the parsed Content-Length, kChunked
// "Transfer-Encoding: <request.transfer_codings>, chunked".
void AppendUpstreamRequestHead(const MessageHead& request,
                               std::string_view client_ip,
                               std::string_view upstream_authority, bool close,
                               std::string* out);

// How a response reaches the client.
struct ClientResponsePlan {
  BodyFraming framing = BodyFraming::kNone;
  bool close = false;  // close the client connection after this response
  // The response cannot reach this client as coded (a transfer coding
  // other than chunked, for an HTTP/1.0 client): answer 502 instead.
  bool bad_gateway = false;
};

// Decides the client-side framing of final response `response` to `request`.
// `client_keep_alive` says whether the client connection may stay open as
// far as the request is concerned.
ClientResponsePlan PlanClientResponse(const MessageHead& request,
                                      const MessageHead& response,
                                      bool client_keep_alive);

// The response head for the client, appended to `*out`: a final response
// per `plan`, or (plan ignored) a 1xx interim response. `request` is the
// request it answers (its version decides "Connection: keep-alive").
void AppendClientResponseHead(const MessageHead& request,
                              const MessageHead& response,
                              const ClientResponsePlan& plan, std::string* out);

// Appends `piece` framed for `framing` to `*out`: as one chunk for kChunked
// (nothing for an empty piece: that would end the body), unchanged
// otherwise.
void AppendBodyPiece(BodyFraming framing, std::string_view piece,
                     std::string* out);

// What ends a body framed with `framing`: the last chunk for kChunked,
// nothing otherwise.
std::string_view BodyEnd(BodyFraming framing);

// A complete error response generated by the proxy itself (400, 408, 431,
// 502, 504, ...): text body, "Connection: close" when `close`.
std::string ErrorResponse(int status, bool close);

}  // namespace mill::proxy

#endif  // MILL_IO_EXAMPLES_PROXY_FORWARDING_H_
