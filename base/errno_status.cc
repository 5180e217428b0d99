#include "base/errno_status.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace mill {

absl::Status ErrnoStatus(int error_number, absl::string_view what) {
  char buffer[128];
  const char* text =
      strerror_r(error_number, buffer, sizeof(buffer));  // GNU variant
  const absl::StatusCode code = error_number == EBADF
                                    ? absl::StatusCode::kInvalidArgument
                                    : absl::ErrnoToStatusCode(error_number);
  return absl::Status(code, absl::StrCat(what, ": ", text));
}

}  // namespace mill
