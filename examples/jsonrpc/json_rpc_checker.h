// A reference model of JSON-RPC 2.0 replies, used by the JSON-RPC service
// fuzz target to check every reply the service gives, and kept apart from
// the code that drives the service so the rules are stated once.
//
// CheckJsonRpcReply(message, reply) derives from the message alone what the
// reply must be, following the specification and the decisions documented
// in json_rpc_service.h:
//   * not JSON: one error -32700, id null;
//   * nested deeper than max_depth: one error -32600, id null;
//   * an empty batch, or one of more than max_batch_elements: one error
//     -32600, id null;
//   * otherwise one response per request, in order, and none for a valid
//     notification (so a message of only notifications gets no reply):
//       - an element that is not an object, has an id that is not a string,
//         number or null, or is a notification of the wrong shape: -32600,
//         id null;
//       - a request (it has an id) of the wrong shape: -32600 with its id;
//       - a request for a method the service lacks: -32601 with its id;
//       - any other request: a result or an error, with its id;
//     and a batch's reply is an array of them no longer than
//     max_batch_response_bytes, or else one error -32600, id null, whose
//     "data" is {"max_batch_response_bytes": N}.
// Every response must be a JSON-RPC 2.0 response object: "jsonrpc": "2.0",
// an "id", exactly one of "result" and "error", nothing else; an error has an
// integer "code", a string "message" and optionally "data". Ids must be
// echoed exactly: same JSON type, same value. The reply is one line.
//
// Thread-safety: a pure function. Ownership: nothing retained.
#ifndef MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_CHECKER_H_
#define MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_CHECKER_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mill::jsonrpc {

// What the checker must know of the service under test.
struct ReplyExpectations {
  size_t max_depth = 128;
  size_t max_batch_elements = 1000;
  size_t max_batch_response_bytes = size_t{1} << 20;
  // Whether the service has a method of that name.
  std::function<bool(const std::string&)> has_method;
};

// True if `reply` is the single error the service gives for a batch whose
// response would exceed the byte bound. Lets a caller confirm, by asking a
// service without that bound, that the response really was too large.
bool IsBatchResponseTooLarge(std::string_view reply);

// Checks the service's `reply` (nullopt: nothing sent) to `message`. Returns
// an error describing the first violation.
absl::Status CheckJsonRpcReply(std::string_view message,
                               const std::optional<std::string>& reply,
                               const ReplyExpectations& expectations);

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_CHECKER_H_
