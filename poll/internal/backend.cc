#include "poll/internal/backend.h"

#include <cerrno>
#include <climits>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace mill {
namespace poll_internal {

int TimeoutToMillis(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return -1;
  if (timeout <= absl::ZeroDuration()) return 0;
  // INT_MAX ms is about 24.8 days; anything longer is clamped (Poller waits
  // again with the remaining time). Checked first so the nanosecond count
  // below cannot overflow.
  if (timeout >= absl::Milliseconds(INT_MAX)) return INT_MAX;
  // Ceil: a 0.2 ms remainder waits 1 ms, never 0 (which would spin) and
  // never less than asked. Integer math: this is on every timed Poll.
  const int64_t ns = absl::ToInt64Nanoseconds(timeout);
  return static_cast<int>(ns / 1000000 + (ns % 1000000 != 0 ? 1 : 0));
}

}  // namespace poll_internal
}  // namespace mill
