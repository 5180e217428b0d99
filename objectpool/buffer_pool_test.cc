#include "objectpool/buffer_pool.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace {

TEST(BufferTest, SizeCapacityAndSpans) {
  Buffer buf(16);
  EXPECT_EQ(buf.capacity(), 16u);
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.span().size(), 0u);
  EXPECT_EQ(buf.spare().data(), buf.data());
  EXPECT_EQ(buf.spare().size(), 16u);

  std::memcpy(buf.spare().data(), "hello", 5);
  buf.resize(5);
  EXPECT_FALSE(buf.empty());
  EXPECT_EQ(std::string(buf.span().data(), buf.span().size()), "hello");
  EXPECT_EQ(buf.spare().data(), buf.data() + 5);
  EXPECT_EQ(buf.spare().size(), 11u);
  const Buffer& cbuf = buf;
  EXPECT_EQ(cbuf.span().data(), cbuf.data());
  EXPECT_EQ(cbuf.span().size(), 5u);

  buf.resize(16);
  EXPECT_EQ(buf.spare().size(), 0u);
  buf.resize(2);
  EXPECT_EQ(std::string(buf.span().data(), 2), "he");
  buf.clear();
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_EQ(buf.capacity(), 16u);
}

TEST(BufferDeathTest, ResizeBeyondCapacityAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Buffer buf(8);
  EXPECT_DEATH(buf.resize(9), "beyond capacity 8");
}

TEST(BufferPoolTest, DefaultsTo8KiBBuffers) {
  BufferPool pool;
  EXPECT_EQ(pool.buffer_size(), 8192u);
  EXPECT_EQ(pool.max_idle(), 128u);
  BufferPool::Handle buf = pool.Acquire();
  ASSERT_TRUE(buf);
  EXPECT_EQ(buf->capacity(), 8192u);
  EXPECT_EQ(buf->size(), 0u);
}

TEST(BufferPoolTest, ReturnedBufferIsRecycledEmpty) {
  BufferPoolOptions options;
  options.buffer_size = 100;
  BufferPool pool(options);
  char* storage;
  {
    BufferPool::Handle buf = pool.Acquire();
    EXPECT_EQ(buf->capacity(), 100u);
    storage = buf->data();
    std::memset(buf->data(), 'x', 60);
    buf->resize(60);
  }
  BufferPool::Handle buf = pool.Acquire();
  EXPECT_EQ(buf->data(), storage);
  EXPECT_EQ(buf->size(), 0u);
  EXPECT_EQ(buf->capacity(), 100u);
  ObjectPoolStats s = pool.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.returned, 1u);
}

TEST(BufferPoolTest, PrefillAndMaxIdle) {
  BufferPoolOptions options;
  options.buffer_size = 64;
  options.max_idle = 4;
  BufferPool pool(options);
  EXPECT_EQ(pool.Prefill(10), 4u);
  std::vector<BufferPool::Handle> held;
  for (int i = 0; i < 6; ++i) held.push_back(pool.Acquire());
  held.clear();
  ObjectPoolStats s = pool.GetStats();
  EXPECT_EQ(s.hits, 4u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.returned, 4u);
  EXPECT_EQ(s.dropped, 2u);
  EXPECT_EQ(s.idle, 4u);
}

TEST(BufferPoolTest, ReleasedBufferIsOwnedByCaller) {
  BufferPool pool;
  BufferPool::Handle buf = pool.Acquire();
  buf->resize(3);
  std::unique_ptr<Buffer> owned = buf.Release();
  EXPECT_FALSE(buf);
  EXPECT_EQ(owned->size(), 3u);
  EXPECT_EQ(pool.GetStats().released, 1u);
}

TEST(BufferPoolTest, BufferOutlivesPool) {
  std::unique_ptr<BufferPool> pool;
  pool = std::make_unique<BufferPool>();
  BufferPool::Handle buf = pool->Acquire();
  pool.reset();
  std::memset(buf->data(), 'y', buf->capacity());
  buf->resize(buf->capacity());
  EXPECT_EQ(buf->span()[8191], 'y');
  buf.Reset();  // Freed, not recycled; ASan checks it is freed once.
}

// Worker threads fill whole buffers with their own byte and check them after
// a yield: a buffer shared by two holders would show a foreign byte.
TEST(BufferPoolTest, ConcurrentHoldersNeverShareABuffer) {
  BufferPoolOptions options;
  options.buffer_size = 512;
  options.max_idle = 16;
  BufferPool pool(options);
  std::atomic<int> corrupted{0};
  constexpr int kThreads = 3;
  constexpr int kIterations = 3000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const char mark = static_cast<char>('a' + t);
      std::vector<BufferPool::Handle> held;
      for (int i = 0; i < kIterations; ++i) {
        BufferPool::Handle buf = pool.Acquire();
        if (buf->size() != 0) corrupted.fetch_add(1);
        std::memset(buf->spare().data(), mark, buf->spare().size());
        buf->resize(buf->capacity());
        held.push_back(std::move(buf));
        if (i % 3 == 0) std::this_thread::yield();
        if (held.size() == 3 || i + 1 == kIterations) {
          for (auto& h : held) {
            for (char ch : h->span()) {
              if (ch != mark) {
                corrupted.fetch_add(1);
                break;
              }
            }
          }
          held.clear();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(corrupted.load(), 0);
  ObjectPoolStats s = pool.GetStats();
  EXPECT_EQ(s.hits + s.misses, uint64_t{kThreads * kIterations});
  EXPECT_EQ(s.created, s.idle + s.dropped);
  EXPECT_LE(s.idle, 16u);
}

}  // namespace
}  // namespace mill
