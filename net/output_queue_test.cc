#include "net/internal/output_queue.h"

#include <string>

#include "gtest/gtest.h"

namespace mill {
namespace net_internal {
namespace {

TEST(OutputQueueTest, CoalescesBytesAndGathersUpToAFileRange) {
  OutputQueue queue;
  EXPECT_TRUE(queue.empty());
  queue.AppendBytes("ab");
  queue.AppendBytes("cd");  // joins the run before it
  int released = 0;
  queue.AppendFile(7, 100, 10, [&] { ++released; });
  queue.AppendBytes("ef");
  EXPECT_EQ(queue.pending_bytes(), 16u);
  absl::string_view views[4];
  ASSERT_EQ(queue.Gather(views, 4), 1u);  // stops at the file range
  EXPECT_EQ(views[0], "abcd");
  OutputQueue::Front front = queue.PeekFront();
  EXPECT_EQ(front.fd, -1);
  EXPECT_EQ(front.bytes, "abcd");
}

TEST(OutputQueueTest, ConsumeWalksRunsAndRangesAndHandsBackReleases) {
  OutputQueue queue;
  int released = 0;
  queue.AppendBytes("abc");
  queue.AppendFile(7, 100, 10, [&] { ++released; });
  queue.AppendBytes("xyz");
  OutputQueue::Releases releases;
  queue.Consume(2, &releases);
  EXPECT_EQ(queue.PeekFront().bytes, "c");
  queue.Consume(5, &releases);  // "c" and 4 bytes of the file
  OutputQueue::Front front = queue.PeekFront();
  EXPECT_EQ(front.fd, 7);
  EXPECT_EQ(front.offset, 104u);
  EXPECT_EQ(front.length, 6u);
  EXPECT_TRUE(releases.empty());
  queue.Consume(6, &releases);  // the rest of the file: its release
  ASSERT_EQ(releases.size(), 1u);
  releases[0]();
  EXPECT_EQ(released, 1);
  EXPECT_EQ(queue.PeekFront().bytes, "xyz");
  EXPECT_EQ(queue.pending_bytes(), 3u);
  releases.clear();
  queue.Consume(3, &releases);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.pending_bytes(), 0u);
}

TEST(OutputQueueTest, ClearHandsBackEveryRelease) {
  OutputQueue queue;
  int released = 0;
  queue.AppendFile(3, 0, 5, [&] { ++released; });
  queue.AppendBytes("x");
  queue.AppendFile(4, 0, 5, [&] { ++released; });
  OutputQueue::Releases releases;
  queue.Clear(&releases);
  for (auto& release : releases) release();
  EXPECT_EQ(released, 2);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.pending_bytes(), 0u);
}

}  // namespace
}  // namespace net_internal
}  // namespace mill
