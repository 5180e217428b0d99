#include "base/thread_scratch.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace {

constexpr uint64_t kIntact = 0x5ca7c4ed5ca7c4edULL;
std::atomic<int> intact_destructions{0};
std::atomic<int> broken_destructions{0};

// Records whether its memory still held what the thread wrote when its
// destructor ran (a thread_local Probe fails this on mingw-w64).
struct Probe {
  uint64_t magic = 0;
  std::vector<int> payload;
  ~Probe() {
    (magic == kIntact && payload.size() == 1000 ? intact_destructions
                                                : broken_destructions)++;
  }
};

TEST(ThreadScratchTest, DestroyedIntactOnceAtThreadExit) {
  intact_destructions = 0;
  broken_destructions = 0;
  for (int i = 0; i < 8; ++i) {
    std::thread([] {
      Probe& probe = ThreadScratch<Probe>();
      probe.magic = kIntact;
      probe.payload.assign(1000, 7);
    }).join();
  }
  EXPECT_EQ(intact_destructions.load(), 8);
  EXPECT_EQ(broken_destructions.load(), 0);
}

TEST(ThreadScratchTest, OnePerThreadAndPerTag) {
  struct OtherTag;
  std::string* mine = &ThreadScratch<std::string>();
  EXPECT_EQ(mine, &ThreadScratch<std::string>());
  EXPECT_NE(mine, &(ThreadScratch<std::string, OtherTag>()));
  *mine = "main";
  std::string* theirs = nullptr;
  std::string seen;
  std::thread([&] {
    theirs = &ThreadScratch<std::string>();
    seen = *theirs;
  }).join();
  EXPECT_NE(theirs, mine);
  EXPECT_EQ(seen, "");  // a new thread starts with a fresh object
  EXPECT_EQ(*mine, "main");
}

}  // namespace
}  // namespace mill
