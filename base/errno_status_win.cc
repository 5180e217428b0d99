#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"

namespace mill {

absl::Status ErrnoStatus(int error_number, absl::string_view what) {
  char buffer[128];
  if (strerror_s(buffer, sizeof(buffer), error_number) != 0) {
    buffer[0] = '\0';
  }
  const absl::StatusCode code = error_number == EBADF
                                    ? absl::StatusCode::kInvalidArgument
                                    : absl::ErrnoToStatusCode(error_number);
  return absl::Status(code, absl::StrCat(what, ": ", buffer));
}

}  // namespace mill
