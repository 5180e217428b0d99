// Internal: receive-ahead for //net's connections on an io_uring loop. The
// poller's backend receives a stream socket's bytes itself (multishot
// receives into the ring's provided buffers) and reports the registration
// readable when they are there; the connection's transport takes them with
// Receive instead of recv(2). See poll/internal/backend.h for the contract
// and docs/ARCHITECTURE.md ("io_uring") for why.
//
// Thread-safety: as the backend's: any thread. Ownership: nothing is kept;
// `handler` must be the RegisteredHandler of a live registration of
// `loop` (between Register and Deregister) for Start, Receive and Peek.
#ifndef MILL_IO_REACTOR_INTERNAL_RECEIVE_AHEAD_H_
#define MILL_IO_REACTOR_INTERNAL_RECEIVE_AHEAD_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "reactor/event_handler.h"
#include "reactor/event_loop.h"

namespace mill {
namespace reactor_internal {

struct ReceiveAhead {
  // Whether every poller of `loop` can receive ahead (io_uring with
  // provided buffer rings and multishot receives, Linux 6.0). Decided when
  // the loop was created; then Start cannot fail for want of support.
  static bool Supported(const EventLoop& loop);
  // Starts it for `handler`'s registration.
  static absl::Status Start(EventLoop& loop, RegisteredHandler& handler);
  // Backend::Receive and Backend::PeekReceived for that registration.
  static int64_t Receive(EventLoop& loop, RegisteredHandler& handler, char* out,
                         size_t max, int* error);
  static int Peek(EventLoop& loop, RegisteredHandler& handler, int* error);
};

}  // namespace reactor_internal
}  // namespace mill

#endif  // MILL_IO_REACTOR_INTERNAL_RECEIVE_AHEAD_H_
