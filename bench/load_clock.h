// The two clocks every load generator in bench/ reads: the process's CPU
// time (user + system, for CPU per request) and the monotonic clock (for
// rates). Header-only; thread-safe (both read the kernel).
#ifndef MILL_IO_BENCH_LOAD_CLOCK_H_
#define MILL_IO_BENCH_LOAD_CLOCK_H_

#include <sys/resource.h>
#include <time.h>

#include <cstdint>

namespace mill {
namespace bench {

// CPU time (user + system) this process used so far, in nanoseconds.
inline int64_t CpuNs() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return (int64_t{usage.ru_utime.tv_sec} + usage.ru_stime.tv_sec) * 1000000000 +
         (int64_t{usage.ru_utime.tv_usec} + usage.ru_stime.tv_usec) * 1000;
}

// CLOCK_MONOTONIC in nanoseconds.
inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace bench
}  // namespace mill

#endif  // MILL_IO_BENCH_LOAD_CLOCK_H_
