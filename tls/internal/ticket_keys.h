// TicketKeys: the keys that encrypt a server's session tickets (TLS 1.2
// tickets and TLS 1.3 PSK resumption), rotated: a new key every `rotation`,
// the previous ones kept for decrypting (and renewing) tickets for
// `keep_previous` more periods. Keys live only in memory, so a restart
// invalidates every ticket (a full handshake, never a failure).
//
// Thread-safety: all members are thread-safe. Internal.
#ifndef MILL_IO_TLS_INTERNAL_TICKET_KEYS_H_
#define MILL_IO_TLS_INTERNAL_TICKET_KEYS_H_

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace mill {
namespace tls_internal {

class TicketKeys {
 public:
  TicketKeys(absl::Duration rotation, int keep_previous);

  // Starts a new current key now (the old one decrypts still).
  absl::Status Rotate() ABSL_LOCKS_EXCLUDED(mu_);
  // How many keys decrypt tickets now.
  size_t key_count() const ABSL_LOCKS_EXCLUDED(mu_);

  // Installs the ticket callback on `ctx` (the TicketKeys must outlive it).
  void Install(SSL_CTX* ctx);

 private:
  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> aes;
    std::array<unsigned char, 32> hmac;
    absl::Time created;
  };
  static int Callback(SSL* ssl, unsigned char key_name[16], unsigned char* iv,
                      EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt);
  // 1: done with the current key, 2: an older key (renew), 0: unknown key,
  // -1: error.
  int Use(unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
          EVP_MAC_CTX* mac, bool encrypt) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RotateLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration rotation_;
  const size_t keep_previous_;
  mutable Mutex mu_;
  std::deque<Key> keys_ ABSL_GUARDED_BY(mu_);  // front: current
};

}  // namespace tls_internal
}  // namespace mill

#endif  // MILL_IO_TLS_INTERNAL_TICKET_KEYS_H_
