// EventLoop: the Mill-IO reactor. It polls registered file descriptors and
// runs their handlers, either on a set of loop threads that poll and handle
// themselves (pool mode, the default: a handler may block without stalling
// other sources) or inline on the one thread that calls Run() (direct mode).
//
// Threads. In DispatchMode::kPool the loop runs `workers` threads (the thread
// that calls Run() is one of them). Up to `polling_threads` of them each own a
// poller (one epoll set) and run the handlers of the sources registered on it
// on the thread that polled them: nothing crosses threads on the fast path.
// The others stand by; when a handler has been running for longer than
// `takeover_delay` (10 ms), a standby thread takes over its poller (and the
// events of its batch not yet handled), so a blocking handler delays only
// itself. See docs/ARCHITECTURE.md ("Dispatch") for the design and its
// measurements.
//
// Thread-safety: every public method may be called from any thread, including
// from inside a handler, except that Run() runs on one thread at a time and
// the destructor must not race with any other call. Stop() is also
// async-signal-safe.
//
// Ownership: the loop owns its pollers, threads, compute pool and buffer
// pool. It shares ownership of each registered handler until the handler's
// last invocation (a RegisteredHandler, see reactor/event_handler.h, also
// holds the loop's state for its registration, which then costs no
// allocation of its own). It never owns or closes the registered file
// descriptors: Deregister a descriptor before closing it. (If a descriptor
// is closed first and its number is reused by a newer registration, the
// loop notices: the stale registration's Reregister and Deregister fail
// with FailedPrecondition and never touch the newer one. With the poll(2)
// and IOCP backends the newer Register fails with AlreadyExists until the
// stale one is deregistered.)
//
// Guarantees (each is covered by reactor/event_loop_test.cc, in every mode,
// for plain and for embedded handlers):
//  1. Per-source ordering: for one registration, handler invocations never
//     overlap, and readiness is delivered in the order it was observed.
//  2. No lost readiness: readiness that arises while the handler runs (new
//     data, say) is delivered after it returns. Sources are level-checked:
//     registrations are level-triggered; in pool mode a source whose handler
//     runs on one thread is never run by another meanwhile (a thread that
//     polls it then disarms it, and the running invocation re-arms it when it
//     returns, which reports it again at once if it is still ready).
//  3. Safe deregistration: once Deregister(token) returns on a thread other
//     than the one running that source's handler, the handler is not running
//     and will never be called again. Called from inside its own handler, no
//     further call follows the current one. The handler object is destroyed
//     only after its last invocation. (Deregister waits for an invocation in
//     flight: two handlers must not deregister each other at the same time.
//     Deregister(token, on_released) never waits: it removes the
//     registration at once and runs on_released when no invocation is
//     running or can start, which is where to close the descriptor.)
//  4. A handler that throws does not kill the loop or a thread: the
//     exception is counted (Stats::handler_exceptions) and reported through
//     EventLoopOptions::on_handler_exception; the source stays registered.
//  5. Stop() wakes every polling thread at once, so under load Run() returns
//     as soon as the handlers already running have finished: handlers whose
//     events were polled but not started are skipped, and Run() returns
//     after every started handler has finished.
//  6. Registrations are tagged with a generation that is never reused, so a
//     token registered again after Deregister never receives an event that
//     belonged to the earlier registration (stale events are dropped and
//     counted in Stats::stale_events).
//  7. Fairness: a handler should read until EAGAIN or up to
//     EventLoopOptions::read_budget bytes, whichever comes first. Stopping at
//     the budget loses nothing: the source is still ready, so it is reported
//     again on the next poll, after the other ready sources had their turn.
//     The default budget (64 KiB) keeps one busy source from starving others
//     at a negligible throughput cost; see docs/BENCHMARKS.md.
//
// Typical use:
//
//   absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
//       mill::EventLoop::Create();
//   (*loop)->Register(fd, mill::Token(1), mill::Interest::Readable(),
//                     [](const mill::Event& e) { /* read fd */ });
//   std::thread t([&] { (*loop)->Run(); });
//   ...
//   (*loop)->Stop();  // Run() returns once running handlers finish.
//   t.join();
#ifndef MILL_IO_REACTOR_EVENT_LOOP_H_
#define MILL_IO_REACTOR_EVENT_LOOP_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/poller.h"
#include "poll/token.h"
#include "reactor/event_handler.h"
#include "reactor/stop_on_signals.h"  // StopOnSignals, for compatibility

namespace mill {

// Of the compute pool and the buffer pool only the names are needed here:
// include threadpool/thread_pool.h or objectpool/buffer_pool.h to use them.
class BufferPool;
class ThreadPool;
enum class Priority : uint8_t;

namespace reactor_internal {
class LoopImpl;
struct ReceiveAhead;
}  // namespace reactor_internal

// Where handlers run.
enum class DispatchMode {
  // On the loop's worker threads. Each polling thread runs the handlers of
  // the events it polled; a handler that blocks is taken over from (see the
  // file comment), so it does not delay other sources. The default.
  kPool,
  // On the thread that calls Run(), inline, as soon as the event is polled.
  // One thread, no takeover: for handlers that never block; a slow handler
  // delays every source.
  kDirect,
};

// How the loop waits for I/O (EventLoopOptions::io).
enum class IoEngine {
  // MILL_IO from the environment when it is set ("auto", "epoll" or
  // "uring": the way to try a binary on io_uring without rebuilding it),
  // else kEpoll.
  kDefault,
  // io_uring where this process may set up a ring (Linux 5.11+; refused by
  // seccomp profiles such as Docker's default and by
  // kernel.io_uring_disabled), else the readiness poller, saying so once
  // on stderr and in Stats::io_uring_fallback. Never fails because of
  // io_uring.
  kAuto,
  // The platform's readiness poller: epoll on Linux (kqueue, poll(2) or
  // IOCP elsewhere).
  kEpoll,
  // io_uring; EventLoop::Create fails with the kernel's reason where it
  // cannot be set up (PermissionDenied, Unimplemented, ...). With
  // MILL_IO_RECEIVE_AHEAD=1 (Linux 6.0+, experimental: slower for now, see
  // docs/BENCHMARKS.md) //net's connections receive on the ring.
  kIoUring,
};

// "default", "auto", "epoll" or "uring".
absl::string_view IoEngineName(IoEngine engine);
// Parses IoEngineName's spellings (and "io_uring"); InvalidArgument else.
absl::StatusOr<IoEngine> ParseIoEngine(absl::string_view name);

// Configuration of an EventLoop. By default a pool-mode loop polls with one
// thread per CPU this process may run on, plus one standby thread.
struct EventLoopOptions {
  // Threads that run handlers in DispatchMode::kPool, the thread that calls
  // Run() included. At most workers - 1 of them poll at once (and at most
  // polling_threads); the others stand by to take over from a handler that
  // blocks, so up to workers - 1 handlers may block at the same time without
  // stalling other sources. With 1, the Run() thread polls and handles
  // everything (like kDirect). 0: polling_threads + 1. Ignored in kDirect.
  int workers = 0;
  // Pollers (epoll sets), each owned by one thread at a time, that poll and
  // run handlers in parallel in kPool mode; sources are spread over them
  // round robin. 0: the number of CPUs this process may run on
  // (AvailableCpus() of base/os_thread.h: sched_getaffinity, so `taskset -c
  // 0-3` means 4; the process affinity mask on Windows), which is one loop
  // thread per core. Ignored in kDirect mode (one poller).
  int polling_threads = 0;
  // How long a handler (or timer callback, or RunInLoop task) may run before
  // a standby thread takes over the poller it was polled from (detected
  // within one to two of these). Only in kPool mode with a standby thread
  // (workers > polling threads). The standby wakes once per takeover_delay
  // while the loop is busy: at 1 ms that cost 8-13% more CPU per message
  // than direct mode in bench/run_all.py, at 10 ms it is within noise (see
  // docs/BENCHMARKS.md); lower it if handlers block and latency matters.
  absl::Duration takeover_delay = absl::Milliseconds(10);
  // Capacity of the events buffer filled by each poll (at least 1).
  size_t events_capacity = 1024;
  // The loop's heartbeat, used only when wake_on_poll_timeout is true: then
  // no single poll waits longer than this. By default the loop has no
  // heartbeat: it sleeps until I/O, the nearest timer deadline, Stop() or
  // RunInLoop(), all of which wake the poll at once, so an idle loop costs no
  // CPU and a timer fires within about 1 ms of its deadline whatever this is.
  absl::Duration poll_timeout = absl::Milliseconds(100);
  bool wake_on_poll_timeout = false;
  DispatchMode dispatch_mode = DispatchMode::kPool;
  // Threads of the compute pool used by SpawnCompute (created on first use).
  // 0 means the machine's hardware concurrency.
  int compute_workers = 0;
  // Buffer pool offered to handlers through buffer_pool().
  size_t buffer_size = size_t{8} * 1024;
  size_t max_idle_buffers = 1024;
  // Advice to handlers on how much to read per invocation (guarantee 7).
  size_t read_budget = size_t{64} * 1024;
  // I/O engine: epoll or io_uring on Linux (see IoEngine). On io_uring each
  // poller is one ring: changes and the wait of an iteration are one system
  // call. Ignored when `backend` is set.
  IoEngine io = IoEngine::kDefault;
  // Poller backend, exactly (Create fails if it cannot be set up); when
  // unset, `io` chooses.
  std::optional<PollerBackend> backend;
  // Called (on the thread that ran the handler) when a handler throws.
  // Defaults to printing the token and exception message to stderr.
  std::function<void(Token, std::exception_ptr)> on_handler_exception;
};

// Names a registration the loop made for a source the user did not name
// (EventLoop::Register without a token): a TcpServer's listener and
// connections, a client's connecting socket. Never reused; copyable; the
// default value names nothing. Events of such a registration carry
// Token(registration.id()).
class Registration {
 public:
  Registration() = default;
  bool valid() const { return id_ != 0; }
  uint64_t id() const { return id_; }
  friend bool operator==(Registration a, Registration b) {
    return a.id_ == b.id_;
  }
  friend bool operator!=(Registration a, Registration b) {
    return a.id_ != b.id_;
  }

 private:
  friend class EventLoop;
  explicit Registration(uint64_t id) : id_(id) {}
  uint64_t id_ = 0;
};

// The reactor facade. See the file comment for the guarantees. The state
// lives behind one pointer (reactor/internal/loop_impl.h), so this header
// says only what the API needs; the per-event path runs entirely inside.
class EventLoop {
 public:
  // Counters readable at any time.
  struct Stats {
    uint64_t events_dispatched = 0;   // handler invocations started
    uint64_t stale_events = 0;        // dropped: source gone or re-registered
    uint64_t handler_exceptions = 0;  // handlers that threw
    uint64_t rearm_failures = 0;      // re-arming failed (fd closed early?)
    size_t registered = 0;            // live registrations
    uint64_t polls = 0;               // poller waits (an idle loop adds none)
    uint64_t takeovers = 0;           // pollers taken over from a busy thread
    // What the loop polls with, and whether IoEngine::kAuto (or MILL_IO=auto)
    // wanted io_uring but the kernel refused it (the reason went to stderr).
    PollerBackend backend = PollerBackend::kEpoll;
    bool io_uring_fallback = false;
  };

  // Identifies a timer of this loop. Never reused; a default-constructed id
  // is invalid. A plain value type (copyable, hashable, trivially copyable).
  class TimerId {
   public:
    constexpr TimerId() = default;
    constexpr bool valid() const { return value_ != 0; }
    constexpr uint64_t value() const { return value_; }
    friend constexpr bool operator==(TimerId a, TimerId b) {
      return a.value_ == b.value_;
    }
    friend constexpr bool operator!=(TimerId a, TimerId b) {
      return a.value_ != b.value_;
    }
    friend constexpr bool operator<(TimerId a, TimerId b) {
      return a.value_ < b.value_;
    }
    template <typename H>
    friend H AbslHashValue(H state, TimerId id) {
      return H::combine(std::move(state), id.value_);
    }
    friend std::ostream& operator<<(std::ostream& os, TimerId id) {
      return os << "TimerId(" << id.value_ << ")";
    }

   private:
    friend class EventLoop;
    constexpr explicit TimerId(uint64_t value) : value_(value) {}
    uint64_t value_ = 0;
  };

  // Builds a loop; fails (instead of aborting) when a poller, a waker or the
  // threads cannot be created, or when options are invalid.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(
      EventLoopOptions options = EventLoopOptions());

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Stops the loop, waits for running handlers and joins all threads, then
  // shuts the compute pool down (which runs the compute tasks it accepted).
  // Must not run concurrently with Run() on another thread.
  ~EventLoop();

  // Registers `fd` under `token` (unique among live registrations; a
  // duplicate is AlreadyExists) with the readiness it is interested in.
  // Events may be delivered as soon as this returns, even before Run() is
  // entered on another thread.
  absl::Status Register(int fd, Token token, Interest interest,
                        std::shared_ptr<EventHandler> handler);
  absl::Status Register(int fd, Token token, Interest interest,
                        std::function<void(const Event&)> callback);
  // The same for a handler that carries its registration state (see
  // RegisteredHandler in reactor/event_handler.h): allocates nothing of its
  // own. FailedPrecondition while the handler is registered already.
  absl::Status Register(int fd, Token token, Interest interest,
                        const std::shared_ptr<RegisteredHandler>& handler);
  template <typename H, typename = std::enable_if_t<
                            std::is_convertible_v<H*, RegisteredHandler*>>>
  absl::Status Register(int fd, Token token, Interest interest,
                        std::shared_ptr<H> handler) {
    return Register(fd, token, interest,
                    std::shared_ptr<RegisteredHandler>(std::move(handler)));
  }

  // Registers `fd` under a token the loop picks, from a space no user token
  // can collide with: for sources the user never names. Returns the handle
  // that Reregister and Deregister take. Same guarantees as named sources.
  absl::StatusOr<Registration> Register(int fd, Interest interest,
                                        std::shared_ptr<EventHandler> handler);
  // The same for a RegisteredHandler (see above): what //net's connections
  // use.
  absl::StatusOr<Registration> Register(
      int fd, Interest interest,
      const std::shared_ptr<RegisteredHandler>& handler);
  template <typename H, typename = std::enable_if_t<
                            std::is_convertible_v<H*, RegisteredHandler*>>>
  absl::StatusOr<Registration> Register(int fd, Interest interest,
                                        std::shared_ptr<H> handler) {
    return Register(fd, interest,
                    std::shared_ptr<RegisteredHandler>(std::move(handler)));
  }

  // Changes the interest of a registration. Interest::None() pauses it
  // (nothing is reported, see poll/poller.h) without giving up its slot.
  // NotFound if unknown; FailedPrecondition if its descriptor was closed and
  // reused by a newer registration.
  absl::Status Reregister(Token token, Interest interest);
  absl::Status Reregister(Registration registration, Interest interest);

  // Removes a registration; see guarantee 3. NotFound if unknown.
  absl::Status Deregister(Token token);
  absl::Status Deregister(Registration registration);

  // Removes a registration without waiting, from any thread, inside a
  // handler (its own or another's) included: no handler invocation starts
  // after this returns, and `on_released` runs exactly once as soon as none
  // is running either: inline, if no invocation is in flight; otherwise on
  // the thread of the invocation in flight, right after it returns (for a
  // handler deregistering itself: after it returns). Close the descriptor
  // in `on_released`. On NotFound `on_released` is destroyed without
  // running; on a poller error it still runs (the registration is gone).
  absl::Status Deregister(Token token, absl::AnyInvocable<void()> on_released);
  absl::Status Deregister(Registration registration,
                          absl::AnyInvocable<void()> on_released);

  // Polls and dispatches until Stop(); in pool mode the calling thread is
  // one of the workers. Returns after every started handler has finished.
  // FailedPrecondition if the loop is already running; an error status if
  // polling fails. After Stop() it returns at once, running nothing (tasks
  // queued with RunInLoop are destroyed without running).
  absl::Status Run();

  // Makes Run() return (guarantee 5). Thread-safe, idempotent and
  // async-signal-safe; may be called before Run(), which then returns at
  // once. A stopped loop stays stopped.
  void Stop();

  bool is_stopped() const;

  // Runs `fn` "on the loop", one task at a time: tasks never run
  // concurrently with each other, and run in the order they were queued.
  // In kDirect mode they run on the loop thread between polls, and a call
  // from the loop thread runs `fn` inline. In kPool mode they run on the
  // thread that owns the first poller, between batches of events (never
  // inside a handler, so a task may wait for handlers, e.g. in Deregister);
  // a call from inside a task runs `fn` inline, any other call queues it and
  // wakes that thread. (A task that blocks is taken over from like a
  // handler: the first poller gets a new owner, which runs the tasks queued
  // behind it once it returns.) Tasks queued when the loop stops are
  // destroyed without running. Rejected with FailedPrecondition once
  // stopped.
  absl::Status RunInLoop(absl::AnyInvocable<void()> fn);

  // True on every thread of the loop while Run() is running: the thread
  // inside Run() and, in kPool mode, each worker thread (the threads that
  // run handlers, timer callbacks and RunInLoop tasks). False elsewhere,
  // including the compute pool's threads.
  bool IsInLoopThread() const;

  // --- Timers -------------------------------------------------------------
  //
  // Timers run on the loop's hierarchical timing wheel (//timer): O(1)
  // schedule and cancel, monotonic clock, never early (a timer fires once
  // the clock has reached its deadline, never before, not by a fraction of a
  // millisecond), and timers with equal deadlines fire in the order they were
  // scheduled. The thread that owns the first poller advances the wheel; in
  // kPool mode a callback runs on that thread like a handler (and is taken
  // over from like one if it blocks, so other timers stay on time), in
  // kDirect mode inline on the loop thread. Invocations of one repeating
  // timer never overlap: a period that comes while the previous invocation
  // still runs is skipped. A repeating timer does not drift: deadline k is
  // first + k * interval; periods missed entirely are skipped, not bunched.
  // A callback that throws is handled as a handler exception (guarantee 4);
  // a repeating timer keeps running.

  // Runs `fn` once, `delay` from now (the deadline is taken at the call,
  // from any thread). Returns an invalid id if the loop is stopped or `fn`
  // is empty.
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn);

  // Runs `fn` every `interval` (> 0), first at now + interval.
  TimerId RunEvery(absl::Duration interval, absl::AnyInvocable<void()> fn);

  // Cancels a timer; safe from any thread and from inside timer callbacks
  // (itself, or another timer due in the same tick). Returns true if the
  // timer was pending: then its callback does not start afterwards, and if
  // an invocation of it (a repeating timer) is running on another thread,
  // Cancel waits for it to return, so state the callback uses may be freed
  // once Cancel returns true. (From inside the timer's own callback Cancel
  // cannot wait for itself: no further invocation starts, the current one
  // finishes. Like Deregister, Cancel must not be called for a timer whose
  // callback is waiting for the caller.) False for an unknown id, or a
  // one-shot timer whose callback already started.
  bool Cancel(TimerId id);

  // Pending timers (scheduled and neither fired nor cancelled).
  size_t pending_timers() const;

  // Offloads CPU-heavy work to the compute pool (separate from the I/O
  // workers, so it never delays handlers; created on first use). Accepted
  // until the pool is shut down, which ~EventLoop does once the loop's
  // threads have exited (Stop() alone does not): from then on, e.g. for a
  // compute task that spawns another while the loop is being destroyed, it
  // is rejected with FailedPrecondition. Accepted tasks run before
  // ~EventLoop returns. (Priority: threadpool/thread_pool.h.)
  absl::Status SpawnCompute(absl::AnyInvocable<void()> task);
  absl::Status SpawnCompute(absl::AnyInvocable<void()> task, Priority priority);

  // The compute pool, for its metrics (created on first call).
  ThreadPool& compute_pool();

  // Byte buffers for handlers to read into (objectpool/buffer_pool.h).
  BufferPool& buffer_pool();

  const EventLoopOptions& options() const;
  Stats stats() const;

  // Worker threads (the Run() thread included) and pollers actually used:
  // options resolved (1 and 1 in kDirect mode).
  int workers() const;
  int polling_threads() const;

 private:
  friend struct reactor_internal::ReceiveAhead;  // //net's transports

  explicit EventLoop(std::unique_ptr<reactor_internal::LoopImpl> impl);

  const std::unique_ptr<reactor_internal::LoopImpl> impl_;
};

}  // namespace mill

template <>
struct std::hash<mill::EventLoop::TimerId> {
  size_t operator()(mill::EventLoop::TimerId id) const noexcept {
    return std::hash<uint64_t>()(id.value());
  }
};

#endif  // MILL_IO_REACTOR_EVENT_LOOP_H_
