// The few things about threads and CPUs the standard library does not say,
// one implementation per platform (os_thread_posix.cc, os_thread_win.cc).
//
// Thread-safety: safe from any thread.
#ifndef MILL_IO_BASE_OS_THREAD_H_
#define MILL_IO_BASE_OS_THREAD_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace mill {

// Longest thread name kept, in bytes: Linux's limit (16 with the NUL),
// applied on every platform so that a thread has the same name everywhere.
inline constexpr size_t kMaxThreadName = 15;

// Names the calling thread, as debuggers, `top -H` and crash dumps show it:
// pthread_setname_np on Linux, SetThreadDescription on Windows (ignored
// where the system has neither). Names longer than kMaxThreadName bytes are
// cut to that length.
void SetCurrentThreadName(absl::string_view name);

// The calling thread's name ("" if it has none or the system cannot say).
std::string CurrentThreadName();

// CPUs this process may run on: what `taskset`, a cpuset or a Windows job's
// affinity mask allows, which std::thread::hardware_concurrency() ignores
// (sched_getaffinity on Linux, GetProcessAffinityMask on Windows). At least
// 1.
int AvailableCpus();

}  // namespace mill

#endif  // MILL_IO_BASE_OS_THREAD_H_
