// SessionCache: a client's TLS sessions by endpoint, for resumption. Holds
// at most `capacity` sessions (the oldest entry goes first); a new session
// for an endpoint replaces its old one.
//
// Thread-safety: thread-safe. Internal.
#ifndef MILL_IO_TLS_INTERNAL_SESSION_CACHE_H_
#define MILL_IO_TLS_INTERNAL_SESSION_CACHE_H_

#include <openssl/ssl.h>

#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"

namespace mill {
namespace tls_internal {

class SessionCache {
 public:
  explicit SessionCache(size_t capacity) : capacity_(capacity) {}
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  // Takes a reference to `session`.
  void Put(absl::string_view key, SSL_SESSION* session)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A new reference (SSL_SESSION_free it), or null.
  SSL_SESSION* Get(absl::string_view key) const ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, SSL_SESSION*> sessions_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace tls_internal
}  // namespace mill

#endif  // MILL_IO_TLS_INTERNAL_SESSION_CACHE_H_
