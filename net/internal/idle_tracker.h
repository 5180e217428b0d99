// IdleTracker: the idle timeout of every connection of one TcpServer or
// TcpClient, with one loop timer for all of them instead of one per
// connection. Internal: not part of the API.
//
// Each connection embeds a Node (24 bytes, no allocation) and sits in one
// bucket, keyed by when its timeout would expire if it stayed idle from the
// moment it was filed. Activity does not move it (that would take this lock
// on every read); when its bucket comes due the tracker looks at the
// connection's last activity and either expires it or files it again for
// the remainder. Buckets are timeout/16 wide (1 ms to 1 s): a connection
// closes at its timeout, never before, and at most one bucket width after.
//
// Thread-safety: thread-safe. Ownership: nodes are borrowed; a connection
// removes its node before it is destroyed.
#ifndef MILL_IO_NET_INTERNAL_IDLE_TRACKER_H_
#define MILL_IO_NET_INTERNAL_IDLE_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "reactor/event_loop.h"

namespace mill {
class Connection;

namespace net_internal {

class IdleTracker : public std::enable_shared_from_this<IdleTracker> {
 public:
  // Intrusive list node, embedded in each tracked connection (at the same
  // offset in every one: the tracker finds the connection from its node).
  struct Node {
    Node* prev = nullptr;
    Node* next = nullptr;
    int64_t bucket = -1;  // -1: not filed
  };

  IdleTracker(EventLoop* loop, absl::Duration timeout);

  absl::Duration timeout() const { return timeout_; }

  // Files `node` (of `conn`, whose last activity was at `last_activity_ns`
  // on MonotonicNanos()) under its expiry; refiles it if already filed.
  void Add(Node* node, Connection* conn, int64_t last_activity_ns)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Unfiles `node` (nothing if not filed).
  void Remove(Node* node) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Connection* ConnectionOf(Node* node) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FileLocked(Node* node, int64_t last_activity_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnlinkLocked(Node* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnTimer() ABSL_LOCKS_EXCLUDED(mu_);

  EventLoop* const loop_;
  const absl::Duration timeout_;
  const int64_t timeout_ns_;
  const int64_t bucket_ns_;

  Mutex mu_;
  std::map<int64_t, Node*> buckets_ ABSL_GUARDED_BY(mu_);  // -> first node
  int64_t scheduled_bucket_ ABSL_GUARDED_BY(mu_) = -1;     // the timer's bucket
  // Where a Node sits in its Connection (learned from the first Add).
  ptrdiff_t node_offset_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_IDLE_TRACKER_H_
