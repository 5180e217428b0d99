// The JSON-RPC example server's methods.
//
// RegisterStandardMethods() adds, to a JsonRpcService:
//   From the specification's examples:
//     subtract  [minuend, subtrahend] or {"minuend": x, "subtrahend": y}
//               -> x - y                      ([42, 23] -> 19)
//     sum       [n1, n2, ...] -> n1 + n2 + ...  ([1, 2, 4] -> 7; [] -> 0)
//     get_data  no params -> ["hello", 5]
//     update, notify_hello, notify_sum
//               any params -> null (they are meant to be sent as
//               notifications; called with an id they answer null)
//   Extras:
//     ping      no params -> "pong"
//     echo      any params -> the params (null when omitted)
//     add       [a, b] or {"a": a, "b": b} -> a + b
//   Key-value store (see key_value_store.h):
//     set       [key, value] or {"key": k, "value": v} -> true, or error
//               kStoreFull when the store is at one of its bounds
//     get       [key] or {"key": k} -> the value, or error kKeyNotFound
//     delete    [key] or {"key": k} -> whether the key existed
//     list      no params -> array of all keys, sorted
//
// "No params" means params omitted, [] or {}. Arithmetic is exact on 64-bit
// integers and falls back to double when an operand is fractional or the
// result would overflow. Any other shape or type of params (a missing member,
// a string where a number belongs, a non-string key, a wrong element count)
// is answered with -32602 Invalid params, with an explanation as "data".
//
// Thread-safety: the registered methods are thread-safe (they touch only the
// store, which is). Ownership: `store` is referenced, not owned, and must
// outlive `service`.
#ifndef MILL_IO_EXAMPLES_JSONRPC_STANDARD_METHODS_H_
#define MILL_IO_EXAMPLES_JSONRPC_STANDARD_METHODS_H_

#include "absl/status/status.h"
#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/key_value_store.h"

namespace mill::jsonrpc {

// Application error returned by "get" for an absent key, with {"key": k} as
// "data". Outside the ranges the specification reserves (-32768..-32000), as
// it asks of application errors.
inline constexpr int kKeyNotFound = 404;

// Application error returned by "set" when storing the value would take the
// store past KeyValueStore::Options::max_keys or max_bytes: message
// "Store full", "data" {"max_keys": K, "max_bytes": B, "detail": text naming
// the bound}. Nothing is stored; "delete" frees room. (507 echoes HTTP's
// "Insufficient Storage".)
inline constexpr int kStoreFull = 507;

// Registers every method listed above. Fails (AlreadyExists), registering
// nothing, if one of the names is already registered on `service`.
absl::Status RegisterStandardMethods(JsonRpcService* service,
                                     KeyValueStore* store);

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_STANDARD_METHODS_H_
