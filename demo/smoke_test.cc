#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
TEST(Smoke, Works) {
  absl::flat_hash_map<int, int> m{{1, 2}};
  absl::StatusOr<int> s = absl::InvalidArgumentError("x");
  EXPECT_EQ(m[1], 2);
  EXPECT_FALSE(s.ok());
}
