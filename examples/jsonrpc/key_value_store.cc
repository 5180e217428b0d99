#include "examples/jsonrpc/key_value_store.h"

#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mill::jsonrpc {

KeyValueStore::KeyValueStore(Options options) : options_(options) {}

size_t KeyValueStore::ValueBytes(const nlohmann::json& value) {
  // Iterative: values may nest as deep as the parser allowed.
  size_t bytes = 0;
  std::vector<const nlohmann::json*> stack = {&value};
  while (!stack.empty()) {
    const nlohmann::json* v = stack.back();
    stack.pop_back();
    switch (v->type()) {
      case nlohmann::json::value_t::string:
        bytes += kStringBytes + v->get_ref<const std::string&>().size();
        break;
      case nlohmann::json::value_t::binary:
        bytes += kArrayBytes + v->get_binary().size();
        break;
      case nlohmann::json::value_t::array:
        bytes += kArrayBytes;
        for (const nlohmann::json& element : *v) {
          bytes += kNodeBytes;
          stack.push_back(&element);
        }
        break;
      case nlohmann::json::value_t::object:
        bytes += kObjectBytes;
        for (const auto& [name, member] : v->items()) {
          bytes += kMemberBytes + name.size() + kNodeBytes;
          stack.push_back(&member);
        }
        break;
      default:  // Numbers, booleans, null: inside the node.
        break;
    }
  }
  return bytes;
}

size_t KeyValueStore::EntryBytes(std::string_view key,
                                 const nlohmann::json& value) {
  return kEntryOverhead + key.size() + ValueBytes(value);
}

absl::StatusOr<bool> KeyValueStore::Set(std::string key, nlohmann::json value) {
  // Measured outside the lock: it walks the whole value.
  const size_t added = EntryBytes(key, value);
  nlohmann::json replaced;  // Destroyed after the lock is released.
  std::unique_lock lock(mu_);
  const auto it = entries_.find(key);
  const bool is_new = it == entries_.end();
  const size_t removed = is_new ? 0 : it->second.bytes;
  if (is_new && entries_.size() >= options_.max_keys) {
    return absl::ResourceExhaustedError(
        absl::StrCat("key-value store full: it holds the maximum of ",
                     options_.max_keys, " keys (max_keys)"));
  }
  // bytes_ - removed + added > max_bytes, without wrapping around.
  if (added > removed && bytes_ - removed + added > options_.max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("key-value store full: an entry of ", added,
                     " bytes would exceed the maximum of ", options_.max_bytes,
                     " bytes (max_bytes; ", bytes_, " in use)"));
  }
  bytes_ = bytes_ - removed + added;
  if (is_new) {
    entries_.emplace(std::move(key), Entry{std::move(value), added});
  } else {
    replaced = std::exchange(it->second.value, std::move(value));
    it->second.bytes = added;
  }
  return is_new;
}

std::optional<nlohmann::json> KeyValueStore::Get(std::string_view key) const {
  std::shared_lock lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.value;
}

bool KeyValueStore::Erase(std::string_view key) {
  std::unique_lock lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  bytes_ -= it->second.bytes;
  entries_.erase(it);
  return true;
}

std::vector<std::string> KeyValueStore::Keys() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> keys;
  keys.reserve(entries_.size());
  for (const auto& entry : entries_) keys.push_back(entry.first);
  return keys;
}

size_t KeyValueStore::size() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

size_t KeyValueStore::bytes() const {
  std::shared_lock lock(mu_);
  return bytes_;
}

}  // namespace mill::jsonrpc
