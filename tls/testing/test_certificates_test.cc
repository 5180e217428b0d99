#include "tls/testing/test_certificates.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace mill {
namespace tls_testing {
namespace {

template <typename T, void (*kFree)(T*)>
struct Free {
  void operator()(T* p) const { kFree(p); }
};
using Bignum = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using Cert = std::unique_ptr<X509, Free<X509, X509_free>>;
using Key = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using Pbe2Param = std::unique_ptr<PBE2PARAM, Free<PBE2PARAM, PBE2PARAM_free>>;
using Pkcs8 = std::unique_ptr<X509_SIG, Free<X509_SIG, X509_SIG_free>>;
using Store = std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>>;
using StoreCtx =
    std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>>;
struct StackFree {  // sk_X509_free is a macro.
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using Stack = std::unique_ptr<STACK_OF(X509), StackFree>;

Bio MemBio(const std::string& data) {
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Every certificate in a PEM string, in order.
std::vector<Cert> ReadCerts(const std::string& pem) {
  std::vector<Cert> certs;
  Bio bio = MemBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // The read past the last certificate queues an error.
  return certs;
}

Cert FirstCert(const std::string& pem) {
  std::vector<Cert> certs = ReadCerts(pem);
  return certs.empty() ? nullptr : std::move(certs.front());
}

// Supplies the std::string passed as `user`, or no password when it is null
// (so OpenSSL never prompts on the terminal).
int PasswordCallback(char* buf, int size, int rwflag, void* user) {
  const auto* passphrase = static_cast<const std::string*>(user);
  if (passphrase == nullptr) return 0;
  int n = std::min(size, static_cast<int>(passphrase->size()));
  std::copy_n(passphrase->data(), n, buf);  // Not NUL-terminated: length.
  return n;
}

Key ReadKey(const std::string& pem, const std::string* passphrase) {
  Bio bio = MemBio(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, PasswordCallback,
                                  const_cast<std::string*>(passphrase)));
  ERR_clear_error();
  return key;
}

// X509_verify_cert of `leaf` against the certificates of `ca_pem` as trust
// anchors, with `untrusted` as intermediates to build the chain from.
// Returns X509_V_OK or the verification error.
int Verify(const std::string& ca_pem, X509* leaf,
           const std::vector<X509*>& untrusted = {},
           int purpose = X509_PURPOSE_SSL_SERVER) {
  Store store(X509_STORE_new());
  for (const Cert& ca : ReadCerts(ca_pem)) {
    X509_STORE_add_cert(store.get(), ca.get());  // Takes its own reference.
  }
  Stack chain(sk_X509_new_null());
  for (X509* cert : untrusted) sk_X509_push(chain.get(), cert);
  StoreCtx ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, chain.get()) != 1 ||
      X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1) {
    ADD_FAILURE() << "X509_STORE_CTX setup failed";
    return -1;
  }
  int ok = X509_verify_cert(ctx.get());
  int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (ok == 1) return X509_V_OK;
  return error == X509_V_OK ? -1 : error;
}

std::string CommonName(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
                            sizeof(buf));
  return buf;
}

class TestPkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("test_certificates");
    absl::StatusOr<TestPki> pki = TestPki::Create(dir_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
  }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
};

TEST_F(TestPkiTest, CaIsACertificateAuthority) {
  EXPECT_EQ(pki_->dir(), dir_);
  EXPECT_EQ(ReadFile(pki_->ca_file()), pki_->ca_pem());
  Cert ca = FirstCert(pki_->ca_pem());
  ASSERT_NE(ca, nullptr);
  EXPECT_TRUE(absl::StartsWith(CommonName(ca.get()), "Mill-IO Test CA "));
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_get_key_usage(ca.get()), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
  EXPECT_EQ(X509_get_signature_nid(ca.get()), NID_ecdsa_with_SHA256);
  Key key = ReadKey(ReadFile(pki_->ca_key_file()), nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(ca.get(), key.get()), 1);
}

TEST_F(TestPkiTest, DefaultLeafVerifies) {
  absl::StatusOr<CertFiles> files = pki_->IssueLeaf("server");
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->cert_file, dir_ + "/server.pem");
  EXPECT_EQ(files->key_file, dir_ + "/server.key");
  EXPECT_EQ(ReadFile(files->cert_file), files->cert_pem);
  EXPECT_EQ(ReadFile(files->key_file), files->key_pem);
  EXPECT_TRUE(absl::StartsWith(files->key_pem, "-----BEGIN PRIVATE KEY-----"));
  std::vector<Cert> certs = ReadCerts(files->cert_pem);
  ASSERT_EQ(certs.size(), 1u);
  X509* leaf = certs[0].get();

  EXPECT_EQ(Verify(pki_->ca_pem(), leaf, {}, X509_PURPOSE_SSL_SERVER),
            X509_V_OK);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf, {}, X509_PURPOSE_SSL_CLIENT),
            X509_V_OK);
  EXPECT_EQ(X509_check_host(leaf, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
  EXPECT_EQ(X509_check_host(leaf, "example.com", 0, 0, nullptr), 0);
  EXPECT_EQ(CommonName(leaf), "localhost");
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_EQ(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
  EXPECT_EQ(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
  EXPECT_EQ(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);

  Key key = ReadKey(files->key_pem, nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  EXPECT_EQ(X509_check_private_key(leaf, key.get()), 1);
}

TEST_F(TestPkiTest, CustomNames) {
  LeafOptions options;
  options.dns_names = {"a.test", "*.b.test"};
  options.ip_addresses = {"10.1.2.3"};
  options.common_name = "custom";
  absl::StatusOr<CertFiles> files = pki_->IssueLeaf("custom", options);
  ASSERT_TRUE(files.ok()) << files.status();
  Cert leaf = FirstCert(files->cert_pem);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf.get()), X509_V_OK);
  EXPECT_EQ(X509_check_host(leaf.get(), "a.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "x.b.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 0);
  EXPECT_EQ(CommonName(leaf.get()), "custom");
}

TEST_F(TestPkiTest, SerialsAreRandom128Bits) {
  absl::StatusOr<CertFiles> a = pki_->IssueLeaf("a");
  absl::StatusOr<CertFiles> b = pki_->IssueLeaf("b");
  ASSERT_TRUE(a.ok() && b.ok());
  Cert cert_a = FirstCert(a->cert_pem);
  Cert cert_b = FirstCert(b->cert_pem);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(cert_a.get()),
                             X509_get0_serialNumber(cert_b.get())),
            0);
  Bignum serial(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert_a.get()), nullptr));
  ASSERT_NE(serial, nullptr);
  EXPECT_FALSE(BN_is_negative(serial.get()));
  EXPECT_LE(BN_num_bits(serial.get()), 128);
  EXPECT_GT(BN_num_bits(serial.get()), 64);  // Fails with odds 2^-63.
}

TEST_F(TestPkiTest, ExpiredLeafFails) {
  absl::StatusOr<CertFiles> files = pki_->ExpiredLeaf("expired");
  ASSERT_TRUE(files.ok()) << files.status();
  Cert leaf = FirstCert(files->cert_pem);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf.get()), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 1);
}

TEST_F(TestPkiTest, WrongNameLeafVerifiesButDoesNotMatchLocalhost) {
  absl::StatusOr<CertFiles> files = pki_->WrongNameLeaf("wrong");
  ASSERT_TRUE(files.ok()) << files.status();
  Cert leaf = FirstCert(files->cert_pem);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf.get()), X509_V_OK);
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 0);
  EXPECT_EQ(X509_check_host(leaf.get(), "wrong.example", 0, 0, nullptr), 1);
}

TEST_F(TestPkiTest, SelfSignedLeafFails) {
  absl::StatusOr<CertFiles> files = pki_->SelfSignedLeaf("self");
  ASSERT_TRUE(files.ok()) << files.status();
  Cert leaf = FirstCert(files->cert_pem);
  ASSERT_NE(leaf, nullptr);
  int error = Verify(pki_->ca_pem(), leaf.get());
  EXPECT_NE(error, X509_V_OK);
  EXPECT_EQ(error, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
      << X509_verify_cert_error_string(error);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(leaf.get()),
                          X509_get_issuer_name(leaf.get())),
            0);
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 1);
  Key key = ReadKey(files->key_pem, nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_verify(leaf.get(), key.get()), 1);  // Signed by its own key.
}

TEST_F(TestPkiTest, IntermediateChainVerifiesWithUntrustedIntermediate) {
  LeafOptions options;
  options.via_intermediate = true;
  absl::StatusOr<CertFiles> files = pki_->IssueLeaf("chained", options);
  ASSERT_TRUE(files.ok()) << files.status();
  std::vector<Cert> certs = ReadCerts(ReadFile(files->cert_file));
  ASSERT_EQ(certs.size(), 2u);
  X509* leaf = certs[0].get();
  X509* intermediate = certs[1].get();
  EXPECT_EQ(X509_check_ca(intermediate), 1);
  EXPECT_TRUE(absl::StartsWith(CommonName(intermediate),
                               "Mill-IO Test Intermediate CA "));
  EXPECT_EQ(X509_check_issued(intermediate, leaf), X509_V_OK);

  EXPECT_EQ(Verify(pki_->ca_pem(), leaf),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf, {intermediate}), X509_V_OK);
  EXPECT_EQ(
      Verify(pki_->ca_pem(), leaf, {intermediate}, X509_PURPOSE_SSL_CLIENT),
      X509_V_OK);
  Key key = ReadKey(files->key_pem, nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(leaf, key.get()), 1);
}

TEST_F(TestPkiTest, EncryptedKeyLoadsOnlyWithPassphrase) {
  const std::string passphrase = "correct horse";
  absl::StatusOr<CertFiles> files =
      pki_->EncryptedKeyLeaf("locked", passphrase);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(ReadFile(files->key_file), files->key_pem);
  EXPECT_TRUE(absl::StartsWith(files->key_pem,
                               "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
  Cert leaf = FirstCert(files->cert_pem);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf.get()), X509_V_OK);

  const std::string wrong = "wrong horse";
  EXPECT_EQ(ReadKey(files->key_pem, nullptr), nullptr);
  EXPECT_EQ(ReadKey(files->key_pem, &wrong), nullptr);
  Key key = ReadKey(files->key_pem, &passphrase);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(leaf.get(), key.get()), 1);

  // PKCS#8 with PBES2, AES-256-CBC.
  Bio bio = MemBio(files->key_pem);
  Pkcs8 pkcs8(PEM_read_bio_PKCS8(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(pkcs8, nullptr);
  const X509_ALGOR* algorithm = nullptr;
  X509_SIG_get0(pkcs8.get(), &algorithm, nullptr);
  ASSERT_EQ(OBJ_obj2nid(algorithm->algorithm), NID_pbes2);
  Pbe2Param pbes2(static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(
      ASN1_ITEM_rptr(PBE2PARAM), algorithm->parameter)));
  ASSERT_NE(pbes2, nullptr);
  EXPECT_EQ(OBJ_obj2nid(pbes2->encryption->algorithm), NID_aes_256_cbc);

  EXPECT_EQ(pki_->EncryptedKeyLeaf("empty", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TestPkiTest, EachCreateMakesADifferentCa) {
  absl::StatusOr<TestPki> other = TestPki::Create(dir_ + "/other/nested");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->ca_pem(), pki_->ca_pem());
  Cert ca = FirstCert(pki_->ca_pem());
  Cert other_ca = FirstCert(other->ca_pem());
  EXPECT_NE(CommonName(ca.get()), CommonName(other_ca.get()));

  absl::StatusOr<CertFiles> files = other->IssueLeaf("server");
  ASSERT_TRUE(files.ok()) << files.status();
  Cert leaf = FirstCert(files->cert_pem);
  EXPECT_EQ(Verify(other->ca_pem(), leaf.get()), X509_V_OK);
  EXPECT_EQ(Verify(pki_->ca_pem(), leaf.get()),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_F(TestPkiTest, MovedPkiKeepsIssuing) {
  TestPki moved = std::move(*pki_);
  absl::StatusOr<CertFiles> files = moved.IssueLeaf("after_move");
  ASSERT_TRUE(files.ok()) << files.status();
  Cert leaf = FirstCert(files->cert_pem);
  EXPECT_EQ(Verify(moved.ca_pem(), leaf.get()), X509_V_OK);
}

TEST_F(TestPkiTest, RejectsBadArguments) {
  EXPECT_EQ(pki_->IssueLeaf("a/b").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pki_->IssueLeaf("").status().code(),
            absl::StatusCode::kInvalidArgument);
  LeafOptions options;
  options.self_signed = true;
  options.via_intermediate = true;
  EXPECT_EQ(pki_->IssueLeaf("both", options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = LeafOptions();
  options.ip_addresses = {"not-an-ip"};
  absl::Status status = pki_->IssueLeaf("bad_ip", options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(status.message(), "not-an-ip")) << status;
}

TEST(MakeTempDirTest, UniquePerCall) {
  std::string a = MakeTempDir("same");
  std::string b = MakeTempDir("same");
  EXPECT_NE(a, b);
  const char* root =
      std::getenv("TEST_TMPDIR");  // NOLINT(concurrency-mt-unsafe)
  if (root != nullptr) {
    EXPECT_TRUE(absl::StartsWith(a, root));
  }
  std::ofstream probe(a + "/probe");
  EXPECT_TRUE(probe.good());
}

}  // namespace
}  // namespace tls_testing
}  // namespace mill
