#include <windows.h>

#include <cstdint>

#include "base/testing/process_cpu.h"

namespace mill {
namespace testing {
namespace {

uint64_t Ticks(const FILETIME& t) {
  return (static_cast<uint64_t>(t.dwHighDateTime) << 32) | t.dwLowDateTime;
}

}  // namespace

double ProcessCpuMillis() {
  FILETIME creation, exit, kernel, user;
  if (!GetProcessTimes(GetCurrentProcess(), &creation, &exit, &kernel, &user)) {
    return 0;
  }
  return static_cast<double>(Ticks(kernel) + Ticks(user)) / 1e4;  // 100 ns
}

}  // namespace testing
}  // namespace mill
