// KeyValueStore: a small thread-safe map from string keys to JSON values,
// bounded in keys and bytes.
//
// Backs the "set" / "get" / "delete" / "list" methods of the JSON-RPC
// example. It is shared by every connection and worker thread of a server,
// so its bounds are what keeps a client that stores and stores from
// exhausting the server's memory.
//
// Bounds (Options): at most max_keys entries and at most max_bytes "stored
// bytes", counted as the key's length plus the length of the value's compact
// JSON text. Values are kept as that text (and parsed back by Get), so the
// count is the memory they really take, give or take a fixed per-entry
// overhead that max_keys bounds. A Set that would cross a bound is refused
// with ResourceExhausted and changes nothing; replacing a value by a smaller
// one, Erase, and any Set of a store under its bounds always work.
//
// Thread-safety: thread-safe. Readers (Get, Keys, size, bytes) share a
// std::shared_mutex; writers (Set, Erase) take it exclusively. Values are
// copied in and out, so no reference into the store escapes the lock.
// Ownership: the store owns its keys and values.
#ifndef MILL_IO_EXAMPLES_JSONRPC_KEY_VALUE_STORE_H_
#define MILL_IO_EXAMPLES_JSONRPC_KEY_VALUE_STORE_H_

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace mill::jsonrpc {

// Thread-safe, bounded string -> JSON map. Create one per server and share
// it:
//
//   KeyValueStore::Options options;
//   options.max_keys = 1000;
//   KeyValueStore store(options);
//   absl::StatusOr<bool> added = store.Set("answer", 42);  // true: new key
//   if (!added.ok()) { /* ResourceExhausted: the store is full */ }
//   std::optional<nlohmann::json> v = store.Get("answer");  // 42
class KeyValueStore {
 public:
  struct Options {
    // Most entries the store holds.
    size_t max_keys = 100000;
    // Most stored bytes: sum over entries of key length plus the length of
    // the value's compact JSON text (`42` is 2 bytes, `"ab"` is 4).
    size_t max_bytes = size_t{64} << 20;  // 64 MiB
  };

  KeyValueStore() : KeyValueStore(Options{}) {}
  explicit KeyValueStore(Options options);
  KeyValueStore(const KeyValueStore&) = delete;
  KeyValueStore& operator=(const KeyValueStore&) = delete;

  // Inserts or replaces. Returns true when the key was new, false when it
  // replaced a value. Fails with ResourceExhausted, leaving the store
  // unchanged, when the result would hold more than max_keys entries or
  // max_bytes bytes (the message names the bound). Strings that are not
  // valid UTF-8 are stored with U+FFFD in place of the invalid bytes.
  absl::StatusOr<bool> Set(std::string key, const nlohmann::json& value);

  // A copy of the value, or nullopt when the key is absent.
  std::optional<nlohmann::json> Get(std::string_view key) const;

  // Removes the key; returns whether it was present.
  bool Erase(std::string_view key);

  // All keys in ascending byte order.
  std::vector<std::string> Keys() const;

  size_t size() const;
  // Stored bytes, as the max_bytes bound counts them.
  size_t bytes() const;
  const Options& options() const { return options_; }

 private:
  const Options options_;
  mutable std::shared_mutex mu_;
  // Key -> the value's compact JSON text. Ordered so Keys() needs no sort;
  // std::less<> for string_view lookups.
  std::map<std::string, std::string, std::less<>> entries_;
  size_t bytes_ = 0;  // Guarded by mu_.
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_KEY_VALUE_STORE_H_
