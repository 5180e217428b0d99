#include "net/framing_close.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace mill {

absl::Status AbortOnFramingError(Connection& conn, const absl::Status& error) {
  if (error.ok()) return error;
  absl::Status named(error.code(), absl::StrCat(conn.peer_address().ToString(),
                                                ": ", error.message()));
  conn.AbortForProtocolError(named);
  return named;
}

}  // namespace mill
