// Throwaway PKI for TLS tests: a fresh CA per test, and leaf certificates
// (valid, expired, wrong name, self-signed, via an intermediate, encrypted
// key) written as PEM files that a TLS config can point at.
//
// Everything is generated in-process with OpenSSL 3 (EC P-256 keys, SHA-256
// signatures, random 128-bit serials); nothing shells out to `openssl`. For
// tests only: the CA key is written unprotected next to the certificates.
//
//   std::string dir = mill::tls_testing::MakeTempDir("handshake");
//   auto pki = mill::tls_testing::TestPki::Create(dir);
//   auto server = pki->IssueLeaf("server");
//   // server->cert_file, server->key_file, pki->ca_file() ...
//
// Thread-safety: a TestPki is not synchronized; use one per test (or guard it).
#ifndef MILL_IO_TLS_TESTING_TEST_CERTIFICATES_H_
#define MILL_IO_TLS_TESTING_TEST_CERTIFICATES_H_

#include <openssl/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mill {
namespace tls_testing {

// The files of one issued leaf.
struct CertFiles {
  std::string cert_file;  // PEM: the leaf, then any intermediate (a chain).
  std::string key_file;   // PEM private key (PKCS#8; encrypted only when made
                          // by EncryptedKeyLeaf).
  std::string cert_pem;   // Contents of cert_file.
  std::string key_pem;    // Contents of key_file.
};

struct LeafOptions {
  std::vector<std::string> dns_names = {"localhost"};  // subjectAltName DNS.
  std::vector<std::string> ip_addresses = {"127.0.0.1", "::1"};  // SAN IP.
  std::string common_name = "localhost";
  absl::Duration not_before = -absl::Hours(1);  // Relative to now.
  absl::Duration not_after = absl::Hours(24);   // Relative to now.
  bool self_signed = false;       // Signed by its own key instead of the CA.
  bool via_intermediate = false;  // CA -> intermediate -> leaf; cert_file
                                  // holds the leaf followed by the
                                  // intermediate.
};

// A test CA and the leaves it issues, all written under dir().
class TestPki {
 public:
  // Makes a new CA (CN "Mill-IO Test CA <random>", basicConstraints CA:TRUE,
  // keyUsage keyCertSign|cRLSign) and writes ca.pem / ca.key into `dir`
  // (created if missing).
  static absl::StatusOr<TestPki> Create(const std::string& dir);

  TestPki(TestPki&&) noexcept = default;
  TestPki& operator=(TestPki&&) noexcept = default;

  const std::string& ca_file() const { return ca_file_; }  // CA cert, PEM.
  const std::string& ca_key_file() const { return ca_key_file_; }
  const std::string& ca_pem() const { return ca_pem_; }
  const std::string& dir() const { return dir_; }

  // Issues a server/client leaf (keyUsage digitalSignature, extendedKeyUsage
  // serverAuth+clientAuth, SAN from `options`) and writes <name>.pem and
  // <name>.key into dir(). `name` must be a plain file name.
  absl::StatusOr<CertFiles> IssueLeaf(const std::string& name,
                                      const LeafOptions& options = {});

  // Shorthands for the negative cases of TLS tests.
  // Valid from 2 days ago until 1 hour ago.
  absl::StatusOr<CertFiles> ExpiredLeaf(const std::string& name);
  // Only DNS "wrong.example" (also the CN), no IP addresses.
  absl::StatusOr<CertFiles> WrongNameLeaf(const std::string& name);
  // localhost + 127.0.0.1 + ::1, signed by its own key.
  absl::StatusOr<CertFiles> SelfSignedLeaf(const std::string& name);
  // A valid leaf whose key file is PKCS#8 encrypted (AES-256-CBC) with
  // `passphrase`.
  absl::StatusOr<CertFiles> EncryptedKeyLeaf(const std::string& name,
                                             const std::string& passphrase);

 private:
  struct KeyDeleter {
    void operator()(EVP_PKEY* key) const;
  };
  struct CertDeleter {
    void operator()(X509* cert) const;
  };
  using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
  using CertPtr = std::unique_ptr<X509, CertDeleter>;

  TestPki() = default;

  absl::StatusOr<CertFiles> Issue(const std::string& name,
                                  const LeafOptions& options,
                                  const std::string* passphrase);

  std::string dir_;
  std::string ca_file_;
  std::string ca_key_file_;
  std::string ca_pem_;
  KeyPtr ca_key_;
  CertPtr ca_cert_;
};

// A fresh directory under $TEST_TMPDIR (or /tmp) for one test, unique per
// call (mkdtemp). Aborts if it cannot be created.
std::string MakeTempDir(const std::string& prefix);

}  // namespace tls_testing
}  // namespace mill

#endif  // MILL_IO_TLS_TESTING_TEST_CERTIFICATES_H_
