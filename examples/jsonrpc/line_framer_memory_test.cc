// LineFramer's memory after long lines, measured as the process's heap bytes
// in use: glibc's mallinfo2 (or the sanitizer allocator's count). Linux
// only: mallinfo2 is glibc's.
#include <malloc.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "examples/jsonrpc/line_framer.h"
#include "gtest/gtest.h"

#ifdef MILL_IO_SANITIZER
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace mill::jsonrpc {
namespace {

// Heap bytes in use by the whole process: the sanitizer allocator's count
// under ASan/TSan (which replace malloc), glibc's otherwise.
size_t HeapBytesInUse() {
#ifdef MILL_IO_SANITIZER
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

// Regression: the buffer kept its capacity after a line that straddled two
// feeds, so one 1 MiB line pinned 1 MiB for the rest of the connection.
TEST(LineFramerTest, ReleasesBufferMemoryAfterALongLine) {
  const std::string head(900 * 1024, 'a');
  const std::string tail(100 * 1024, 'b');
  auto framer = std::make_unique<LineFramer>();
  const size_t before = HeapBytesInUse();
  {
    std::vector<LineFramer::Frame> frames;
    framer->Feed(head, &frames);  // Buffered: no '\n' yet.
    EXPECT_GE(framer->buffered_bytes(), head.size());
    framer->Feed(tail + "\nsmall", &frames);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].line.size(), head.size() + tail.size());
  }  // The frame (the caller's copy of the line) is gone.
  EXPECT_EQ(framer->buffered_bytes(), 5u);
  const size_t after = HeapBytesInUse();
  // Only the 5-byte partial line remains; allow for allocator noise.
  EXPECT_LT(after, before + 64 * 1024)
      << "the framer still holds " << (after - before) << " bytes";
  // Same after an oversized line was dropped.
  std::vector<LineFramer::Frame> frames;
  framer->Feed(std::string(1100 * 1024, 'c'), &frames);
  framer->Feed("\n", &frames);
  EXPECT_LT(HeapBytesInUse(), before + 64 * 1024);
}

}  // namespace
}  // namespace mill::jsonrpc
