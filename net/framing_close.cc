#include "net/framing_close.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace mill {

absl::Status AbortOnFramingError(Connection& conn, const absl::Status& error) {
  if (error.ok()) return error;
  conn.Abort();
  return absl::Status(error.code(), absl::StrCat(conn.peer_address().ToString(),
                                                 ": ", error.message()));
}

}  // namespace mill
