// Tests of the shared Resolver with a fake lookup and an injected clock:
// in-flight deduplication, the positive and negative TTLs, the bound on
// entries, per-request ports, Cancel (before the answer, while a callback
// runs elsewhere, from inside a callback), and the real getaddrinfo path.
#include "net/internal/resolver.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"

namespace mill {
namespace net_internal {
namespace {

using Result = Resolver::Result;
using Addresses = Resolver::Addresses;

bool WaitFor(const std::function<bool()>& pred,
             absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

// A name service: answers from a table, counts calls per name, and (while
// held) blocks every lookup until released.
class FakeDns {
 public:
  void Set(const std::string& host, Result result) {
    std::lock_guard<std::mutex> lock(mu_);
    table_.insert_or_assign(host, std::move(result));
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    cv_.notify_all();
  }
  int calls(const std::string& host) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[host];
  }
  int blocked() {
    std::lock_guard<std::mutex> lock(mu_);
    return blocked_;
  }

  Resolver::LookupFunction Function() {
    return [this](const std::string& host) -> Result {
      std::unique_lock<std::mutex> lock(mu_);
      ++calls_[host];
      ++blocked_;
      cv_.wait_for(lock, std::chrono::seconds(10), [this] { return !held_; });
      --blocked_;
      auto it = table_.find(host);
      if (it == table_.end()) return absl::NotFoundError("no such name");
      return it->second;
    };
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Result> table_;
  std::map<std::string, int> calls_;
  bool held_ = false;
  int blocked_ = 0;
};

// Collects the answers of Resolve() calls.
class Answers {
 public:
  Resolver::Callback Callback(int slot) {
    return [this, slot](Result result) {
      std::lock_guard<std::mutex> lock(mu_);
      answers_[slot] = std::move(result);
      cv_.notify_all();
    };
  }
  bool Has(int slot) {
    std::lock_guard<std::mutex> lock(mu_);
    return answers_.count(slot) > 0;
  }
  Result Wait(int slot) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10),
                 [&] { return answers_.count(slot) > 0; });
    if (answers_.count(slot) == 0) return absl::UnknownError("no answer");
    return answers_.at(slot);
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return answers_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Result> answers_;
};

const SocketAddress kV4 = *SocketAddress::Parse("192.0.2.1:0");
const SocketAddress kV6 = *SocketAddress::Parse("[2001:db8::1]:0");

class ResolverTest : public ::testing::Test {
 protected:
  std::unique_ptr<Resolver> Make(size_t max_entries = 256) {
    Resolver::Options options;
    options.lookup = dns_.Function();
    options.now_ns = [this] { return now_ns_.load(); };
    options.max_entries = max_entries;
    return std::make_unique<Resolver>(options);
  }
  void Advance(absl::Duration d) { now_ns_ += absl::ToInt64Nanoseconds(d); }

  FakeDns dns_;
  std::atomic<int64_t> now_ns_{1'000'000'000};
};

TEST_F(ResolverTest, ConcurrentRequestsForOneNameShareOneLookup) {
  dns_.Set("db.test", Addresses{kV6, kV4});
  dns_.Set("cache.test", Addresses{kV4});
  dns_.Hold();
  std::unique_ptr<Resolver> resolver = Make();
  Answers answers;
  EXPECT_NE(resolver->Resolve("db.test", 5432, answers.Callback(0)), 0u);
  EXPECT_NE(resolver->Resolve("db.test", 5433, answers.Callback(1)), 0u);
  EXPECT_NE(resolver->Resolve("db.test", 5432, answers.Callback(2)), 0u);
  EXPECT_NE(resolver->Resolve("cache.test", 11211, answers.Callback(3)), 0u);
  ASSERT_TRUE(WaitFor([&] { return dns_.blocked() == 2; }));
  EXPECT_EQ(answers.size(), 0u);
  dns_.Release();
  for (int slot = 0; slot < 4; ++slot) {
    Result r = answers.Wait(slot);
    ASSERT_TRUE(r.ok()) << slot << ": " << r.status();
  }
  // Each request has its own port; the lookup's order is kept.
  EXPECT_EQ(*answers.Wait(0),
            (Addresses{WithPort(kV6, 5432), WithPort(kV4, 5432)}));
  EXPECT_EQ(*answers.Wait(1),
            (Addresses{WithPort(kV6, 5433), WithPort(kV4, 5433)}));
  EXPECT_EQ(*answers.Wait(3), Addresses{WithPort(kV4, 11211)});
  EXPECT_EQ(dns_.calls("db.test"), 1);
  EXPECT_EQ(dns_.calls("cache.test"), 1);
  const Resolver::Stats stats = resolver->stats();
  EXPECT_EQ(stats.lookups, 2u);
  EXPECT_EQ(stats.joined, 2u);
  EXPECT_EQ(stats.cached, 2u);
}

TEST_F(ResolverTest, AnswerIsCachedForThePositiveTtl) {
  dns_.Set("a.test", Addresses{kV4});
  std::unique_ptr<Resolver> resolver = Make();
  Answers answers;
  resolver->Resolve("a.test", 80, answers.Callback(0));
  ASSERT_TRUE(answers.Wait(0).ok());
  // From the cache: answered inside Resolve, which returns no ticket.
  Advance(absl::Seconds(29));
  EXPECT_EQ(resolver->Resolve("a.test", 81, answers.Callback(1)), 0u);
  ASSERT_TRUE(answers.Has(1));
  EXPECT_EQ(*answers.Wait(1), Addresses{WithPort(kV4, 81)});
  EXPECT_EQ(dns_.calls("a.test"), 1);
  // Expired: asked again.
  Advance(absl::Seconds(1));
  EXPECT_NE(resolver->Resolve("a.test", 80, answers.Callback(2)), 0u);
  ASSERT_TRUE(answers.Wait(2).ok());
  EXPECT_EQ(dns_.calls("a.test"), 2);
  EXPECT_EQ(resolver->stats().cache_hits, 1u);
}

TEST_F(ResolverTest, FailureIsCachedForTheNegativeTtl) {
  std::unique_ptr<Resolver> resolver = Make();
  Answers answers;
  resolver->Resolve("missing.test", 80, answers.Callback(0));
  EXPECT_EQ(answers.Wait(0).status().code(), absl::StatusCode::kNotFound);
  Advance(absl::Milliseconds(4999));
  EXPECT_EQ(resolver->Resolve("missing.test", 80, answers.Callback(1)), 0u);
  EXPECT_EQ(answers.Wait(1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(dns_.calls("missing.test"), 1);
  // The name appears; once the failure expired it is found.
  dns_.Set("missing.test", Addresses{kV4});
  Advance(absl::Milliseconds(1));
  resolver->Resolve("missing.test", 80, answers.Callback(2));
  EXPECT_TRUE(answers.Wait(2).ok());
  EXPECT_EQ(dns_.calls("missing.test"), 2);
}

TEST_F(ResolverTest, CacheIsBoundedAndEvictsTheEntryExpiringFirst) {
  for (const char* name : {"a.test", "b.test", "c.test"}) {
    dns_.Set(name, Addresses{kV4});
  }
  std::unique_ptr<Resolver> resolver = Make(/*max_entries=*/2);
  Answers answers;
  int slot = 0;
  for (const char* name : {"a.test", "b.test", "c.test"}) {
    resolver->Resolve(name, 80, answers.Callback(slot));
    ASSERT_TRUE(answers.Wait(slot++).ok());
    Advance(absl::Seconds(1));
  }
  EXPECT_EQ(resolver->stats().cached, 2u);
  // a.test (expiring first) made room for c.test.
  EXPECT_EQ(resolver->Resolve("c.test", 80, answers.Callback(slot++)), 0u);
  EXPECT_EQ(resolver->Resolve("b.test", 80, answers.Callback(slot++)), 0u);
  EXPECT_NE(resolver->Resolve("a.test", 80, answers.Callback(slot)), 0u);
  ASSERT_TRUE(answers.Wait(slot).ok());
  EXPECT_EQ(dns_.calls("a.test"), 2);
  EXPECT_EQ(dns_.calls("b.test"), 1);
  EXPECT_EQ(resolver->stats().cached, 2u);
}

TEST_F(ResolverTest, CancelBeforeTheAnswerDropsOnlyThatCallback) {
  dns_.Set("a.test", Addresses{kV4});
  dns_.Hold();
  std::unique_ptr<Resolver> resolver = Make();
  Answers answers;
  auto destroyed = std::make_shared<int>(0);
  std::weak_ptr<int> watch = destroyed;
  const Resolver::Ticket first = resolver->Resolve(
      "a.test", 80,
      [&answers, destroyed](Result r) { answers.Callback(0)(std::move(r)); });
  destroyed.reset();
  const Resolver::Ticket second =
      resolver->Resolve("a.test", 80, answers.Callback(1));
  EXPECT_TRUE(resolver->Cancel(first));
  EXPECT_TRUE(watch.expired());  // the callback is destroyed by Cancel
  EXPECT_FALSE(resolver->Cancel(first));
  dns_.Release();
  ASSERT_TRUE(answers.Wait(1).ok());
  EXPECT_FALSE(answers.Has(0));
  EXPECT_FALSE(resolver->Cancel(second));  // delivered
  EXPECT_FALSE(resolver->Cancel(0));
}

// Cancel returning false while the callback runs on a worker waits for it,
// so the caller may free what the callback uses.
TEST_F(ResolverTest, CancelWaitsForACallbackRunningElsewhere) {
  dns_.Set("a.test", Addresses{kV4});
  std::unique_ptr<Resolver> resolver = Make();
  std::atomic<bool> entered{false}, cancelling{false}, finished{false};
  const Resolver::Ticket ticket = resolver->Resolve("a.test", 80, [&](Result) {
    entered = true;
    EXPECT_TRUE(WaitFor([&] { return cancelling.load(); }));
    absl::SleepFor(absl::Milliseconds(50));  // Cancel must wait this out
    finished = true;
  });
  ASSERT_NE(ticket, 0u);
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  cancelling = true;
  EXPECT_FALSE(resolver->Cancel(ticket));
  EXPECT_TRUE(finished.load());
}

// From inside a callback Cancel does not wait (it would wait for itself).
TEST_F(ResolverTest, CancelFromInsideTheCallbackReturnsAtOnce) {
  dns_.Set("a.test", Addresses{kV4});
  dns_.Hold();
  std::unique_ptr<Resolver> resolver = Make();
  std::atomic<Resolver::Ticket> ticket{0};
  std::atomic<int> answer{0};
  Resolver* r = resolver.get();
  ticket = resolver->Resolve("a.test", 80, [&, r](Result) {
    EXPECT_FALSE(r->Cancel(ticket.load()));
    answer = 1;
  });
  dns_.Release();
  EXPECT_TRUE(WaitFor([&] { return answer.load() == 1; }));
}

// The destructor delivers what is queued, then joins.
TEST_F(ResolverTest, DestructionDeliversPendingAnswers) {
  dns_.Set("a.test", Addresses{kV4});
  dns_.Hold();
  std::unique_ptr<Resolver> resolver = Make();
  Answers answers;
  resolver->Resolve("a.test", 80, answers.Callback(0));
  ASSERT_TRUE(WaitFor([&] { return dns_.blocked() == 1; }));
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(20));
    dns_.Release();
  });
  resolver.reset();
  EXPECT_TRUE(answers.Has(0));
  releaser.join();
}

TEST(ResolverGetAddrInfo, ResolvesLocalhostWithoutAPort) {
  Result r = Resolver::GetAddrInfo("localhost");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->empty());
  for (const SocketAddress& a : *r) {
    EXPECT_EQ(a.port(), 0);
    EXPECT_TRUE(a == SocketAddress::LoopbackIPv4(0) ||
                a == SocketAddress::LoopbackIPv6(0))
        << a;
  }
}

TEST(ResolverGetAddrInfo, UnknownNameIsNotFound) {
  Result r = Resolver::GetAddrInfo("no-such-host.invalid");
  ASSERT_FALSE(r.ok());
  if (r.status().code() == absl::StatusCode::kUnavailable) {
    GTEST_SKIP() << "no DNS answer here (EAI_AGAIN): " << r.status();
  }
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
}

TEST(ResolverShared, OneInstancePerProcess) {
  EXPECT_EQ(Resolver::Shared().get(), Resolver::Shared().get());
  EXPECT_NE(Resolver::Shared(), nullptr);
}

TEST(SplitHostPort, AcceptsNamesAndBracketedV6) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(SplitHostPort("example.com:80", &host, &port));
  EXPECT_EQ(host, "example.com");
  EXPECT_EQ(port, 80);
  EXPECT_TRUE(SplitHostPort("[::1]:8080", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  EXPECT_FALSE(SplitHostPort("example.com", &host, &port));
  EXPECT_FALSE(SplitHostPort(":80", &host, &port));
  EXPECT_FALSE(SplitHostPort("a:65536", &host, &port));
  EXPECT_FALSE(SplitHostPort("::1:80", &host, &port));
  EXPECT_FALSE(SplitHostPort("[::1]80", &host, &port));
}

TEST(WithPort, ReplacesThePortOfEitherFamily) {
  EXPECT_EQ(WithPort(kV4, 443).ToString(), "192.0.2.1:443");
  EXPECT_EQ(WithPort(kV6, 443).ToString(), "[2001:db8::1]:443");
}

}  // namespace
}  // namespace net_internal
}  // namespace mill
