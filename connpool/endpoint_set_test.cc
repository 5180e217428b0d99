// Tests of EndpointSet's balancing alone (no sockets): round robin's exact
// turns, power of two choices with a scripted random source, and the
// failure backoff on a fake clock. The pool's use of a set is in
// connection_pool_lease_test.cc.
#include "connpool/endpoint_set.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

std::shared_ptr<EndpointSet> MakeSet(size_t n, EndpointSetOptions options) {
  std::vector<std::string> endpoints;
  for (size_t i = 0; i < n; ++i) {
    endpoints.push_back("10.0.0." + std::to_string(i + 1) + ":80");
  }
  absl::StatusOr<std::shared_ptr<EndpointSet>> set =
      EndpointSet::Create(std::move(endpoints), std::move(options));
  EXPECT_TRUE(set.ok()) << set.status();
  return *set;
}

// Replays `draws` (then zeros), counting the calls.
struct Script {
  std::vector<uint64_t> draws;
  size_t next = 0;
  uint64_t operator()() { return next < draws.size() ? draws[next++] : 0; }
};

TEST(EndpointSetTest, RoundRobinIsExactlyEven) {
  auto set = MakeSet(3, {});
  std::vector<size_t> counts(3);
  std::vector<size_t> order;
  for (int i = 0; i < 300; ++i) {
    const size_t pick = set->Pick();
    ++counts[pick];
    if (order.size() < 6) order.push_back(pick);
    set->Finish(pick, absl::OkStatus());
  }
  EXPECT_EQ(counts, (std::vector<size_t>{100, 100, 100}));
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(set->outstanding(i), 0u);
}

TEST(EndpointSetTest, OutstandingCountsPicksUntilFinished) {
  auto set = MakeSet(2, {});
  const size_t a = set->Pick();
  const size_t b = set->Pick();
  const size_t c = set->Pick();
  EXPECT_EQ(set->outstanding(0), 2u);
  EXPECT_EQ(set->outstanding(1), 1u);
  set->Finish(a, absl::OkStatus());
  set->Finish(b, absl::OkStatus());
  set->Finish(c, absl::OkStatus());
  EXPECT_EQ(set->outstanding(0), 0u);
  EXPECT_EQ(set->outstanding(1), 0u);
}

TEST(EndpointSetTest, PowerOfTwoChoicesTakesTheLessLoadedOfTheTwoDrawn) {
  auto script = std::make_shared<Script>();
  EndpointSetOptions options;
  options.policy = BalancingPolicy::kPowerOfTwoChoices;
  options.random = [script] { return (*script)(); };
  auto set = MakeSet(4, options);
  // Three times the pair (2, 0) (the second draw indexes the other three):
  // a tie goes to the first drawn (2), then 0 is less loaded, then a tie.
  for (int i = 0; i < 3; ++i) {
    script->draws = {2, 0};
    script->next = 0;
    const size_t pick = set->Pick();
    EXPECT_EQ(pick, i == 0 ? 2u : (i == 1 ? 0u : 2u)) << i;
  }
  // Now 2 has 2, 0 has 1, 1 and 3 have none.
  EXPECT_EQ(set->outstanding(2), 2u);
  EXPECT_EQ(set->outstanding(0), 1u);
  // Draw 2 and 3 (second draw 2 of {0,1,3} after skipping 2 -> 3): 3 wins.
  script->draws = {2, 2};
  script->next = 0;
  EXPECT_EQ(set->Pick(), 3u);
  // Draw 0 and 2: 0 (1 outstanding) beats 2 (2 outstanding), whichever
  // comes first.
  script->draws = {2, 0};
  script->next = 0;
  EXPECT_EQ(set->Pick(), 0u);
  script->draws = {0, 1};  // 0 then {1,2,3}[1] = 2
  script->next = 0;
  EXPECT_EQ(set->Pick(), 0u);  // 0 has 2, 2 has 2: tie, the first drawn
  EXPECT_EQ(set->outstanding(0), 3u);
  EXPECT_EQ(set->outstanding(1), 0u);
  EXPECT_EQ(set->outstanding(2), 2u);
  EXPECT_EQ(set->outstanding(3), 1u);
}

TEST(EndpointSetTest, PowerOfTwoChoicesEvensOutABiasedRandomSource) {
  // The first draw is always endpoint 0 (a picker of one random choice
  // would send everything there); the second alternates between the
  // others. No request finishes: two choices still spread them evenly.
  auto script = std::make_shared<Script>();
  EndpointSetOptions options;
  options.policy = BalancingPolicy::kPowerOfTwoChoices;
  options.random = [script] { return (*script)(); };
  auto set = MakeSet(3, options);
  for (uint64_t i = 0; i < 30; ++i) {
    script->draws = {0, i};
    script->next = 0;
    set->Pick();
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(set->outstanding(i), 10u) << i;
}

TEST(EndpointSetTest, FailedEndpointIsSkippedWithGrowingBackoff) {
  auto now = std::make_shared<int64_t>(0);
  EndpointSetOptions options;
  options.failure_backoff = absl::Seconds(1);
  options.max_failure_backoff = absl::Seconds(3);
  options.now_ns = [now] { return *now; };
  auto set = MakeSet(3, options);
  ASSERT_EQ(set->Pick(), 0u);
  set->Finish(0, absl::UnavailableError("connect: Connection refused"));
  EXPECT_TRUE(set->backing_off(0));
  // Skipped for 1 s: the turns go 1, 2, 1, 2.
  for (size_t want : {1u, 2u, 1u, 2u}) {
    const size_t pick = set->Pick();
    EXPECT_EQ(pick, want);
    set->Finish(pick, absl::OkStatus());
  }
  *now += absl::ToInt64Nanoseconds(absl::Seconds(1));
  EXPECT_FALSE(set->backing_off(0));
  ASSERT_EQ(set->Pick(), 0u);  // back in turn
  // A second failure in a row: 2 s; a third: capped at 3 s.
  set->Finish(0, absl::NotFoundError("no such host"));
  *now += absl::ToInt64Nanoseconds(absl::Milliseconds(1999));
  EXPECT_TRUE(set->backing_off(0));
  *now += absl::ToInt64Nanoseconds(absl::Milliseconds(1));
  EXPECT_FALSE(set->backing_off(0));
  set->Pick();  // 1 (turn after 0)
  set->Pick();  // 2
  ASSERT_EQ(set->Pick(), 0u);
  set->Finish(0, absl::UnavailableError("refused"));
  *now += absl::ToInt64Nanoseconds(absl::Milliseconds(2999));
  EXPECT_TRUE(set->backing_off(0));
  *now += absl::ToInt64Nanoseconds(absl::Milliseconds(1));
  EXPECT_FALSE(set->backing_off(0));
  // A success forgives: the next failure is back to 1 s.
  set->Succeeded(0);
  set->Finish(0, absl::UnavailableError("refused"));
  *now += absl::ToInt64Nanoseconds(absl::Seconds(1));
  EXPECT_FALSE(set->backing_off(0));
}

TEST(EndpointSetTest, PoolErrorsDoNotBlameTheEndpoint) {
  auto set = MakeSet(2, {});
  for (const absl::Status& s :
       {absl::ResourceExhaustedError("queue full"),
        absl::FailedPreconditionError("draining"),
        absl::CancelledError("cancelled"),
        absl::DeadlineExceededError("waited too long")}) {
    const size_t pick = set->Pick();
    set->Finish(pick, s);
    EXPECT_FALSE(set->backing_off(pick)) << s;
  }
}

TEST(EndpointSetTest, WhenAllAreBackingOffThePolicyStillPicks) {
  auto now = std::make_shared<int64_t>(0);
  EndpointSetOptions options;
  options.now_ns = [now] { return *now; };
  for (BalancingPolicy policy :
       {BalancingPolicy::kRoundRobin, BalancingPolicy::kPowerOfTwoChoices}) {
    options.policy = policy;
    auto set = MakeSet(2, options);
    set->Finish(set->Pick(), absl::UnavailableError("refused"));
    set->Finish(set->Pick(), absl::UnavailableError("refused"));
    ASSERT_TRUE(set->backing_off(0));
    ASSERT_TRUE(set->backing_off(1));
    const size_t pick = set->Pick();
    EXPECT_LT(pick, 2u);
    EXPECT_EQ(set->outstanding(pick), 1u);
  }
}

TEST(EndpointSetTest, RejectsBadInput) {
  EXPECT_EQ(EndpointSet::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EndpointSet::Create({"a:1", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EndpointSet::Create({"a:1", "b :2"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EndpointSetOptions options;
  options.failure_backoff = absl::Seconds(-1);
  EXPECT_EQ(EndpointSet::Create({"a:1"}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::shared_ptr<EndpointSet>> ok =
      EndpointSet::Create({"a:1", "b:2"});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->size(), 2u);
  EXPECT_EQ((*ok)->endpoint(1), "b:2");
}

}  // namespace
}  // namespace mill
