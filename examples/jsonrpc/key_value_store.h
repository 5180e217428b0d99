// KeyValueStore: a small thread-safe map from string keys to JSON values,
// bounded in keys and bytes.
//
// Backs the "set" / "get" / "delete" / "list" methods of the JSON-RPC
// example. It is shared by every connection and worker thread of a server,
// so its bounds are what keeps a client that stores and stores from
// exhausting the server's memory.
//
// Bounds (Options): at most max_keys entries and at most max_bytes stored
// bytes, an estimate of the heap the entries take (see EntryBytes(): the
// key, the value's nodes, strings and containers, the map node), so that
// max_bytes bounds memory rather than text: a 1 MB request line holding an
// array of 500,000 small numbers costs about 8 MB, and counts so. A Set that
// would cross a bound is refused with ResourceExhausted and changes nothing;
// replacing a value by a smaller one, Erase, and any Set that stays within
// the bounds always work.
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
    // Most stored bytes: the sum of EntryBytes() over the entries.
    size_t max_bytes = size_t{64} << 20;  // 64 MiB
  };

  KeyValueStore() : KeyValueStore(Options{}) {}
  explicit KeyValueStore(Options options);
  KeyValueStore(const KeyValueStore&) = delete;
  KeyValueStore& operator=(const KeyValueStore&) = delete;

  // What one entry counts against max_bytes: kEntryOverhead + the key's
  // length + ValueBytes(value).
  static constexpr size_t kEntryOverhead = 96;  // Map node, key and value.
  static size_t EntryBytes(std::string_view key, const nlohmann::json& value);
  // The heap a value takes beyond its own node, estimated for libstdc++ on
  // 64-bit: kNodeBytes per nested value (array element or member value),
  // plus for a string kStringBytes + its length, an array kArrayBytes, an
  // object kObjectBytes and per member kMemberBytes + the name's length.
  // So `42` is 0, `"ab"` is 34, `[1,2]` is 56 and `{"a":1}` 129.
  static constexpr size_t kNodeBytes = 16;
  static constexpr size_t kStringBytes = 32;
  static constexpr size_t kArrayBytes = 24;
  static constexpr size_t kObjectBytes = 48;
  static constexpr size_t kMemberBytes = 64;
  static size_t ValueBytes(const nlohmann::json& value);

  // Inserts or replaces. Returns true when the key was new, false when it
  // replaced a value. Fails with ResourceExhausted, leaving the store
  // unchanged, when the result would hold more than max_keys entries or
  // max_bytes bytes (the message names the bound).
  absl::StatusOr<bool> Set(std::string key, nlohmann::json value);

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
  struct Entry {
    nlohmann::json value;
    size_t bytes;  // EntryBytes(key, value), kept to avoid walking again.
  };
  // Ordered so Keys() needs no sort; std::less<> for string_view lookups.
  std::map<std::string, Entry, std::less<>> entries_;
  size_t bytes_ = 0;  // Sum of EntryBytes(). Guarded by mu_.
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_KEY_VALUE_STORE_H_
