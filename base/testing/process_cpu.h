// ProcessCpuMillis: CPU time this process has used so far (user + system,
// all threads), in milliseconds, for tests that check something idle does
// not burn CPU. clock_gettime(CLOCK_PROCESS_CPUTIME_ID) on POSIX,
// GetProcessTimes on Windows (100 ns units, updated at the scheduler tick).
// Test-only (//base/testing:process_cpu).
#ifndef MILL_IO_BASE_TESTING_PROCESS_CPU_H_
#define MILL_IO_BASE_TESTING_PROCESS_CPU_H_

namespace mill {
namespace testing {

double ProcessCpuMillis();

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_BASE_TESTING_PROCESS_CPU_H_
