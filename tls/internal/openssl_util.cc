#include "tls/internal/openssl_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"

namespace mill {
namespace tls_internal {
namespace {

int ProtocolVersion(TlsVersion version) {
  return version == TlsVersion::k1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

}  // namespace

std::string DrainErrors(absl::string_view fallback) {
  std::string text;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(code);
    std::string piece;
    if (reason != nullptr) {
      piece = reason;
    } else {
      char buffer[256];
      ERR_error_string_n(code, buffer, sizeof(buffer));
      piece = buffer;
    }
    // The same reason repeated along a call chain says nothing new.
    if (text.find(piece) != std::string::npos) continue;
    if (!text.empty()) text += "; ";
    text += piece;
  }
  return text.empty() ? std::string(fallback) : text;
}

absl::Status ErrorStatus(absl::StatusCode code, absl::string_view what) {
  return absl::Status(code, absl::StrCat(what, ": ", DrainErrors()));
}

absl::StatusOr<SslCtxPtr> NewContext(const SSL_METHOD* method,
                                     const ContextSettings& settings) {
  if (ProtocolVersion(settings.min_version) >
      ProtocolVersion(settings.max_version)) {
    return absl::InvalidArgumentError(
        "TLS: min_version is newer than max_version");
  }
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (ctx == nullptr) {
    return ErrorStatus(absl::StatusCode::kInternal, "SSL_CTX_new");
  }
  if (SSL_CTX_set_min_proto_version(
          ctx.get(), ProtocolVersion(settings.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(
          ctx.get(), ProtocolVersion(settings.max_version)) != 1) {
    return ErrorStatus(absl::StatusCode::kInternal, "TLS version range");
  }
  if (!settings.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(ctx.get(),
                              std::string(settings.cipher_list).c_str()) != 1) {
    return ErrorStatus(absl::StatusCode::kInvalidArgument, "TLS: cipher_list");
  }
  if (!settings.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(
          ctx.get(), std::string(settings.ciphersuites).c_str()) != 1) {
    return ErrorStatus(absl::StatusCode::kInvalidArgument, "TLS: ciphersuites");
  }
  uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                     SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (settings.kernel_tls) options |= SSL_OP_ENABLE_KTLS;
  SSL_CTX_set_options(ctx.get(), options);
  // Read ahead: one recv(2) takes what the socket holds (the record header,
  // its body, the records after it) instead of two per record; the
  // transport then reports what it buffered itself (tls_transport.h).
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

absl::StatusOr<std::string> AlpnWireFormat(
    const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& name : protocols) {
    if (name.empty() || name.size() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TLS: ALPN protocol names are 1 to 255 bytes, got '", name, "'"));
    }
    wire.push_back(static_cast<char>(name.size()));
    wire += name;
  }
  return wire;
}

absl::Status CheckReadable(const std::string& path, absl::string_view what) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS: no ", what, " file given"));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("TLS: ", what, " file '", path, "'"));
  }
  ::close(fd);
  return absl::OkStatus();
}

bool IsIpLiteral(absl::string_view name) {
  const std::string text(name);
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

}  // namespace tls_internal
}  // namespace mill
