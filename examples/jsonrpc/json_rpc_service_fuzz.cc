// Fuzz target: the JSON-RPC service, one message in, the reply out.
//
// The input is the message (one line of the protocol, or anything at all).
// The service has the example server's methods and a key-value store, with
// small bounds (depth, batch elements, batch response bytes, store keys and
// bytes) so that short inputs reach every refusal. Checked, per input:
//   * the reply is what json_rpc_checker.h's model says: valid JSON-RPC 2.0
//     responses, one per request in order, ids echoed exactly, none for
//     notifications, the specified error codes;
//   * differential: a service without the response-byte bound (and its own
//     fresh store) gives the same reply, unless the bounded one refused the
//     batch as too large, and then the unbounded reply really is larger;
//   * the same message as a line through JsonRpcConnection gives the same
//     reply followed by '\n'.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "examples/jsonrpc/json_rpc_checker.h"
#include "examples/jsonrpc/json_rpc_connection.h"
#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/key_value_store.h"
#include "examples/jsonrpc/standard_methods.h"
#include "tools/fuzz/fuzz_check.h"

namespace {

using mill::jsonrpc::JsonRpcService;
using mill::jsonrpc::KeyValueStore;

constexpr size_t kMaxResponseBytes = 1024;

// A service with the standard methods over its own empty store.
struct Server {
  explicit Server(size_t max_batch_response_bytes)
      : store(StoreOptions()),
        service(ServiceOptions(max_batch_response_bytes)) {
    mill::fuzz::Require(
        mill::jsonrpc::RegisterStandardMethods(&service, &store));
  }

  static KeyValueStore::Options StoreOptions() {
    KeyValueStore::Options options;
    options.max_keys = 4;
    options.max_bytes = 1024;
    return options;
  }
  static JsonRpcService::Options ServiceOptions(size_t max_response_bytes) {
    JsonRpcService::Options options;
    options.max_depth = 32;
    options.max_batch_elements = 16;
    options.max_batch_response_bytes = max_response_bytes;
    return options;
  }

  mill::jsonrpc::ReplyExpectations Expectations() const {
    mill::jsonrpc::ReplyExpectations e;
    e.max_depth = service.options().max_depth;
    e.max_batch_elements = service.options().max_batch_elements;
    e.max_batch_response_bytes = service.options().max_batch_response_bytes;
    e.has_method = [this](const std::string& name) {
      return service.HasMethod(name);
    };
    return e;
  }

  KeyValueStore store;
  JsonRpcService service;
};

std::string Show(const std::optional<std::string>& reply) {
  return reply.has_value() ? reply->substr(0, 300) : "<none>";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view message(reinterpret_cast<const char*>(data), size);

  Server bounded(kMaxResponseBytes);
  const std::optional<std::string> reply =
      bounded.service.HandleMessage(message);
  mill::fuzz::Require(
      mill::jsonrpc::CheckJsonRpcReply(message, reply, bounded.Expectations()));

  Server unbounded(std::numeric_limits<size_t>::max());
  const std::optional<std::string> reference =
      unbounded.service.HandleMessage(message);
  mill::fuzz::Require(mill::jsonrpc::CheckJsonRpcReply(
      message, reference, unbounded.Expectations()));
  if (reply.has_value() && mill::jsonrpc::IsBatchResponseTooLarge(*reply)) {
    if (!reference.has_value() || reference->size() <= kMaxResponseBytes) {
      mill::fuzz::Require(absl::InternalError(absl::StrCat(
          "refused as too large, but the full reply is ", Show(reference))));
    }
  } else if (reply != reference) {
    mill::fuzz::Require(absl::InternalError(
        absl::StrCat("bounded reply ", Show(reply),
                     " differs from the unbounded one ", Show(reference))));
  }

  // As one line of the transport: a message the framer passes through
  // untouched (no '\n', no trailing '\r', not blank) gets the same reply.
  const bool blank = message.find_first_not_of(" \t\r") == std::string::npos;
  if (message.find('\n') == std::string::npos && !blank &&
      message.back() != '\r') {
    Server fresh(kMaxResponseBytes);
    mill::jsonrpc::JsonRpcConnection connection(&fresh.service);
    std::string output;
    connection.Feed(std::string(message) + "\n", &output);
    const std::string expected = reply.has_value() ? *reply + "\n" : "";
    if (output != expected) {
      mill::fuzz::Require(absl::InternalError(
          absl::StrCat("through JsonRpcConnection: ", output.substr(0, 300),
                       " instead of ", expected.substr(0, 300))));
    }
  }
  return 0;
}
