#include "base/os_thread.h"

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace mill {
namespace {

std::string NameOfAThreadNamed(const std::string& name) {
  std::string seen;
  std::thread t([&] {
    SetCurrentThreadName(name);
    seen = CurrentThreadName();
  });
  t.join();
  return seen;
}

TEST(OsThreadTest, NamesTheCallingThread) {
  EXPECT_EQ(NameOfAThreadNamed("mill-test-1"), "mill-test-1");
}

TEST(OsThreadTest, LongNamesAreCutToFifteenBytes) {
  EXPECT_EQ(NameOfAThreadNamed("a-very-long-thread-name"), "a-very-long-thr");
}

TEST(OsThreadTest, AtLeastOneCpuAndNoMoreThanTheMachineHas) {
  const int n = AvailableCpus();
  EXPECT_GE(n, 1);
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw != 0) {
    EXPECT_LE(n, static_cast<int>(hw));
  }
}

}  // namespace
}  // namespace mill
