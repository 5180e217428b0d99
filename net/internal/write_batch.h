// WriteBatch: the connections whose output this thread is gathering while
// it runs their callbacks (see "Output" in net/connection.h).
// Internal: not part of the API.
//
// A Scope is opened around every callback and Dispatch task of a
// connection; a Send to that connection inside it queues its bytes and
// records the connection here instead of writing. When the scope closes,
// the connection writes what it gathered: one writev for all the Sends of
// one callback, however many there were. Only a connection's own callbacks
// gather its Sends: a Send to another connection is written at once, so a
// callback that sends elsewhere and waits for the answer never waits on
// itself.
//
// Thread-safety: thread-local; each thread has its own batch. Ownership:
// borrows the recorded connections (each is alive while its scope is open).
#ifndef MILL_IO_NET_INTERNAL_WRITE_BATCH_H_
#define MILL_IO_NET_INTERNAL_WRITE_BATCH_H_

#include <algorithm>
#include <vector>

#include "base/thread_scratch.h"
#include "net/connection.h"

namespace mill {
namespace net_internal {

class WriteBatch {
 public:
  // Open while one of `conn`'s callbacks (or tasks) runs on this thread;
  // writes what `conn` gathered when it closes. Never throws (flushing runs
  // no user code but file-range releases).
  class Scope {
   public:
    explicit Scope(Connection* conn) : conn_(conn) {}
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() {
      std::vector<Connection*>& gathering = Mine();
      if (gathering.empty()) return;
      auto it = std::find(gathering.begin(), gathering.end(), conn_);
      if (it == gathering.end()) return;
      gathering.erase(it);
      Flush(conn_);
    }

   private:
    Connection* const conn_;
  };

  // `conn` (whose scope is open on this thread) started gathering.
  static void Add(Connection* conn) { Mine().push_back(conn); }

 private:
  static std::vector<Connection*>& Mine() {
    struct Gathering;
    return ThreadScratch<std::vector<Connection*>, Gathering>();
  }
  static void Flush(Connection* conn);
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_WRITE_BATCH_H_
