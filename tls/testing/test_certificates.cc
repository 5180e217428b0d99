#include "tls/testing/test_certificates.h"

#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mill {
namespace tls_testing {

void TestPki::KeyDeleter::operator()(EVP_PKEY* key) const {
  EVP_PKEY_free(key);
}
void TestPki::CertDeleter::operator()(X509* cert) const { X509_free(cert); }

namespace {

template <typename T, void (*kFree)(T*)>
struct Free {
  void operator()(T* p) const { kFree(p); }
};
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;
using Cert = std::unique_ptr<X509, Free<X509, X509_free>>;
using Extension =
    std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION, X509_EXTENSION_free>>;
using GeneralName =
    std::unique_ptr<GENERAL_NAME, Free<GENERAL_NAME, GENERAL_NAME_free>>;
using GeneralNames =
    std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES, GENERAL_NAMES_free>>;
using Key = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;

// `what` followed by every error on this thread's OpenSSL error queue (which
// this drains).
absl::Status OpenSslError(absl::string_view what) {
  std::string text(what);
  bool any = false;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    absl::StrAppend(&text, any ? "; " : ": ", buf);
    any = true;
  }
  if (!any) absl::StrAppend(&text, ": no OpenSSL error queued");
  return absl::InternalError(text);
}

absl::StatusOr<std::string> RandomHex(int bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes) != 1) {
    return OpenSslError("RAND_bytes");
  }
  return absl::BytesToHexString(raw);
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("EVP_EC_gen(P-256)");
  return key;
}

struct CertSpec {
  std::string common_name;
  bool is_ca = false;
  bool path_len_zero = false;  // CA only: may sign leaves, not other CAs.
  absl::Duration not_before;
  absl::Duration not_after;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

absl::Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid,
                          const char* value) {
  Extension ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(
        absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

absl::Status AddSubjectAltName(X509* cert, const CertSpec& spec) {
  if (spec.dns_names.empty() && spec.ip_addresses.empty()) {
    return absl::OkStatus();
  }
  GeneralNames names(GENERAL_NAMES_new());
  if (names == nullptr) return OpenSslError("GENERAL_NAMES_new");
  auto add = [&](int type, const std::string& value) -> absl::Status {
    GeneralName name(
        a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, value.c_str(), 0));
    if (name == nullptr || sk_GENERAL_NAME_push(names.get(), name.get()) == 0) {
      return OpenSslError(absl::StrCat("subjectAltName entry '", value, "'"));
    }
    static_cast<void>(name.release());  // Owned by `names` now.
    return absl::OkStatus();
  };
  for (const std::string& dns : spec.dns_names) {
    if (absl::Status s = add(GEN_DNS, dns); !s.ok()) return s;
  }
  for (const std::string& ip : spec.ip_addresses) {
    if (absl::Status s = add(GEN_IPADD, ip); !s.ok()) return s;
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError("subjectAltName");
  }
  return absl::OkStatus();
}

// Makes a certificate for `key`, signed by `issuer_key` as `issuer`, or
// self-signed when `issuer` is null.
absl::StatusOr<Cert> MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                              EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  X509* x = cert.get();
  if (issuer == nullptr) issuer_key = key;

  unsigned char serial[16];  // Random 128 bits, made positive.
  if (RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("serial");
  serial[0] &= 0x7f;
  Bignum bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  X509_NAME* subject = X509_get_subject_name(x);
  if (X509_set_version(x, X509_VERSION_3) != 1 || bn == nullptr ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(x),
                      absl::ToInt64Seconds(spec.not_before)) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(x),
                      absl::ToInt64Seconds(spec.not_after)) == nullptr ||
      X509_set_pubkey(x, key) != 1 ||
      X509_NAME_add_entry_by_txt(
          subject, "O", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>("Mill-IO Test"), -1, -1,
          0) != 1 ||
      (!spec.common_name.empty() &&
       X509_NAME_add_entry_by_txt(
           subject, "CN", MBSTRING_UTF8,
           reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
           -1, 0) != 1) ||
      X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer)
                                                : subject) != 1) {
    return OpenSslError("certificate fields");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
  const char* basic = !spec.is_ca          ? "critical,CA:FALSE"
                      : spec.path_len_zero ? "critical,CA:TRUE,pathlen:0"
                                           : "critical,CA:TRUE";
  absl::Status status = AddExtension(x, &ctx, NID_basic_constraints, basic);
  if (status.ok()) {
    status = AddExtension(x, &ctx, NID_key_usage,
                          spec.is_ca ? "critical,keyCertSign,cRLSign"
                                     : "critical,digitalSignature");
  }
  if (status.ok() && !spec.is_ca) {
    status = AddExtension(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (status.ok()) {
    status = AddExtension(x, &ctx, NID_subject_key_identifier, "hash");
  }
  if (status.ok() && issuer != nullptr) {
    status =
        AddExtension(x, &ctx, NID_authority_key_identifier, "keyid:always");
  }
  if (status.ok()) status = AddSubjectAltName(x, spec);
  if (!status.ok()) return status;

  if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) {
    return OpenSslError("X509_sign");
  }
  return cert;
}

std::string MemoryBioContents(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, size > 0 ? static_cast<size_t>(size) : 0);
}

absl::StatusOr<std::string> CertToPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("PEM_write_bio_X509");
  }
  return MemoryBioContents(bio.get());
}

// PKCS#8 PEM; encrypted with AES-256-CBC when `passphrase` is given.
absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key,
                                     const std::string* passphrase) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PKCS8PrivateKey(
          bio.get(), key, passphrase ? EVP_aes_256_cbc() : nullptr,
          passphrase ? passphrase->data() : nullptr,
          passphrase ? static_cast<int>(passphrase->size()) : 0, nullptr,
          nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PKCS8PrivateKey");
  }
  return MemoryBioContents(bio.get());
}

absl::Status WriteFile(const std::string& path, const std::string& contents,
                       mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return absl::ErrnoToStatus(error, absl::StrCat("write ", path));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("close ", path));
  }
  return absl::OkStatus();
}

std::string JoinPath(const std::string& dir, const std::string& file) {
  if (!dir.empty() && dir.back() == '/') return dir + file;
  return absl::StrCat(dir, "/", file);
}

// CAs are valid from two days ago (before any leaf this helper makes by
// default) for ten years.
constexpr absl::Duration kCaNotBefore = -absl::Hours(48);
constexpr absl::Duration kCaNotAfter = absl::Hours(24 * 3650);

}  // namespace

absl::StatusOr<TestPki> TestPki::Create(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("create_directories(", dir, "): ", error.message()));
  }
  absl::StatusOr<Key> key = NewKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> suffix = RandomHex(8);
  if (!suffix.ok()) return suffix.status();
  CertSpec spec;
  spec.common_name = absl::StrCat("Mill-IO Test CA ", *suffix);
  spec.is_ca = true;
  spec.not_before = kCaNotBefore;
  spec.not_after = kCaNotAfter;
  absl::StatusOr<Cert> cert = MakeCert(spec, key->get(), nullptr, nullptr);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> cert_pem = CertToPem(cert->get());
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = KeyToPem(key->get(), nullptr);
  if (!key_pem.ok()) return key_pem.status();

  TestPki pki;
  pki.dir_ = dir;
  pki.ca_file_ = JoinPath(dir, "ca.pem");
  pki.ca_key_file_ = JoinPath(dir, "ca.key");
  pki.ca_pem_ = *std::move(cert_pem);
  pki.ca_key_.reset(key->release());
  pki.ca_cert_.reset(cert->release());
  if (absl::Status s = WriteFile(pki.ca_file_, pki.ca_pem_, 0644); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFile(pki.ca_key_file_, *key_pem, 0600); !s.ok()) {
    return s;
  }
  return pki;
}

absl::StatusOr<CertFiles> TestPki::IssueLeaf(const std::string& name,
                                             const LeafOptions& options) {
  return Issue(name, options, nullptr);
}

absl::StatusOr<CertFiles> TestPki::ExpiredLeaf(const std::string& name) {
  LeafOptions options;
  options.not_before = -absl::Hours(48);
  options.not_after = -absl::Hours(1);
  return Issue(name, options, nullptr);
}

absl::StatusOr<CertFiles> TestPki::WrongNameLeaf(const std::string& name) {
  LeafOptions options;
  options.dns_names = {"wrong.example"};
  options.ip_addresses.clear();
  options.common_name = "wrong.example";
  return Issue(name, options, nullptr);
}

absl::StatusOr<CertFiles> TestPki::SelfSignedLeaf(const std::string& name) {
  LeafOptions options;
  options.self_signed = true;
  return Issue(name, options, nullptr);
}

absl::StatusOr<CertFiles> TestPki::EncryptedKeyLeaf(
    const std::string& name, const std::string& passphrase) {
  if (passphrase.empty()) {
    return absl::InvalidArgumentError("EncryptedKeyLeaf: empty passphrase");
  }
  return Issue(name, LeafOptions(), &passphrase);
}

absl::StatusOr<CertFiles> TestPki::Issue(const std::string& name,
                                         const LeafOptions& options,
                                         const std::string* passphrase) {
  if (ca_key_ == nullptr || ca_cert_ == nullptr) {
    return absl::FailedPreconditionError("TestPki was moved from");
  }
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf name must be a plain file name: '", name, "'"));
  }
  if (options.self_signed && options.via_intermediate) {
    return absl::InvalidArgumentError(
        "self_signed and via_intermediate are exclusive");
  }

  X509* issuer = ca_cert_.get();
  EVP_PKEY* issuer_key = ca_key_.get();
  Key intermediate_key;
  Cert intermediate;
  if (options.via_intermediate) {
    absl::StatusOr<Key> key = NewKey();
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> suffix = RandomHex(8);
    if (!suffix.ok()) return suffix.status();
    CertSpec spec;
    spec.common_name = absl::StrCat("Mill-IO Test Intermediate CA ", *suffix);
    spec.is_ca = true;
    spec.path_len_zero = true;
    spec.not_before = kCaNotBefore;
    spec.not_after = kCaNotAfter;
    absl::StatusOr<Cert> cert = MakeCert(spec, key->get(), issuer, issuer_key);
    if (!cert.ok()) return cert.status();
    intermediate_key = *std::move(key);
    intermediate = *std::move(cert);
    issuer = intermediate.get();
    issuer_key = intermediate_key.get();
  }
  if (options.self_signed) {
    issuer = nullptr;
    issuer_key = nullptr;
  }

  absl::StatusOr<Key> key = NewKey();
  if (!key.ok()) return key.status();
  CertSpec spec;
  spec.common_name = options.common_name;
  spec.not_before = options.not_before;
  spec.not_after = options.not_after;
  spec.dns_names = options.dns_names;
  spec.ip_addresses = options.ip_addresses;
  absl::StatusOr<Cert> leaf = MakeCert(spec, key->get(), issuer, issuer_key);
  if (!leaf.ok()) return leaf.status();

  CertFiles files;
  for (X509* cert : {leaf->get(), intermediate.get()}) {
    if (cert == nullptr) continue;
    absl::StatusOr<std::string> pem = CertToPem(cert);
    if (!pem.ok()) return pem.status();
    files.cert_pem += *pem;
  }
  absl::StatusOr<std::string> key_pem = KeyToPem(key->get(), passphrase);
  if (!key_pem.ok()) return key_pem.status();
  files.key_pem = *std::move(key_pem);
  files.cert_file = JoinPath(dir_, name + ".pem");
  files.key_file = JoinPath(dir_, name + ".key");
  if (absl::Status s = WriteFile(files.cert_file, files.cert_pem, 0644);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFile(files.key_file, files.key_pem, 0600);
      !s.ok()) {
    return s;
  }
  return files;
}

std::string MakeTempDir(const std::string& prefix) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): tests do not setenv concurrently.
  const char* env = std::getenv("TEST_TMPDIR");
  std::string root = (env != nullptr && *env != '\0') ? env : "/tmp";
  std::string base = prefix.empty() ? "tls_test" : prefix;
  std::replace(base.begin(), base.end(), '/', '_');
  std::error_code ignored;
  std::filesystem::create_directories(root, ignored);
  std::string path = JoinPath(root, base + ".XXXXXX");
  if (::mkdtemp(path.data()) == nullptr) {
    std::perror(("MakeTempDir: mkdtemp " + path).c_str());
    std::abort();
  }
  return path;
}

}  // namespace tls_testing
}  // namespace mill
