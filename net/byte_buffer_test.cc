// ByteBuffer: the input buffer type, with heap or pooled-block storage.
#include "net/byte_buffer.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "objectpool/buffer_pool.h"

namespace mill {
namespace {

TEST(ByteBufferTest, AppendFindConsumeAndShrink) {
  ByteBuffer b;
  EXPECT_EQ(b.capacity(), 0u);
  b.Append("hello\nwor");
  EXPECT_EQ(b.find('\n'), 5u);
  EXPECT_EQ(b.Take(6), "hello\n");
  EXPECT_EQ(b.view(), "wor");
  b.Append("ld\n");
  EXPECT_EQ(b.view(), "world\n");
  EXPECT_EQ(b.find("ld"), 3u);
  EXPECT_EQ(b.find('x'), ByteBuffer::npos);
  b.Consume(100);
  EXPECT_TRUE(b.empty());
  // A large message grows the buffer; Shrink gives the memory back.
  b.Append(std::string(1 << 20, 'x'));
  EXPECT_GE(b.capacity(), size_t{1} << 20);
  b.Consume((1 << 20) - 3);
  b.Shrink(64);
  EXPECT_EQ(b.view(), "xxx");
  EXPECT_LE(b.capacity(), 64u);
  b.Consume(3);
  b.Shrink();
  EXPECT_EQ(b.capacity(), 0u);
  // PrepareAppend/Commit, and compaction reuses the consumed front.
  absl::Span<char> room = b.PrepareAppend(4);
  ASSERT_GE(room.size(), 4u);
  memcpy(room.data(), "abcd", 4);
  b.Commit(4);
  EXPECT_EQ(b.view(), "abcd");
  ByteBuffer moved = std::move(b);
  EXPECT_EQ(moved.view(), "abcd");
  EXPECT_TRUE(b.empty());
}

// A pooled block is storage like any other: read into in place, given back
// when emptied, and left behind (back to its pool) when the contents grow.
TEST(ByteBufferTest, PooledBlockIsFilledInPlaceAndGoesBack) {
  BufferPool pool(BufferPoolOptions{/*buffer_size=*/1024, /*max_idle=*/4});
  ByteBuffer b;
  b.AdoptBlock(pool.Acquire());
  EXPECT_TRUE(b.has_pooled_block());
  EXPECT_EQ(b.capacity(), 1024u);
  absl::Span<char> room = b.AppendSpace();
  ASSERT_EQ(room.size(), 1024u);
  memcpy(room.data(), "abc", 3);
  b.Commit(3);
  EXPECT_EQ(b.view(), "abc");
  b.AdoptBlock(pool.Acquire());  // has storage: the block goes straight back
  EXPECT_EQ(pool.GetStats().idle, 1u);
  b.Consume(3);
  b.Shrink();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(pool.GetStats().idle, 2u);  // both blocks are back
  // Growth past a block moves to the heap and gives the block back.
  b.AdoptBlock(pool.Acquire());
  b.Append(std::string(1000, 'x'));
  b.Append(std::string(1000, 'y'));
  EXPECT_FALSE(b.has_pooled_block());
  EXPECT_EQ(b.size(), 2000u);
  EXPECT_EQ(b.view().substr(998, 4), "xxyy");
  EXPECT_EQ(pool.GetStats().idle, 2u);
}

// Reads land in the input buffer itself (a block of the loop's pool) and the
// block goes back as soon as the input is consumed: an echo copies nothing

}  // namespace
}  // namespace mill
