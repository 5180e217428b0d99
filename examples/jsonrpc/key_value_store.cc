#include "examples/jsonrpc/key_value_store.h"

#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mill::jsonrpc {

KeyValueStore::KeyValueStore(Options options) : options_(options) {}

absl::StatusOr<bool> KeyValueStore::Set(std::string key,
                                        const nlohmann::json& value) {
  // Serialized outside the lock: it is the expensive part.
  std::string text =
      value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const size_t added = key.size() + text.size();
  std::unique_lock lock(mu_);
  const auto it = entries_.find(key);
  const bool is_new = it == entries_.end();
  const size_t removed = is_new ? 0 : it->first.size() + it->second.size();
  if (is_new && entries_.size() >= options_.max_keys) {
    return absl::ResourceExhaustedError(
        absl::StrCat("key-value store full: it holds the maximum of ",
                     options_.max_keys, " keys (max_keys)"));
  }
  // bytes_ - removed + added > max_bytes, without wrapping around.
  if (added > removed && bytes_ - removed + added > options_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "key-value store full: storing ", added, " bytes would exceed ",
        options_.max_bytes, " bytes (max_bytes; ", bytes_, " in use)"));
  }
  bytes_ = bytes_ - removed + added;
  if (is_new) {
    entries_.emplace(std::move(key), std::move(text));
  } else {
    it->second = std::move(text);
  }
  return is_new;
}

std::optional<nlohmann::json> KeyValueStore::Get(std::string_view key) const {
  std::string text;
  {
    std::shared_lock lock(mu_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    text = it->second;
  }
  // Our own serialization of a valid value: always parses.
  return nlohmann::json::parse(text);
}

bool KeyValueStore::Erase(std::string_view key) {
  std::unique_lock lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  bytes_ -= it->first.size() + it->second.size();
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
