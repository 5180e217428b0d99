#include "tls/internal/socket_bio.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mill {
namespace tls_internal {
namespace {

bool Retryable(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

int Write(BIO* bio, const char* data, int size) {
  // Under kernel TLS, control records (alerts) need OpenSSL's own path,
  // whose flags are private: it takes every write then.
  if (BIO_get_ktls_send(bio)) {
    return BIO_meth_get_write(BIO_s_socket())(bio, data, size);
  }
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(static_cast<int>(BIO_get_fd(bio, nullptr)), data,
                           static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && Retryable(errno)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int Read(BIO* bio, char* data, int size) {
  // Kernel TLS receives records with their types: OpenSSL's own path.
  if (BIO_get_ktls_recv(bio)) {
    return BIO_meth_get_read(BIO_s_socket())(bio, data, size);
  }
  if (data == nullptr) return 0;
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(static_cast<int>(BIO_get_fd(bio, nullptr)), data,
                           static_cast<size_t>(size), 0);
  if (n < 0 && Retryable(errno)) BIO_set_retry_read(bio);
  // 0 is EOF: OpenSSL reads it as such (no retry flag).
  return static_cast<int>(n);
}

int Puts(BIO* bio, const char* text) {
  return Write(bio, text, static_cast<int>(strlen(text)));
}

BIO_METHOD* MakeMethod() {
  const BIO_METHOD* socket = BIO_s_socket();
  BIO_METHOD* method = BIO_meth_new(
      BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
      "mill-io socket");
  if (method == nullptr) return nullptr;
  BIO_meth_set_write(method, Write);
  BIO_meth_set_read(method, Read);
  BIO_meth_set_puts(method, Puts);
  BIO_meth_set_ctrl(method, BIO_meth_get_ctrl(socket));
  BIO_meth_set_create(method, BIO_meth_get_create(socket));
  BIO_meth_set_destroy(method, BIO_meth_get_destroy(socket));
  return method;
}

}  // namespace

BIO* NewSocketBio(int fd) {
  static BIO_METHOD* const method = MakeMethod();
  if (method == nullptr) return nullptr;
  BIO* bio = BIO_new(method);
  if (bio == nullptr) return nullptr;
  BIO_set_fd(bio, fd, BIO_NOCLOSE);
  return bio;
}

}  // namespace tls_internal
}  // namespace mill
