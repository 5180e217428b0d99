// Test helpers for //connpool's tests: a fixture with two EventLoops (the
// pool's and the servers', so a test can stall the pool's loop while the
// peer keeps running), echo TcpServers as peers, and collectors for
// Acquire results and lease callbacks.
//
// Thread-safety: the collectors are thread-safe; the fixture belongs to the
// test thread. Ownership: the fixture owns the loops, servers and pool.
// testonly.
#ifndef MILL_IO_CONNPOOL_TESTING_POOL_TEST_FIXTURE_H_
#define MILL_IO_CONNPOOL_TESTING_POOL_TEST_FIXTURE_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "connpool/connection_pool.h"
#include "gtest/gtest.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace connpool_testing {

inline bool WaitFor(const std::function<bool()>& pred,
                    absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

// The answer to one Acquire, for the test thread to wait on. Shared, so a
// callback that runs late (the pool's destruction) still finds it.
class AcquireResult {
 public:
  static std::shared_ptr<AcquireResult> Make() {
    return std::make_shared<AcquireResult>();
  }
  static AcquireCallback CallbackOf(const std::shared_ptr<AcquireResult>& r) {
    return [r](absl::StatusOr<Lease> lease) {
      MutexLock lock(&r->mu_);
      ++r->calls_;
      r->thread_ = std::this_thread::get_id();
      r->result_.emplace(std::move(lease));
      r->cv_.NotifyAll();
    };
  }
  bool ready() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return result_.has_value();
  }
  int calls() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return calls_;
  }
  std::thread::id thread() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return thread_;
  }
  // Takes the result (waits up to `timeout` for it).
  absl::StatusOr<Lease> Take(absl::Duration timeout = absl::Seconds(20))
      ABSL_LOCKS_EXCLUDED(mu_) {
    const auto deadline =
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
    MutexLock lock(&mu_);
    while (!result_.has_value() && cv_.WaitUntil(&mu_, deadline)) {
    }
    if (!result_.has_value()) {
      return absl::InternalError("test: no Acquire answer in time");
    }
    absl::StatusOr<Lease> out = std::move(*result_);
    result_.reset();
    return out;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::optional<absl::StatusOr<Lease>> result_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread::id thread_ ABSL_GUARDED_BY(mu_);
};

// What a lease's callbacks saw. Shared: the callbacks keep it alive.
class Sink : public std::enable_shared_from_this<Sink> {
 public:
  static std::shared_ptr<Sink> Make() { return std::make_shared<Sink>(); }

  // Callbacks that record everything; on_data consumes the input unless
  // `consume` is false; on_peer_shutdown is set only if asked.
  std::shared_ptr<const LeaseCallbacks> Callbacks(bool consume = true,
                                                  bool peer_shutdown = false) {
    auto cb = std::make_shared<LeaseCallbacks>();
    std::shared_ptr<Sink> self = shared_from_this();
    cb->on_data = [self, consume](const ConnectionPtr&, ByteBuffer& in) {
      MutexLock lock(&self->mu_);
      ++self->data_calls_;
      if (consume) {
        self->data_.append(in.data(), in.size());
        in.Consume(in.size());
      }
      self->cv_.NotifyAll();
    };
    if (peer_shutdown) {
      cb->on_peer_shutdown = [self](const ConnectionPtr&) {
        MutexLock lock(&self->mu_);
        ++self->peer_shutdowns_;
        self->cv_.NotifyAll();
      };
    }
    cb->on_close = [self](const ConnectionPtr&, CloseReason reason,
                          const absl::Status&) {
      MutexLock lock(&self->mu_);
      ++self->closes_;
      self->last_reason_ = reason;
      self->cv_.NotifyAll();
    };
    return cb;
  }
  bool WaitData(size_t n, absl::Duration timeout = absl::Seconds(20))
      ABSL_LOCKS_EXCLUDED(mu_) {
    return WaitUntil(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return data_.size() >= n; },
        timeout);
  }
  bool WaitCloses(int n, absl::Duration timeout = absl::Seconds(20))
      ABSL_LOCKS_EXCLUDED(mu_) {
    return WaitUntil(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closes_ >= n; },
        timeout);
  }
  bool WaitPeerShutdowns(int n, absl::Duration timeout = absl::Seconds(20))
      ABSL_LOCKS_EXCLUDED(mu_) {
    return WaitUntil([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                         mu_) { return peer_shutdowns_ >= n; },
                     timeout);
  }
  std::string TakeData() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return std::exchange(data_, std::string());
  }
  int data_calls() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return data_calls_;
  }
  int closes() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return closes_;
  }
  CloseReason last_reason() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return last_reason_;
  }

 private:
  // Waits (up to `timeout`) until `done` (called with mu_ held) is true.
  template <typename Pred>
  bool WaitUntil(Pred done, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    const auto deadline =
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
    MutexLock lock(&mu_);
    while (!done() && cv_.WaitUntil(&mu_, deadline)) {
    }
    return done();
  }

  Mutex mu_;
  CondVar cv_;
  std::string data_ ABSL_GUARDED_BY(mu_);
  int data_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int closes_ ABSL_GUARDED_BY(mu_) = 0;
  int peer_shutdowns_ ABSL_GUARDED_BY(mu_) = 0;
  CloseReason last_reason_ ABSL_GUARDED_BY(mu_) = CloseReason::kClosedLocally;
};

// Stalls a loop's thread (a task that waits) until Open() or destruction:
// no event of that loop is handled meanwhile.
class LoopGate {
 public:
  explicit LoopGate(EventLoop* loop) : state_(std::make_shared<State>()) {
    std::shared_ptr<State> state = state_;
    EXPECT_TRUE(loop->RunInLoop([state] {
                      MutexLock lock(&state->mu);
                      state->blocked = true;
                      state->cv.NotifyAll();
                      while (!state->open) state->cv.Wait(&state->mu);
                    })
                    .ok());
    MutexLock lock(&state_->mu);
    while (!state_->blocked) state_->cv.Wait(&state_->mu);
  }
  ~LoopGate() { Open(); }
  void Open() {
    MutexLock lock(&state_->mu);
    state_->open = true;
    state_->cv.NotifyAll();
  }

 private:
  struct State {
    Mutex mu;
    CondVar cv;
    bool blocked ABSL_GUARDED_BY(mu) = false;
    bool open ABSL_GUARDED_BY(mu) = false;
  };
  std::shared_ptr<State> state_;
};

// Two loops in the mode under test, echo servers on the second, a pool on
// the first.
class PoolFixture : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    pool_loop_ = MakeLoop(/*stallable=*/true);
    server_loop_ = MakeLoop(/*stallable=*/false);
    pool_runner_ = std::thread([this] { (void)pool_loop_->Run(); });
    server_runner_ = std::thread([this] { (void)server_loop_->Run(); });
  }

  void TearDown() override {
    pool_.reset();
    servers_.clear();
    if (pool_loop_) pool_loop_->Stop();
    if (server_loop_) server_loop_->Stop();
    if (pool_runner_.joinable()) pool_runner_.join();
    if (server_runner_.joinable()) server_runner_.join();
  }

  // A stallable loop polls on one thread and never hands a blocked poller
  // to its standby, so a LoopGate stops it from seeing anything: the tests
  // of what the pool checks at hand-out need a FIN the loop has not seen.
  std::unique_ptr<EventLoop> MakeLoop(bool stallable) {
    EventLoopOptions options;
    options.workers = 3;
    options.dispatch_mode = GetParam();
    if (stallable) {
      options.polling_threads = 1;
      options.takeover_delay = absl::Hours(1);
    }
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    EXPECT_TRUE(loop.ok()) << loop.status();
    return std::move(*loop);
  }

  // An echo server; returns its "127.0.0.1:port".
  std::string StartServer(TcpServerOptions options = {}) {
    TcpServerCallbacks echo;
    echo.on_data = [](const ConnectionPtr& c, ByteBuffer& in) {
      (void)c->Send(in.view());
      in.Consume(in.size());
    };
    absl::StatusOr<std::unique_ptr<TcpServer>> server =
        TcpServer::Create(server_loop_.get(), SocketAddress::LoopbackIPv4(0),
                          std::move(echo), std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    servers_.push_back(std::move(*server));
    return absl::StrCat("127.0.0.1:", servers_.back()->local_address().port());
  }
  TcpServer& server(size_t i = 0) { return *servers_.at(i); }

  void MakePool(ConnectionPoolOptions options = {}) {
    absl::StatusOr<std::unique_ptr<ConnectionPool>> pool =
        ConnectionPool::Create(pool_loop_.get(), std::move(options));
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = std::move(*pool);
  }

  // Acquire with a result collector (answered or not yet).
  std::shared_ptr<AcquireResult> AcquireAsync(
      const std::string& endpoint,
      std::shared_ptr<const LeaseCallbacks> callbacks = nullptr,
      absl::Duration timeout = absl::Seconds(20),
      ConnectionPool::RequestId* id = nullptr) {
    auto result = AcquireResult::Make();
    ConnectionPool::RequestId rid =
        pool_->Acquire(endpoint, absl::Now() + timeout,
                       AcquireResult::CallbackOf(result), std::move(callbacks));
    if (id != nullptr) *id = rid;
    return result;
  }

  absl::StatusOr<Lease> AcquireSync(
      const std::string& endpoint,
      std::shared_ptr<const LeaseCallbacks> callbacks = nullptr,
      absl::Duration timeout = absl::Seconds(20)) {
    return AcquireAsync(endpoint, std::move(callbacks), timeout)->Take();
  }

  // Sends `message` on the lease and waits for the echo in `sink`.
  static bool Echo(const Lease& lease, Sink& sink, const std::string& message) {
    if (!lease->Send(message).ok()) return false;
    if (!sink.WaitData(message.size())) return false;
    return sink.TakeData() == message;
  }

  // Releases and waits until the pool holds `idle` idle connections (a
  // release from outside the connection's callbacks is usually done when
  // Release returns, but may finish on a worker).
  void ReleaseAndWaitIdle(Lease lease, size_t idle) {
    pool_->Release(std::move(lease), /*reusable=*/true);
    EXPECT_TRUE(WaitFor([&] { return pool_->stats().idle == idle; }))
        << "idle=" << pool_->stats().idle << " want " << idle;
  }

  std::unique_ptr<EventLoop> pool_loop_;
  std::unique_ptr<EventLoop> server_loop_;
  std::thread pool_runner_;
  std::thread server_runner_;
  std::vector<std::unique_ptr<TcpServer>> servers_;
  std::unique_ptr<ConnectionPool> pool_;
};

// Pool tests run in both dispatch modes:
//   INSTANTIATE_TEST_SUITE_P(Modes, Suite, EveryMode(), ModeName);
inline auto EveryMode() {
  return ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect);
}

inline std::string ModeName(const ::testing::TestParamInfo<DispatchMode>& i) {
  return i.param == DispatchMode::kPool ? "Pool" : "Direct";
}

}  // namespace connpool_testing
}  // namespace mill

#endif  // MILL_IO_CONNPOOL_TESTING_POOL_TEST_FIXTURE_H_
