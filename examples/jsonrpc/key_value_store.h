// KeyValueStore: a small thread-safe map from string keys to JSON values.
//
// Backs the "set" / "get" / "list" methods of the JSON-RPC example. It is
// shared by every connection and worker thread of a server.
//
// Thread-safety: thread-safe. Readers (Get, Keys, size) share a
// std::shared_mutex; writers (Set, Erase) take it exclusively. Values are
// copied in and out, so no reference into the store escapes the lock.
// Ownership: the store owns its keys and values. It has no size limit; the
// transport's line limit bounds each value.
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

#include "nlohmann/json.hpp"

namespace mill::jsonrpc {

// Thread-safe string -> JSON map. Create one per server and share it:
//
//   KeyValueStore store;
//   store.Set("answer", 42);
//   std::optional<nlohmann::json> v = store.Get("answer");  // 42
class KeyValueStore {
 public:
  KeyValueStore() = default;
  KeyValueStore(const KeyValueStore&) = delete;
  KeyValueStore& operator=(const KeyValueStore&) = delete;

  // Inserts or replaces. Returns true when the key was new.
  bool Set(std::string key, nlohmann::json value);

  // A copy of the value, or nullopt when the key is absent.
  std::optional<nlohmann::json> Get(std::string_view key) const;

  // Removes the key; returns whether it was present.
  bool Erase(std::string_view key);

  // All keys in ascending byte order.
  std::vector<std::string> Keys() const;

  size_t size() const;

 private:
  mutable std::shared_mutex mu_;
  // Ordered so Keys() needs no sort; std::less<> for string_view lookups.
  std::map<std::string, nlohmann::json, std::less<>> entries_;
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_KEY_VALUE_STORE_H_
