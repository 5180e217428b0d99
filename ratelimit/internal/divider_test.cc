#include "ratelimit/internal/divider.h"

#include <cstdint>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace mill {
namespace ratelimit_internal {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(DividerTest, ZeroDivisorActsAsOne) {
  Divider d(0);
  EXPECT_EQ(d.divisor(), 1u);
  EXPECT_EQ(d.Divide(12345), 12345u);
}

TEST(DividerTest, SmallDivisorsAndNumeratorsExhaustively) {
  for (uint64_t d = 1; d <= 1000; ++d) {
    Divider divider(d);
    for (uint64_t n = 0; n <= 3000; ++n) {
      ASSERT_EQ(divider.Divide(n), n / d) << n << " / " << d;
    }
    ASSERT_EQ(divider.Divide(kMax), kMax / d) << d;
    ASSERT_EQ(divider.Divide(kMax - 1), (kMax - 1) / d) << d;
  }
}

TEST(DividerTest, PowersOfTwoAndNeighbours) {
  for (int bit = 0; bit < 64; ++bit) {
    for (uint64_t d : {(uint64_t{1} << bit) - 1, uint64_t{1} << bit,
                       (uint64_t{1} << bit) + 1}) {
      if (d == 0) continue;
      Divider divider(d);
      for (uint64_t n : {uint64_t{0}, uint64_t{1}, d - 1, d, d + 1, 2 * d - 1,
                         kMax / 2, kMax - 1, kMax}) {
        ASSERT_EQ(divider.Divide(n), n / d) << n << " / " << d;
      }
    }
  }
}

// The divisors TokenBucket uses: 1e12 / gcd(rate * 1000, 1e12).
TEST(DividerTest, RateDivisors) {
  std::mt19937_64 rng(7);
  for (uint64_t d : {uint64_t{1}, uint64_t{3}, uint64_t{1000000},
                     uint64_t{1000000000}, uint64_t{10000000000},
                     uint64_t{500000000000}, uint64_t{1000000000000}}) {
    Divider divider(d);
    for (int i = 0; i < 100000; ++i) {
      const uint64_t n = rng() >> (rng() % 64);
      ASSERT_EQ(divider.Divide(n), n / d) << n << " / " << d;
      const uint64_t multiple = n / d * d;
      ASSERT_EQ(divider.Divide(multiple), n / d) << multiple << " / " << d;
      if (multiple > 0) {
        ASSERT_EQ(divider.Divide(multiple - 1), (multiple - 1) / d);
      }
    }
  }
}

TEST(DividerTest, RandomDivisorsAndNumerators) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    uint64_t d = rng() >> (rng() % 64);
    if (d == 0) d = 1;
    Divider divider(d);
    for (int j = 0; j < 20; ++j) {
      const uint64_t n = rng() >> (rng() % 64);
      ASSERT_EQ(divider.Divide(n), n / d) << n << " / " << d;
      const uint64_t multiple = n / d * d;
      ASSERT_EQ(divider.Divide(multiple), n / d) << multiple << " / " << d;
      if (multiple > 0) {
        ASSERT_EQ(divider.Divide(multiple - 1), (multiple - 1) / d);
      }
    }
  }
}

}  // namespace
}  // namespace ratelimit_internal
}  // namespace mill
