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

// A large string or buffer handed over is queued as it is: the gathered
// view points into the caller's original storage (no copy); small ones are
// coalesced with their neighbours.
TEST(OutputQueueTest, LargeHandedOverPayloadsAreNotCopied) {
  OutputQueue queue;
  std::string big(OutputQueue::kAdoptMin * 4, 'b');
  const char* const big_data = big.data();
  ByteBuffer buffer;
  buffer.Append(std::string(OutputQueue::kAdoptMin * 2, 'u'));
  const char* const buffer_data = buffer.data();
  queue.AppendBytes("head");
  queue.AppendString(std::move(big));
  queue.AppendBytes("mid");
  queue.AppendBuffer(std::move(buffer));
  queue.AppendBytes("tail");  // not appended to the handed-over buffer
  queue.AppendString(std::string("small"));  // joins "tail"
  absl::string_view views[8];
  ASSERT_EQ(queue.Gather(views, 8), 5u);
  EXPECT_EQ(views[0], "head");
  EXPECT_EQ(views[1].data(), big_data);
  EXPECT_EQ(views[1].size(), OutputQueue::kAdoptMin * 4);
  EXPECT_EQ(views[2], "mid");
  EXPECT_EQ(views[3].data(), buffer_data);
  EXPECT_EQ(views[4], "tailsmall");
  EXPECT_EQ(queue.pending_bytes(), 4 + OutputQueue::kAdoptMin * 6 + 3 + 9);

  // Partly written: the rest of the adopted string is still its storage.
  OutputQueue::Releases releases;
  queue.Consume(4 + 100, &releases);  // "head" is gone
  ASSERT_EQ(queue.Gather(views, 8), 4u);
  EXPECT_EQ(views[0].data(), big_data + 100);
  queue.Consume(queue.pending_bytes(), &releases);
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace net_internal
}  // namespace mill
