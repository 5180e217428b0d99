// The fixture of the //tls tests: a throwaway PKI (tls/testing/
// test_certificates.h), a loop in each dispatch mode, TLS echo servers and
// clients, and a way to wait for a connect's result. Test-only.
#ifndef MILL_IO_TLS_TESTING_TLS_FIXTURE_H_
#define MILL_IO_TLS_TESTING_TLS_FIXTURE_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "net/testing/echo_clients.h"
#include "reactor/event_loop.h"
#include "reactor/testing/loop_fixture.h"
#include "tls/testing/test_certificates.h"
#include "tls/tls_client_context.h"
#include "tls/tls_info.h"
#include "tls/tls_server_context.h"

namespace mill {
namespace tls_testing {

using reactor_testing::LoopConfig;
using reactor_testing::LoopRunner;

// A status that shares nothing with `s`: a Status's payload is reference
// counted inside Debian's (uninstrumented) Abseil, so ThreadSanitizer cannot
// see a copy made on the loop thread and dropped on the test's thread as
// ordered.
inline absl::Status Copy(const absl::Status& s) {
  return absl::Status(s.code(), std::string(s.message()));
}

// What one side of a connection saw: bytes, close reason and status.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::string data;
  bool closed = false;
  CloseReason reason = CloseReason::kError;
  absl::Status status;
  // Weak: the connection's callbacks hold this (no cycle).
  std::weak_ptr<Connection> conn;

  void Append(absl::string_view bytes) {
    std::lock_guard<std::mutex> lock(mu);
    data.append(bytes.data(), bytes.size());
    cv.notify_all();
  }
  void Close(CloseReason r, const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
    reason = r;
    status = Copy(s);
    cv.notify_all();
  }
  bool WaitForBytes(size_t n, absl::Duration timeout = absl::Seconds(20)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, absl::ToChronoSeconds(timeout),
                       [&] { return data.size() >= n; });
  }
  bool WaitClosed(absl::Duration timeout = absl::Seconds(20)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, absl::ToChronoSeconds(timeout),
                       [&] { return closed; });
  }
  std::string Data() {
    std::lock_guard<std::mutex> lock(mu);
    return data;
  }
};

// Callbacks that record into `seen` (kept alive by the callbacks).
inline ConnectionCallbacks Recording(std::shared_ptr<Seen> seen) {
  ConnectionCallbacks cb;
  cb.on_connect = [seen](const ConnectionPtr& c) {
    std::lock_guard<std::mutex> lock(seen->mu);
    seen->conn = c;
  };
  cb.on_data = [seen](const ConnectionPtr&, ByteBuffer& input) {
    seen->Append(input.view());
    input.Consume(input.size());
  };
  cb.on_close = [seen](const ConnectionPtr&, CloseReason reason,
                       const absl::Status& status) {
    seen->Close(reason, status);
  };
  return cb;
}

inline ConnectionCallbacks Echo() {
  ConnectionCallbacks cb;
  cb.on_data = [](const ConnectionPtr& c, ByteBuffer& input) {
    (void)c->Send(input.view());
    input.Consume(input.size());
  };
  return cb;
}

// The PKI every test of a binary shares (made once: key generation is the
// slow part).
struct SharedPki {
  TestPki pki;
  CertFiles server;  // localhost, 127.0.0.1, ::1
};
inline SharedPki& Pki() {
  static SharedPki* shared = [] {
    absl::StatusOr<TestPki> pki = TestPki::Create(MakeTempDir("tls_pki"));
    EXPECT_TRUE(pki.ok()) << pki.status();
    auto* s = new SharedPki{*std::move(pki), {}};
    absl::StatusOr<CertFiles> server = s->pki.IssueLeaf("server");
    EXPECT_TRUE(server.ok()) << server.status();
    s->server = *std::move(server);
    return s;
  }();
  return *shared;
}

class TlsTest : public ::testing::TestWithParam<LoopConfig> {
 protected:
  void SetUp() override {
    EventLoopOptions options;
    options.dispatch_mode = GetParam().mode;
    options.workers = GetParam().workers;
    options.polling_threads = GetParam().polling_threads;
    options.poll_timeout = absl::Milliseconds(50);
    options.takeover_delay = absl::Milliseconds(1);
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(std::move(options));
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
    runner_ = std::make_unique<LoopRunner>(loop_.get());
  }
  void TearDown() override {
    clients_.clear();
    servers_.clear();
    runner_.reset();
  }

  static TlsServerOptions ServerOptions() {
    TlsServerOptions options;
    options.certificates.push_back(
        {Pki().server.cert_file, Pki().server.key_file, {}});
    return options;
  }
  static TlsClientOptions ClientOptions() {
    TlsClientOptions options;
    options.ca_file = Pki().pki.ca_file();
    return options;
  }
  static std::shared_ptr<TlsServerContext> ServerContext(
      TlsServerOptions options = ServerOptions()) {
    absl::StatusOr<std::shared_ptr<TlsServerContext>> context =
        TlsServerContext::Create(std::move(options));
    EXPECT_TRUE(context.ok()) << context.status();
    return context.ok() ? *context : nullptr;
  }
  static std::shared_ptr<TlsClientContext> ClientContext(
      TlsClientOptions options = ClientOptions()) {
    absl::StatusOr<std::shared_ptr<TlsClientContext>> context =
        TlsClientContext::Create(std::move(options));
    EXPECT_TRUE(context.ok()) << context.status();
    return context.ok() ? *context : nullptr;
  }

  // A server on 127.0.0.1; returns its port.
  TcpServer* StartServer(std::shared_ptr<const ConnectionLayer> layer,
                         ConnectionCallbacks callbacks,
                         TcpServerOptions options = {}) {
    options.layer = std::move(layer);
    absl::StatusOr<std::unique_ptr<TcpServer>> server =
        TcpServer::Create(loop_.get(), SocketAddress::LoopbackIPv4(0),
                          std::move(callbacks), std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    servers_.push_back(*std::move(server));
    return servers_.back().get();
  }
  TcpClient* StartClient(std::shared_ptr<const ConnectionLayer> layer,
                         ConnectionCallbacks callbacks,
                         TcpClientOptions options = {}) {
    options.layer = std::move(layer);
    absl::StatusOr<std::unique_ptr<TcpClient>> client = TcpClient::Create(
        loop_.get(), std::move(callbacks), std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    clients_.push_back(*std::move(client));
    return clients_.back().get();
  }

  // Connects (over `layer` instead of the client's when set) and waits for
  // the result.
  static absl::StatusOr<ConnectionPtr> ConnectAndWait(
      TcpClient* client, const std::string& target,
      std::optional<std::shared_ptr<const ConnectionLayer>> layer =
          std::nullopt) {
    struct Result {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<absl::StatusOr<ConnectionPtr>> value;
    };
    auto result = std::make_shared<Result>();
    auto done = [result](absl::StatusOr<ConnectionPtr> c) {
      std::lock_guard<std::mutex> lock(result->mu);
      if (c.ok()) {
        result->value = std::move(c);
      } else {
        result->value = Copy(c.status());
      }
      result->cv.notify_all();
    };
    if (layer.has_value()) {
      client->Connect(target, *std::move(layer), std::move(done));
    } else {
      client->Connect(target, std::move(done));
    }
    std::unique_lock<std::mutex> lock(result->mu);
    if (!result->cv.wait_for(lock, std::chrono::seconds(30),
                             [&] { return result->value.has_value(); })) {
      return absl::DeadlineExceededError("connect did not finish");
    }
    // Moved out: the callback (and the Result it holds) may be destroyed on
    // the loop thread later, and must share no status with us (see Copy).
    return *std::move(result->value);
  }
  static std::string Target(const TcpServer* server,
                            absl::string_view host = "127.0.0.1") {
    return absl::StrCat(host, ":", server->local_address().port());
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<LoopRunner> runner_;
  std::vector<std::unique_ptr<TcpServer>> servers_;
  std::vector<std::unique_ptr<TcpClient>> clients_;
};

}  // namespace tls_testing
}  // namespace mill

#endif  // MILL_IO_TLS_TESTING_TLS_FIXTURE_H_
