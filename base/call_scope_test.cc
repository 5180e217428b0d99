#include "base/call_scope.h"

#include <thread>

#include "gtest/gtest.h"

namespace mill {
namespace {

const CallScopeKind kOuter{"outer"};
const CallScopeKind kInner{"inner"};

TEST(CallScopeTest, NothingIsActiveOutsideAnyScope) {
  int key = 0;
  EXPECT_FALSE(CallScope::Active(kOuter, &key));
  EXPECT_FALSE(CallScope::AnyActive(kOuter));
  EXPECT_EQ(CallScope::Innermost(kOuter), nullptr);
}

TEST(CallScopeTest, ScopesNestAndPopInReverseOrder) {
  int a = 0;
  int b = 0;
  {
    CallScope outer(kOuter, &a);
    EXPECT_TRUE(CallScope::Active(kOuter, &a));
    EXPECT_FALSE(CallScope::Active(kOuter, &b));
    {
      CallScope inner(kOuter, &b);
      EXPECT_TRUE(CallScope::Active(kOuter, &a));
      EXPECT_TRUE(CallScope::Active(kOuter, &b));
      EXPECT_EQ(CallScope::Innermost(kOuter)->key(), &b);
    }
    EXPECT_FALSE(CallScope::Active(kOuter, &b));
    EXPECT_EQ(CallScope::Innermost(kOuter)->key(), &a);
  }
  EXPECT_FALSE(CallScope::AnyActive(kOuter));
}

TEST(CallScopeTest, KindsAreDistinctForTheSameKey) {
  int key = 0;
  CallScope scope(kOuter, &key);
  EXPECT_TRUE(CallScope::Active(kOuter, &key));
  EXPECT_FALSE(CallScope::Active(kInner, &key));
  EXPECT_FALSE(CallScope::AnyActive(kInner));
}

TEST(CallScopeTest, CarriesData) {
  int key = 0;
  int payload = 7;
  CallScope scope(kInner, &key, &payload);
  EXPECT_EQ(CallScope::Find(kInner, &key)->data(), &payload);
}

TEST(CallScopeTest, ScopesBelongToTheirThread) {
  int key = 0;
  CallScope scope(kOuter, &key);
  bool seen_elsewhere = true;
  std::thread other([&] { seen_elsewhere = CallScope::Active(kOuter, &key); });
  other.join();
  EXPECT_FALSE(seen_elsewhere);
  EXPECT_TRUE(CallScope::Active(kOuter, &key));
}

}  // namespace
}  // namespace mill
