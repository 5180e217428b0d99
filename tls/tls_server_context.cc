#include "tls/tls_server_context.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/errno_status.h"
#include "net/internal/connection_config.h"
#include "tls/internal/kernel_tls.h"
#include "tls/internal/openssl_util.h"
#include "tls/internal/socket_bio.h"
#include "tls/internal/ticket_keys.h"
#include "tls/internal/tls_transport.h"

namespace mill {
namespace tls_internal {

// Everything a TlsServerContext holds; OpenSSL's callbacks get it as arg.
class ServerContextState {
 public:
  struct Certificate {
    SslCtxPtr ctx;
    std::vector<std::string> names;  // lower case
  };

  TlsServerOptions options;
  std::vector<Certificate> certificates;  // [0]: the default
  std::string alpn_wire;
  std::unique_ptr<TicketKeys> tickets;
  bool kernel_tls = false;

  // SNI: switches the connection to the certificate for the name.
  static int OnServerName(SSL* ssl, int* alert, void* arg);
  // ALPN: the first of our protocols the client offers.
  static int OnAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                    const unsigned char* in, unsigned int inlen, void* arg);

  const Certificate* Find(absl::string_view name) const;
};

namespace {

// The key file is never guessed at with a prompt: an encrypted key fails.
int NoPassword(char*, int, int, void*) { return -1; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The DNS names of the certificate's subjectAltName, else its common name.
std::vector<std::string> NamesOf(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = name->d.dNSName;
      names.push_back(absl::AsciiStrToLower(absl::string_view(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
          static_cast<size_t>(ASN1_STRING_length(dns)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
                                  cn, sizeof(cn)) > 0) {
      names.push_back(absl::AsciiStrToLower(cn));
    }
  }
  return names;
}

bool NameMatches(absl::string_view pattern, absl::string_view name) {
  if (pattern == name) return true;
  // "*.example.com" matches exactly one label in front of example.com.
  if (!absl::StartsWith(pattern, "*.")) return false;
  const size_t dot = name.find('.');
  return dot != absl::string_view::npos && dot > 0 &&
         name.substr(dot) == pattern.substr(1);
}

absl::Status LoadCertificate(SSL_CTX* ctx, const TlsCertificate& certificate) {
  if (absl::Status s = CheckReadable(certificate.chain_file, "certificate");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckReadable(certificate.key_file, "key"); !s.ok()) {
    return s;
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, certificate.chain_file.c_str()) !=
      1) {
    return ErrorStatus(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("TLS: certificate file '", certificate.chain_file, "'"));
  }
  BIO* bio = BIO_new_file(certificate.key_file.c_str(), "r");
  if (bio == nullptr) {
    return ErrorStatus(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("TLS: key file '", certificate.key_file, "'"));
  }
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, NoPassword, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    if (absl::StrContains(ReadAll(certificate.key_file), "ENCRYPTED")) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("TLS: key file '", certificate.key_file,
                       "' is encrypted; give an unencrypted key"));
    }
    return ErrorStatus(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("TLS: key file '", certificate.key_file,
                                    "' holds no PEM private key"));
  }
  const int used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS: key file '", certificate.key_file,
        "' does not match the certificate in '", certificate.chain_file, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

const ServerContextState::Certificate* ServerContextState::Find(
    absl::string_view name) const {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const Certificate& certificate : certificates) {
    for (const std::string& pattern : certificate.names) {
      if (NameMatches(pattern, lower)) return &certificate;
    }
  }
  return nullptr;
}

int ServerContextState::OnServerName(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* state = static_cast<const ServerContextState*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  const Certificate* certificate = state->Find(name);
  // An unknown name gets the default certificate (as nginx does): the
  // client's verification decides.
  if (certificate != nullptr && certificate != &state->certificates[0]) {
    SSL_set_SSL_CTX(ssl, certificate->ctx.get());
  }
  return SSL_TLSEXT_ERR_OK;
}

int ServerContextState::OnAlpn(SSL* /*ssl*/, const unsigned char** out,
                               unsigned char* outlen, const unsigned char* in,
                               unsigned int inlen, void* arg) {
  const auto* state = static_cast<const ServerContextState*>(arg);
  unsigned char* selected = nullptr;
  const auto* ours =
      reinterpret_cast<const unsigned char*>(state->alpn_wire.data());
  if (SSL_select_next_proto(&selected, outlen, ours,
                            static_cast<unsigned int>(state->alpn_wire.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace tls_internal

using tls_internal::ServerContextState;

absl::StatusOr<std::shared_ptr<TlsServerContext>> TlsServerContext::Create(
    TlsServerOptions options) {
  if (options.certificates.empty()) {
    return absl::InvalidArgumentError("TLS: a server needs a certificate");
  }
  if (options.session_tickets &&
      options.ticket_key_rotation <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TLS: ticket_key_rotation must be positive");
  }
  if (options.handshake_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("TLS: handshake_timeout is negative");
  }
  auto state = std::make_unique<ServerContextState>();
  absl::StatusOr<std::string> alpn = tls_internal::AlpnWireFormat(options.alpn);
  if (!alpn.ok()) return alpn.status();
  state->alpn_wire = *std::move(alpn);
  state->kernel_tls = tls_internal::UseKernelTls(
      options.kernel_tls, tls_internal::KernelTlsSupport());
  if (options.session_tickets) {
    state->tickets = std::make_unique<tls_internal::TicketKeys>(
        options.ticket_key_rotation, options.ticket_keys_kept);
  }
  for (const TlsCertificate& certificate : options.certificates) {
    absl::StatusOr<tls_internal::SslCtxPtr> ctx = tls_internal::NewContext(
        TLS_server_method(),
        {options.min_version, options.max_version, state->kernel_tls,
         options.cipher_list, options.ciphersuites});
    if (!ctx.ok()) return ctx.status();
    SSL_CTX* raw = ctx->get();
    if (absl::Status s = tls_internal::LoadCertificate(raw, certificate);
        !s.ok()) {
      return s;
    }
    // Resumption is stateless (tickets): no per-session memory on the
    // server, nothing to share between processes but the keys.
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
    static const unsigned char kSessionContext[] = "mill-io";
    SSL_CTX_set_session_id_context(raw, kSessionContext,
                                   sizeof(kSessionContext) - 1);
    if (state->tickets != nullptr) {
      state->tickets->Install(raw);
      SSL_CTX_set_timeout(raw, static_cast<long>(absl::ToInt64Seconds(
                                   options.ticket_key_rotation *
                                   (options.ticket_keys_kept + 1))));
    } else {
      SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(raw, 0);
    }
    if (!state->alpn_wire.empty()) {
      SSL_CTX_set_alpn_select_cb(raw, &ServerContextState::OnAlpn, state.get());
    }
    ServerContextState::Certificate entry;
    entry.names = certificate.server_names;
    for (std::string& name : entry.names) name = absl::AsciiStrToLower(name);
    if (entry.names.empty()) {
      entry.names = tls_internal::NamesOf(SSL_CTX_get0_certificate(raw));
    }
    entry.ctx = *std::move(ctx);
    state->certificates.push_back(std::move(entry));
  }
  SSL_CTX* first = state->certificates[0].ctx.get();
  SSL_CTX_set_tlsext_servername_callback(first,
                                         &ServerContextState::OnServerName);
  SSL_CTX_set_tlsext_servername_arg(first, state.get());
  state->options = std::move(options);
  return std::shared_ptr<TlsServerContext>(
      new TlsServerContext(std::move(state)));
}

TlsServerContext::TlsServerContext(
    std::unique_ptr<tls_internal::ServerContextState> state)
    : state_(std::move(state)) {}

TlsServerContext::~TlsServerContext() = default;

absl::Status TlsServerContext::RotateTicketKeys() {
  if (state_->tickets == nullptr) {
    return absl::FailedPreconditionError("TLS: session tickets are off");
  }
  return state_->tickets->Rotate();
}

size_t TlsServerContext::ticket_key_count() const {
  return state_->tickets == nullptr ? 0 : state_->tickets->key_count();
}

bool TlsServerContext::kernel_tls() const { return state_->kernel_tls; }

ConnectionPtr TlsServerContext::NewConnection(
    net_internal::NewConnectionArgs args) const {
  tls_internal::TlsTransport::Params params;
  params.server = true;
  params.handshake_timeout = state_->options.handshake_timeout;
  params.context = shared_from_this();
  params.peer_name = args.peer.ToString();
  ERR_clear_error();
  SSL* ssl = SSL_new(state_->certificates[0].ctx.get());
  if (ssl == nullptr) {
    params.error = tls_internal::ErrorStatus(
        absl::StatusCode::kResourceExhausted, "TLS: SSL_new");
  } else if (BIO* bio = tls_internal::NewSocketBio(args.stream.fd());
             bio == nullptr) {
    params.error = tls_internal::ErrorStatus(
        absl::StatusCode::kResourceExhausted, "TLS: BIO_new");
    SSL_free(ssl);
    ssl = nullptr;
  } else {
    SSL_set_bio(ssl, bio, bio);
    SSL_set_accept_state(ssl);
  }
  params.ssl = ssl;
  TcpStream stream = std::move(args.stream);
  return net_internal::ConnectionAccess::Make<tls_internal::TlsTransport>(
      args, /*handshake=*/true, std::move(stream), std::move(params));
}

}  // namespace mill
