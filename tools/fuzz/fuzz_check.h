// Invariant checks for fuzz targets (bazel/fuzz.bzl).
//
// A fuzz target computes an absl::Status with a checker (kept apart from the
// code that feeds the input, so the checker can be unit-tested and reused
// when the fed API changes) and hands it to mill::fuzz::Require. A failed
// check prints the message and aborts: libFuzzer records the input as a
// crash, and the corpus regression test (which runs the same target over the
// committed corpus) fails.
//
// Thread-safety: thread-safe (stateless). Ownership: nothing to own.
#ifndef MILL_IO_TOOLS_FUZZ_FUZZ_CHECK_H_
#define MILL_IO_TOOLS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"

namespace mill::fuzz {

// Aborts with `status`'s message unless it is OK.
inline void Require(const absl::Status& status) {
  if (status.ok()) return;
  std::fprintf(stderr, "FUZZ INVARIANT VIOLATED: %s\n",
               status.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace mill::fuzz

#endif  // MILL_IO_TOOLS_FUZZ_FUZZ_CHECK_H_
