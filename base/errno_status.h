// ErrnoStatus: a failed system call's errno as an absl::Status, the one
// conversion every Mill-IO package uses so that the same error reads and
// maps the same everywhere.
//
// The code is absl::ErrnoToStatusCode's, except EBADF, which maps to
// InvalidArgument (a bad descriptor is an invalid argument to whatever took
// it; absl says FailedPrecondition). The message is "<what>: <strerror
// text>".
//
// Thread-safety: safe from any thread (strerror_r; strerror_s on Windows,
// errno_status_win.cc; not absl's strerror cache, which lives in Debian's
// uninstrumented Abseil and makes ThreadSanitizer report races on first use
// from several threads).
#ifndef MILL_IO_BASE_ERRNO_STATUS_H_
#define MILL_IO_BASE_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mill {

absl::Status ErrnoStatus(int error_number, absl::string_view what);

}  // namespace mill

#endif  // MILL_IO_BASE_ERRNO_STATUS_H_
