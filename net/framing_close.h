// AbortOnFramingError: the one-line reaction to a framer's error (see
// net/framing.h): close the connection at once and say why.
//
// Kept apart from net/framing.h so that protocol code that only parses
// (//net:framing needs nothing but the ByteBuffer) does not link the
// connection machinery.
//
// Thread-safety: as Connection::Abort (any thread). Ownership: borrows the
// connection.
#ifndef MILL_IO_NET_FRAMING_CLOSE_H_
#define MILL_IO_NET_FRAMING_CLOSE_H_

#include "absl/status/status.h"
#include "net/connection.h"

namespace mill {

// Aborts `conn` (pending output dropped: a peer that broke the framing gets
// nothing more, and its connection's memory is freed now rather than after
// a flush) and returns `error` with the peer named, e.g.
//   RESOURCE_EXHAUSTED: 10.0.0.7:51234: line of at least 65537 bytes ...
// for the caller to log or count. on_close then reports kProtocolError
// with that status.
// An OK `error` leaves the connection alone and returns OK.
absl::Status AbortOnFramingError(Connection& conn, const absl::Status& error);

}  // namespace mill

#endif  // MILL_IO_NET_FRAMING_CLOSE_H_
