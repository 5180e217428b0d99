#include "tls/tls_client_context.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/connection_config.h"
#include "tls/internal/kernel_tls.h"
#include "tls/internal/openssl_util.h"
#include "tls/internal/session_cache.h"
#include "tls/internal/socket_bio.h"
#include "tls/internal/tls_transport.h"

namespace mill {
namespace tls_internal {

class ClientContextState {
 public:
  explicit ClientContextState(size_t cache_size) : sessions(cache_size) {}

  TlsClientOptions options;
  SslCtxPtr ctx;
  std::string alpn_wire;
  SessionCache sessions;

  // OpenSSL made a session (after the handshake in TLS 1.2, with each
  // ticket in TLS 1.3): keep it for the endpoint.
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);
  // The SSL_CTX ex_data slot that points at the state.
  static int ContextIndex() {
    static const int index =
        SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
};

int ClientContextState::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* state = static_cast<ClientContextState*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
  const TlsTransport* transport = TlsTransport::OfSsl(ssl);
  if (state != nullptr && transport != nullptr &&
      !transport->session_key().empty() && SSL_SESSION_is_resumable(session)) {
    state->sessions.Put(transport->session_key(), session);
  }
  return 0;  // the cache took its own reference
}

namespace {

// "1.2.3.4:80" -> "1.2.3.4", "[::1]:80" -> "::1".
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host =
      colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace
}  // namespace tls_internal

using tls_internal::ClientContextState;

absl::StatusOr<std::shared_ptr<TlsClientContext>> TlsClientContext::Create(
    TlsClientOptions options) {
  auto state = std::make_unique<ClientContextState>(options.session_cache_size);
  absl::StatusOr<std::string> alpn = tls_internal::AlpnWireFormat(options.alpn);
  if (!alpn.ok()) return alpn.status();
  state->alpn_wire = *std::move(alpn);
  absl::StatusOr<tls_internal::SslCtxPtr> ctx = tls_internal::NewContext(
      TLS_client_method(),
      {options.min_version, options.max_version,
       tls_internal::UseKernelTls(options.kernel_tls,
                                  tls_internal::KernelTlsSupport()),
       options.cipher_list, options.ciphersuites});
  if (!ctx.ok()) return ctx.status();
  SSL_CTX* raw = ctx->get();
  ERR_clear_error();
  if (!options.ca_file.empty()) {
    if (absl::Status s = tls_internal::CheckReadable(options.ca_file, "CA");
        !s.ok()) {
      return s;
    }
    if (SSL_CTX_load_verify_locations(raw, options.ca_file.c_str(), nullptr) !=
        1) {
      return tls_internal::ErrorStatus(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("TLS: CA file '", options.ca_file, "'"));
    }
  } else if (SSL_CTX_set_default_verify_paths(raw) != 1) {
    return tls_internal::ErrorStatus(absl::StatusCode::kInternal,
                                     "TLS: the system trust store");
  }
  SSL_CTX_set_verify(
      raw, options.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!options.certificate_file.empty() || !options.key_file.empty()) {
    for (const std::string* file :
         {&options.certificate_file, &options.key_file}) {
      if (absl::Status s = tls_internal::CheckReadable(*file, "certificate");
          !s.ok()) {
        return s;
      }
    }
    if (SSL_CTX_use_certificate_chain_file(
            raw, options.certificate_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(raw, options.key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(raw) != 1) {
      return tls_internal::ErrorStatus(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("TLS: client certificate '", options.certificate_file,
                       "' / key '", options.key_file, "'"));
    }
  }
  SSL_CTX_set_ex_data(raw, ClientContextState::ContextIndex(), state.get());
  if (options.session_cache_size > 0) {
    SSL_CTX_set_session_cache_mode(
        raw, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(raw, &ClientContextState::OnNewSession);
  } else {
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
  }
  state->ctx = *std::move(ctx);
  state->options = std::move(options);
  return std::shared_ptr<TlsClientContext>(
      new TlsClientContext(std::move(state)));
}

TlsClientContext::TlsClientContext(
    std::unique_ptr<tls_internal::ClientContextState> state)
    : state_(std::move(state)) {}

TlsClientContext::~TlsClientContext() = default;

size_t TlsClientContext::cached_sessions() const {
  return state_->sessions.size();
}

void TlsClientContext::ClearSessions() { state_->sessions.Clear(); }

ConnectionPtr TlsClientContext::NewConnection(
    net_internal::NewConnectionArgs args) const {
  const TlsClientOptions& options = state_->options;
  std::string name = options.server_name;
  if (name.empty()) name = std::string(args.server_name);
  if (name.empty()) name = tls_internal::HostOf(args.peer.ToString());
  tls_internal::TlsTransport::Params params;
  params.server = false;
  params.context = shared_from_this();
  params.peer_name = name;
  if (options.session_cache_size > 0) {
    params.session_key = absl::StrCat(name, "|", args.peer.ToString());
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(state_->ctx.get());
  absl::Status error;
  if (ssl == nullptr) {
    error = tls_internal::ErrorStatus(absl::StatusCode::kResourceExhausted,
                                      "TLS: SSL_new");
  } else {
    SSL_set_connect_state(ssl);
    const bool ip = tls_internal::IsIpLiteral(name);
    BIO* bio = tls_internal::NewSocketBio(args.stream.fd());
    bool ok = bio != nullptr;
    if (ok) SSL_set_bio(ssl, bio, bio);
    // SNI carries names only (RFC 6066); an address is verified as one.
    if (ok && !ip) ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
    if (ok && options.verify_peer) {
      if (ip) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) ==
             1;
      } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, name.c_str()) == 1;
      }
    }
    if (ok && !state_->alpn_wire.empty()) {
      ok = SSL_set_alpn_protos(
               ssl,
               reinterpret_cast<const unsigned char*>(state_->alpn_wire.data()),
               static_cast<unsigned int>(state_->alpn_wire.size())) == 0;
    }
    if (ok && !params.session_key.empty()) {
      if (SSL_SESSION* session = state_->sessions.Get(params.session_key)) {
        (void)SSL_set_session(ssl, session);
        SSL_SESSION_free(session);
      }
    }
    if (!ok) {
      error = tls_internal::ErrorStatus(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("TLS: setting up the session for '", name, "'"));
      SSL_free(ssl);
      ssl = nullptr;
    }
  }
  params.ssl = ssl;
  params.error = std::move(error);
  TcpStream stream = std::move(args.stream);
  return net_internal::ConnectionAccess::Make<tls_internal::TlsTransport>(
      args, /*handshake=*/true, std::move(stream), std::move(params));
}

}  // namespace mill
