// JsonRpcService: the transport-independent core of a JSON-RPC 2.0 server.
//
// Implements https://www.jsonrpc.org/specification: requests, notifications
// (never answered, even on error), batches, and the standard error codes.
// The service maps one received message (one line of the line-delimited
// transport, see line_framer.h) to at most one response message.
//
// Decisions where the specification leaves room:
//   * A request whose "id" is valid (string, number or null) but that is
//     otherwise invalid is answered with that id; when the id is missing or of
//     a wrong type the error carries "id": null, as the specification requires.
//   * Ids are echoed exactly: strings and integers by value, and numbers that
//     are not 64-bit integers (fractions, exponents, huge integers) by their
//     original text, so a peer never sees 1e2 come back as 100.0. (The only
//     respelling left: an integer written "-0" comes back as 0.) Numbers
//     beyond the range of a double (1e400) are a parse error, as nlohmann
//     rejects them.
//   * Nesting deeper than Options::max_depth (default 128) is refused with
//     -32600 Invalid Request (id null) because handlers and the serializer
//     recurse; the parser itself does not.
//   * A method that throws RpcError is answered with that error; one that
//     throws any other exception is answered with -32603 "Internal error" and
//     the exception's what() as "data".
//   * Standard errors carry exactly {"code", "message"} (no "data") unless
//     stated otherwise, matching the specification's examples.
//   * Batch responses follow the order of the requests.
//   * A batch is bounded so that one message cannot make a huge response
//     (a 1 MB line "[1,1,1,...]" would otherwise be answered with 40 MB of
//     errors). A batch of more than Options::max_batch_elements elements is
//     refused as a whole, before any element runs, with one -32600 Invalid
//     Request (id null, "data" {"max_batch_elements": N}). A batch whose
//     response would exceed Options::max_batch_response_bytes is answered
//     with one -32600 Invalid Request (id null, "data"
//     {"max_batch_response_bytes": N}) instead. Its elements run in order
//     until one's response takes the total past the bound: the effects of
//     those that ran, that one included (a "set", say), remain; the elements
//     after it do not run.
//
// Thread-safety: RegisterMethod is not thread-safe and must finish before the
// service is shared. After that, HandleMessage is const and may be called from
// any number of threads at once; registered methods must then be thread-safe
// themselves. Ownership: the service owns its method table; methods own
// whatever they capture (see standard_methods.h for the key-value store).
#ifndef MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_SERVICE_H_
#define MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_SERVICE_H_

#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace mill::jsonrpc {

using Json = nlohmann::json;

// The error codes reserved by the specification.
enum ErrorCode : int {
  kParseError = -32700,
  kInvalidRequest = -32600,
  kMethodNotFound = -32601,
  kInvalidParams = -32602,
  kInternalError = -32603,
};

// Thrown by a method to answer with a JSON-RPC error object:
//   throw RpcError{kInvalidParams, "Invalid params", Json("expected [a, b]")};
struct RpcError : std::exception {
  RpcError(int code, std::string message, std::optional<Json> data = {})
      : code(code), message(std::move(message)), data(std::move(data)) {}

  const char* what() const noexcept override { return message.c_str(); }

  int code;
  std::string message;
  std::optional<Json> data;  // Omitted from the error object when empty.
};

// Convenience for the common -32602 case, with an optional explanation as
// "data".
RpcError InvalidParams(std::string detail = {});

// Dispatches JSON-RPC 2.0 messages to registered methods. Typical use:
//
//   JsonRpcService service;
//   service.RegisterMethod("ping", [](const Json&) { return Json("pong"); });
//   // per received line, from any worker thread:
//   if (auto reply = service.HandleMessage(line)) Send(*reply + "\n");
class JsonRpcService {
 public:
  // A method receives "params" (an array or an object, or null when the
  // request had none) and returns the "result". It may throw RpcError.
  using Method = std::function<Json(const Json& params)>;

  struct Options {
    // Deepest array/object nesting accepted in a message.
    size_t max_depth = 128;
    // Most elements in a batch (requests and notifications alike).
    size_t max_batch_elements = 1000;
    // Longest batch response (the whole JSON array, in bytes).
    size_t max_batch_response_bytes = size_t{1} << 20;  // 1 MiB
  };

  JsonRpcService() : JsonRpcService(Options{}) {}
  explicit JsonRpcService(Options options);

  JsonRpcService(const JsonRpcService&) = delete;
  JsonRpcService& operator=(const JsonRpcService&) = delete;

  // Adds `method` under `name`. Fails with InvalidArgument for an empty name
  // or one starting with "rpc." (reserved by the specification), and with
  // AlreadyExists for a name already registered.
  absl::Status RegisterMethod(std::string name, Method method);

  bool HasMethod(std::string_view name) const;

  const Options& options() const { return options_; }

  // Handles one complete message. Returns the response message (without a
  // trailing newline), or nullopt when nothing must be sent: a notification,
  // or a batch made only of notifications.
  std::optional<std::string> HandleMessage(std::string_view message) const;

  // The response to send for a line the transport refused as too long
  // (LineFramer::Frame::Kind::kOversized): -32600 Invalid Request with id
  // null and {"max_line_bytes": limit} as "data". A too-long line may well be
  // valid JSON, so it is not called a parse error.
  static std::string OversizedMessageResponse(size_t limit);

  // A complete error response {"jsonrpc":"2.0","error":{...},"id":null}.
  static std::string ErrorResponse(int code, std::string_view message,
                                   const std::optional<Json>& data = {});

 private:
  // Handles one request object (a batch element or the whole message).
  // `raw_id` is the original text of a non-integer numeric id, if any.
  std::optional<std::string> HandleRequest(
      const Json& request, const std::optional<std::string>& raw_id) const;

  Options options_;
  absl::flat_hash_map<std::string, Method> methods_;
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_SERVICE_H_
