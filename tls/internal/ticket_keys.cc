#include "tls/internal/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "tls/internal/openssl_util.h"

namespace mill {
namespace tls_internal {
namespace {
// The SSL_CTX ex_data slot that points at the TicketKeys.
int ContextIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
}  // namespace

TicketKeys::TicketKeys(absl::Duration rotation, int keep_previous)
    : rotation_(rotation),
      keep_previous_(static_cast<size_t>(std::max(keep_previous, 0))) {
  MutexLock lock(&mu_);
  (void)RotateLocked(absl::Now());
}

absl::Status TicketKeys::Rotate() {
  MutexLock lock(&mu_);
  return RotateLocked(absl::Now());
}

size_t TicketKeys::key_count() const {
  MutexLock lock(&mu_);
  return keys_.size();
}

absl::Status TicketKeys::RotateLocked(absl::Time now) {
  Key key;
  if (RAND_bytes(key.name.data(), key.name.size()) != 1 ||
      RAND_bytes(key.aes.data(), key.aes.size()) != 1 ||
      RAND_bytes(key.hmac.data(), key.hmac.size()) != 1) {
    return ErrorStatus(absl::StatusCode::kInternal, "ticket key RAND_bytes");
  }
  key.created = now;
  keys_.push_front(key);
  while (keys_.size() > keep_previous_ + 1) keys_.pop_back();
  return absl::OkStatus();
}

void TicketKeys::Install(SSL_CTX* ctx) {
  SSL_CTX_set_ex_data(ctx, ContextIndex(), this);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::Callback);
}

int TicketKeys::Callback(SSL* ssl, unsigned char key_name[16],
                         unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
  auto* keys = static_cast<TicketKeys*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
  if (keys == nullptr) return -1;
  return keys->Use(key_name, iv, cipher, mac, encrypt == 1);
}

int TicketKeys::Use(unsigned char key_name[16], unsigned char* iv,
                    EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, bool encrypt) {
  Key key;
  int result = 1;
  {
    MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (keys_.empty() || now - keys_.front().created >= rotation_) {
      if (!RotateLocked(now).ok()) return -1;
    }
    if (encrypt) {
      key = keys_.front();
    } else {
      auto it = std::find_if(keys_.begin(), keys_.end(), [&](const Key& k) {
        return std::memcmp(k.name.data(), key_name, k.name.size()) == 0;
      });
      if (it == keys_.end()) return 0;  // unknown or expired: full handshake
      key = *it;
      if (it != keys_.begin()) result = 2;  // valid, but renew the ticket
    }
  }
  if (encrypt) {
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(),
                                        key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                       const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  // Fetched once: an implicit fetch (EVP_aes_256_cbc()) looks the
  // algorithm up by name on every ticket.
  static EVP_CIPHER* const aes =
      EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  if (aes == nullptr) return -1;
  const int ok =
      encrypt ? EVP_EncryptInit_ex(cipher, aes, nullptr, key.aes.data(), iv)
              : EVP_DecryptInit_ex(cipher, aes, nullptr, key.aes.data(), iv);
  return ok == 1 ? result : -1;
}

}  // namespace tls_internal
}  // namespace mill
