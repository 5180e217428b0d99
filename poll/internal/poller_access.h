// Internal: reaches a Poller's backend for what the public API does not
// offer (receive-ahead on io_uring, used by //reactor for //net's
// connections). Thread-safety and ownership: the backend's (backend.h);
// the reference lives as long as the Poller.
#ifndef MILL_IO_POLL_INTERNAL_POLLER_ACCESS_H_
#define MILL_IO_POLL_INTERNAL_POLLER_ACCESS_H_

#include "poll/internal/backend.h"
#include "poll/poller.h"

namespace mill {
namespace poll_internal {

struct PollerAccess {
  static Backend& BackendOf(Poller& poller) { return *poller.backend_; }
};

}  // namespace poll_internal
}  // namespace mill

#endif  // MILL_IO_POLL_INTERNAL_POLLER_ACCESS_H_
