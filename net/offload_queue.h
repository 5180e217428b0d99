// OffloadQueue: blocking or CPU-heavy work of one connection, run on the
// loop's compute pool, with the replies delivered back in the connection's
// own serial context (Connection::Post), in request order, and at most
// `max_in_flight` requests outstanding.
//
// A handler must not block (it holds a loop worker, or the loop itself in
// direct mode): a request that needs a database call, a file read or a
// second of CPU goes to the compute pool. Doing that by hand loses three
// things this class keeps:
//  - order: jobs finish in any order; replies go out in request order (a
//    pipelining client gets its answers in the order it asked);
//  - context: each reply runs as a task of the connection (excluded from
//    its callbacks, so it may use input() and Send, and its Sends gather);
//  - a bound: a client that pipelines faster than the pool computes would
//    grow the pool's queue without limit. At max_in_flight outstanding jobs
//    Submit refuses (has_room() is false) and reading pauses; when a reply
//    has been delivered, reading resumes and on_data runs again for the
//    input left unconsumed.
//
//   // In on_connect: conn->SetContext(mill::OffloadQueue::Create(conn, 16));
//   void OnData(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
//     auto jobs = conn->GetContext<mill::OffloadQueue>();
//     size_t eol;
//     while (jobs->has_room() &&
//            (eol = input.find('\n')) != mill::ByteBuffer::npos) {
//       std::string request = input.Take(eol + 1);
//       (void)jobs->Submit([request = std::move(request)] {
//         std::string answer = SlowLookup(request);  // on the compute pool
//         return [answer = std::move(answer)](const mill::ConnectionPtr& c) {
//           (void)c->Send(answer);  // in order, in the connection's context
//         };
//       });
//     }
//     // Lines left in `input` come back in on_data once there is room.
//   }
//
// Thread-safety: every member may be called from any thread. Ownership:
// shared; it holds its connection weakly (a reply for a connection that is
// gone is dropped) and jobs hold the queue. Pausing uses the connection's
// PauseReading/ResumeReading: do not pause the same connection by hand.
#ifndef MILL_IO_NET_OFFLOAD_QUEUE_H_
#define MILL_IO_NET_OFFLOAD_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "base/mutex.h"
#include "net/connection.h"

namespace mill {

class OffloadQueue : public std::enable_shared_from_this<OffloadQueue> {
 public:
  // What a job returns: run in the connection's context, in order.
  using Reply = absl::AnyInvocable<void(const ConnectionPtr&)>;
  // Runs on the compute pool.
  using Job = absl::AnyInvocable<Reply()>;

  // `max_in_flight` >= 1: jobs submitted and not yet delivered.
  static std::shared_ptr<OffloadQueue> Create(const ConnectionPtr& conn,
                                              size_t max_in_flight);

  OffloadQueue(const OffloadQueue&) = delete;
  OffloadQueue& operator=(const OffloadQueue&) = delete;

  // Runs `job` on the connection's loop's compute pool; its reply runs in
  // the connection's context after every earlier job's reply. A job that
  // returns an empty Reply (or throws) delivers nothing but keeps its place.
  // ResourceExhausted (and reading paused until a reply is delivered) at
  // max_in_flight; FailedPrecondition when the connection is gone or the
  // pool refuses work (the loop is being destroyed).
  absl::Status Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  // Another Submit would be accepted now.
  bool has_room() const ABSL_LOCKS_EXCLUDED(mu_);
  // Submitted and not yet delivered.
  size_t in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  // Most in flight at once so far (for tests and metrics).
  size_t peak_in_flight() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct PassKey {};

 public:
  OffloadQueue(PassKey, const ConnectionPtr& conn, size_t max_in_flight);

 private:
  // A job's place in line: its reply once finished.
  struct Slot {
    bool done = false;
    Reply reply;
  };

  // Stores job `seq`'s reply and, if it is next in line, posts delivery.
  void Finish(uint64_t seq, Reply reply) ABSL_LOCKS_EXCLUDED(mu_);
  // In the connection's context: runs every finished reply at the head.
  void Deliver(const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);

  const std::weak_ptr<Connection> conn_;
  EventLoop* const loop_;
  const size_t max_in_flight_;

  mutable Mutex mu_;
  // slots_[i] is job first_seq_ + i.
  std::deque<Slot> slots_ ABSL_GUARDED_BY(mu_);
  uint64_t first_seq_ ABSL_GUARDED_BY(mu_) = 0;
  size_t peak_ ABSL_GUARDED_BY(mu_) = 0;
  bool delivery_posted_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;  // we paused reading
};

}  // namespace mill

#endif  // MILL_IO_NET_OFFLOAD_QUEUE_H_
