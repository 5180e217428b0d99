#include <time.h>

#include "base/testing/process_cpu.h"

namespace mill {
namespace testing {

double ProcessCpuMillis() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

}  // namespace testing
}  // namespace mill
