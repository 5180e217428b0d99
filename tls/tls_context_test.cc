// Creating TLS contexts: every bad certificate or key file is a clear error
// naming the file; the kernel-TLS decision; layers refused on the wrong
// side.
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"
#include "tls/internal/kernel_tls.h"
#include "tls/testing/test_certificates.h"
#include "tls/tls_client_context.h"
#include "tls/tls_server_context.h"

namespace mill {
namespace {

using tls_testing::CertFiles;
using tls_testing::MakeTempDir;
using tls_testing::TestPki;

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestPki> pki = TestPki::Create(MakeTempDir("ctx"));
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    absl::StatusOr<CertFiles> leaf = pki_->IssueLeaf("leaf");
    ASSERT_TRUE(leaf.ok());
    leaf_ = *leaf;
  }
  static absl::Status Create(TlsCertificate certificate) {
    TlsServerOptions options;
    options.certificates.push_back(std::move(certificate));
    return TlsServerContext::Create(options).status();
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = pki_->dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::unique_ptr<TestPki> pki_;
  CertFiles leaf_;
};

TEST_F(TlsContextTest, GoodFilesMakeAContext) {
  EXPECT_TRUE(Create({leaf_.cert_file, leaf_.key_file, {}}).ok());
}

TEST_F(TlsContextTest, MissingFilesAreNotFoundNamingTheFile) {
  absl::Status s = Create({"/nonexistent/cert.pem", leaf_.key_file, {}});
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "/nonexistent/cert.pem")) << s;
  s = Create({leaf_.cert_file, "/nonexistent/key.pem", {}});
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "/nonexistent/key.pem")) << s;
}

TEST_F(TlsContextTest, UnreadableKeyIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  const std::string key = Write("unreadable.key", leaf_.key_pem);
  ASSERT_EQ(chmod(key.c_str(), 0), 0);
  absl::Status s = Create({leaf_.cert_file, key, {}});
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
}

TEST_F(TlsContextTest, EncryptedKeyIsRefusedAsEncrypted) {
  absl::StatusOr<CertFiles> encrypted =
      pki_->EncryptedKeyLeaf("encrypted", "secret");
  ASSERT_TRUE(encrypted.ok());
  absl::Status s = Create({encrypted->cert_file, encrypted->key_file, {}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "encrypted")) << s;
}

TEST_F(TlsContextTest, MismatchedKeyIsRefused) {
  absl::StatusOr<CertFiles> other = pki_->IssueLeaf("other");
  ASSERT_TRUE(other.ok());
  absl::Status s = Create({leaf_.cert_file, other->key_file, {}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "does not match")) << s;
}

TEST_F(TlsContextTest, FilesThatAreNotPemAreRefusedNamingTheFile) {
  const std::string junk = Write("junk.pem", "not a certificate\n");
  absl::Status s = Create({junk, leaf_.key_file, {}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), junk)) << s;
  s = Create({leaf_.cert_file, junk, {}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), junk)) << s;
  // A certificate where the key belongs.
  s = Create({leaf_.cert_file, leaf_.cert_file, {}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_F(TlsContextTest, BadOptionsAreInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      TlsServerContext::Create(TlsServerOptions()).status()));
  TlsServerOptions options;
  options.certificates.push_back({leaf_.cert_file, leaf_.key_file, {}});
  options.alpn = {""};
  EXPECT_TRUE(
      absl::IsInvalidArgument(TlsServerContext::Create(options).status()));
  options.alpn = {};
  options.ciphersuites = "NO_SUCH_SUITE";
  EXPECT_TRUE(
      absl::IsInvalidArgument(TlsServerContext::Create(options).status()));
  options.ciphersuites = "";
  options.min_version = TlsVersion::k1_3;
  options.max_version = TlsVersion::k1_2;
  EXPECT_TRUE(
      absl::IsInvalidArgument(TlsServerContext::Create(options).status()));
  TlsClientOptions client;
  client.ca_file = "/nonexistent/ca.pem";
  EXPECT_TRUE(absl::IsNotFound(TlsClientContext::Create(client).status()));
}

TEST_F(TlsContextTest, LayersAreRefusedOnTheWrongSide) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  TlsServerOptions server_options;
  server_options.certificates.push_back({leaf_.cert_file, leaf_.key_file, {}});
  auto server_context = TlsServerContext::Create(server_options);
  auto client_context = TlsClientContext::Create(TlsClientOptions());
  ASSERT_TRUE(server_context.ok() && client_context.ok());
  TcpServerOptions tcp_server;
  tcp_server.layer = *client_context;
  EXPECT_TRUE(absl::IsInvalidArgument(
      TcpServer::Create(loop->get(), SocketAddress::LoopbackIPv4(0), {},
                        tcp_server)
          .status()));
  TcpClientOptions tcp_client;
  tcp_client.layer = *server_context;
  EXPECT_TRUE(absl::IsInvalidArgument(
      TcpClient::Create(loop->get(), {}, tcp_client).status()));
}

TEST(KernelTlsTest, UsedOnlyWhereAllowedAndOffered) {
  EXPECT_TRUE(tls_internal::UseKernelTls(KernelTls::kAuto, absl::OkStatus()));
  EXPECT_FALSE(tls_internal::UseKernelTls(KernelTls::kOff, absl::OkStatus()));
  EXPECT_FALSE(tls_internal::UseKernelTls(
      KernelTls::kAuto, absl::NotFoundError("no tls module")));
}

TEST(KernelTlsTest, ProbeAgreesWithTheKernel) {
  // The probe's answer is setsockopt(TCP_ULP, "tls")'s on a live socket;
  // where it fails (this development machine: ENOENT, no module) no
  // context asks OpenSSL for kTLS.
  const absl::Status support = tls_internal::KernelTlsSupport();
  std::ifstream modules("/proc/modules");
  std::string text((std::istreambuf_iterator<char>(modules)),
                   std::istreambuf_iterator<char>());
  if (!support.ok()) {
    EXPECT_FALSE(absl::StrContains(text, "\ntls ") ||
                 absl::StartsWith(text, "tls "))
        << support;
  }
  EXPECT_EQ(tls_internal::KernelTlsSupport().ok(), support.ok());  // cached
}

}  // namespace
}  // namespace mill
