#include "connpool/internal/intrusive_list.h"

#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace connpool_internal {
namespace {

struct TagA {};
struct TagB {};

struct Item : ListNode<TagA>, ListNode<TagB> {
  explicit Item(int v) : value(v) {}
  int value;
};

template <typename Tag>
std::vector<int> Values(const IntrusiveList<Item, Tag>& list) {
  std::vector<int> out;
  for (Item* it = list.front(); it != nullptr; it = list.next(it)) {
    out.push_back(it->value);
  }
  return out;
}

TEST(IntrusiveListTest, PushPopBothEnds) {
  Item a(1), b(2), c(3);
  IntrusiveList<Item, TagA> list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.front(), nullptr);
  EXPECT_EQ(list.pop_back(), nullptr);
  list.push_front(&a);  // 1
  list.push_front(&b);  // 2 1
  list.push_back(&c);   // 2 1 3
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(Values(list), (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(list.back(), &c);
  EXPECT_EQ(list.prev(&c), &a);
  EXPECT_EQ(list.prev(&b), nullptr);
  EXPECT_EQ(list.pop_front(), &b);
  EXPECT_EQ(list.pop_back(), &c);
  EXPECT_EQ(list.pop_back(), &a);
  EXPECT_TRUE(list.empty());
  EXPECT_FALSE(static_cast<ListNode<TagA>&>(a).linked());
}

TEST(IntrusiveListTest, EraseFromTheMiddleAndTwoListsAtOnce) {
  Item a(1), b(2), c(3);
  IntrusiveList<Item, TagA> by_a;
  IntrusiveList<Item, TagB> by_b;
  for (Item* it : {&a, &b, &c}) {
    by_a.push_back(it);
    by_b.push_front(it);
  }
  EXPECT_EQ(Values(by_a), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(Values(by_b), (std::vector<int>{3, 2, 1}));
  by_a.erase(&b);
  EXPECT_EQ(Values(by_a), (std::vector<int>{1, 3}));
  EXPECT_EQ(Values(by_b), (std::vector<int>{3, 2, 1}));  // untouched
  by_b.erase(&c);
  EXPECT_EQ(Values(by_b), (std::vector<int>{2, 1}));
  EXPECT_EQ(by_a.size(), 2u);
  EXPECT_EQ(by_b.size(), 2u);
  // Re-link after erase.
  by_a.push_front(&b);
  EXPECT_EQ(Values(by_a), (std::vector<int>{2, 1, 3}));
}

TEST(IntrusiveListTest, DestructorUnlinksWhatIsLeft) {
  Item a(1), b(2);
  {
    IntrusiveList<Item, TagA> list;
    list.push_back(&a);
    list.push_back(&b);
  }
  EXPECT_FALSE(static_cast<ListNode<TagA>&>(a).linked());
  EXPECT_FALSE(static_cast<ListNode<TagA>&>(b).linked());
}

}  // namespace
}  // namespace connpool_internal
}  // namespace mill
