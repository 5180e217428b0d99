#include "net/internal/idle_tracker.h"

#include <algorithm>
#include <utility>

#include "base/monotonic_clock.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"

namespace mill {
namespace net_internal {

IdleTracker::IdleTracker(EventLoop* loop, absl::Duration timeout)
    : loop_(loop),
      timeout_(timeout),
      timeout_ns_(absl::ToInt64Nanoseconds(timeout)),
      bucket_ns_(std::clamp<int64_t>(timeout_ns_ / 16, 1000000, 1000000000)) {}

void IdleTracker::Add(Node* node, Connection* conn, int64_t last_activity_ns) {
  MutexLock lock(&mu_);
  // Every node is the same member of a Connection: its offset is one
  // number, so nodes need not point back at their connections.
  node_offset_ = reinterpret_cast<char*>(node) - reinterpret_cast<char*>(conn);
  if (node->bucket >= 0) UnlinkLocked(node);
  FileLocked(node, last_activity_ns);
  ScheduleLocked();
}

Connection* IdleTracker::ConnectionOf(Node* node) const {
  return reinterpret_cast<Connection*>(reinterpret_cast<char*>(node) -
                                       node_offset_);
}

void IdleTracker::Remove(Node* node) {
  MutexLock lock(&mu_);
  if (node->bucket >= 0) UnlinkLocked(node);
}

void IdleTracker::FileLocked(Node* node, int64_t last_activity_ns) {
  // The first bucket whose start is at or after the expiry: never early.
  const int64_t expiry = last_activity_ns + timeout_ns_;
  const int64_t bucket = (expiry + bucket_ns_ - 1) / bucket_ns_;
  Node*& head = buckets_[bucket];
  node->bucket = bucket;
  node->prev = nullptr;
  node->next = head;
  if (head != nullptr) head->prev = node;
  head = node;
}

void IdleTracker::UnlinkLocked(Node* node) {
  auto it = buckets_.find(node->bucket);
  if (node->prev != nullptr) {
    node->prev->next = node->next;
  } else if (it != buckets_.end()) {
    it->second = node->next;
  }
  if (node->next != nullptr) node->next->prev = node->prev;
  if (it != buckets_.end() && it->second == nullptr) buckets_.erase(it);
  node->prev = node->next = nullptr;
  node->bucket = -1;
}

void IdleTracker::ScheduleLocked() {
  if (buckets_.empty()) return;
  const int64_t first = buckets_.begin()->first;
  // One timer at a time, for the earliest bucket; a later one is scheduled
  // when it fires.
  if (scheduled_bucket_ >= 0 && scheduled_bucket_ <= first) return;
  scheduled_bucket_ = first;
  const int64_t delay_ns =
      std::max<int64_t>(0, first * bucket_ns_ - MonotonicNanos());
  std::weak_ptr<IdleTracker> weak = weak_from_this();
  const EventLoop::TimerId id =
      loop_->RunAfter(absl::Nanoseconds(delay_ns), [weak] {
        if (std::shared_ptr<IdleTracker> self = weak.lock()) self->OnTimer();
      });
  if (!id.valid()) scheduled_bucket_ = -1;  // the loop stopped
}

void IdleTracker::OnTimer() {
  std::vector<std::weak_ptr<Connection>> expired;
  {
    MutexLock lock(&mu_);
    scheduled_bucket_ = -1;
    const int64_t now = MonotonicNanos();
    while (!buckets_.empty() && buckets_.begin()->first * bucket_ns_ <= now) {
      Node* node = buckets_.begin()->second;
      UnlinkLocked(node);
      Connection* conn = ConnectionOf(node);
      const int64_t last = ConnectionAccess::LastActivityNanos(*conn);
      if (now - last >= timeout_ns_) {
        // Stays unfiled; the connection closes (or already is closing).
        expired.push_back(ConnectionAccess::WeakOf(*conn));
      } else {
        FileLocked(node, last);  // active meanwhile: the remainder
      }
    }
    ScheduleLocked();
  }
  for (const std::weak_ptr<Connection>& weak : expired) {
    if (ConnectionPtr conn = weak.lock()) ConnectionAccess::IdleExpired(conn);
  }
}

}  // namespace net_internal
}  // namespace mill
