#include "tls/internal/session_cache.h"

#include <string>

namespace mill {
namespace tls_internal {

SessionCache::~SessionCache() { Clear(); }

void SessionCache::Put(absl::string_view key, SSL_SESSION* session) {
  if (capacity_ == 0 || session == nullptr) return;
  SSL_SESSION_up_ref(session);
  SSL_SESSION* replaced = nullptr;
  std::vector<SSL_SESSION*> evicted;
  {
    MutexLock lock(&mu_);
    auto [it, inserted] = sessions_.try_emplace(std::string(key), session);
    if (!inserted) {
      replaced = it->second;
      it->second = session;
    } else {
      order_.emplace_back(key);
      while (sessions_.size() > capacity_ && !order_.empty()) {
        auto old = sessions_.find(order_.front());
        if (old != sessions_.end()) {
          evicted.push_back(old->second);
          sessions_.erase(old);
        }
        order_.pop_front();
      }
    }
  }
  if (replaced != nullptr) SSL_SESSION_free(replaced);
  for (SSL_SESSION* old : evicted) SSL_SESSION_free(old);
}

SSL_SESSION* SessionCache::Get(absl::string_view key) const {
  MutexLock lock(&mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  SSL_SESSION_up_ref(it->second);
  return it->second;
}

size_t SessionCache::size() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

void SessionCache::Clear() {
  absl::flat_hash_map<std::string, SSL_SESSION*> sessions;
  {
    MutexLock lock(&mu_);
    sessions.swap(sessions_);
    order_.clear();
  }
  for (auto& [key, session] : sessions) SSL_SESSION_free(session);
}

}  // namespace tls_internal
}  // namespace mill
