#include "examples/jsonrpc/key_value_store.h"

#include <mutex>
#include <utility>

namespace mill::jsonrpc {

bool KeyValueStore::Set(std::string key, nlohmann::json value) {
  std::unique_lock lock(mu_);
  const auto [it, inserted] =
      entries_.insert_or_assign(std::move(key), std::move(value));
  return inserted;
}

std::optional<nlohmann::json> KeyValueStore::Get(std::string_view key) const {
  std::shared_lock lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

bool KeyValueStore::Erase(std::string_view key) {
  std::unique_lock lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return false;
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

}  // namespace mill::jsonrpc
