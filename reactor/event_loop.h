// EventLoop: the Mill-IO reactor. It polls registered file descriptors and
// dispatches readiness to handlers, either on a worker pool (the default) or
// directly on the thread that calls Run() (the low-latency mode).
//
// Thread-safety: every public method may be called from any thread, including
// from inside a handler, except that Run() runs on one thread at a time and
// the destructor must not race with any other call. Stop() is also
// async-signal-safe.
//
// Ownership: the loop owns its poller, worker pool, compute pool and buffer
// pool. It shares ownership of each registered handler until the handler's
// last invocation. It never owns or closes the registered file descriptors:
// Deregister a descriptor before closing it. (If a descriptor is closed
// first and its number is reused by a newer registration, the loop notices:
// the stale registration's Reregister and Deregister fail with
// FailedPrecondition and never touch the newer one. With the poll(2)
// backend the newer Register fails with AlreadyExists until the stale one is
// deregistered.)
//
// Guarantees (each is covered by reactor/event_loop_test.cc):
//  1. Per-source ordering: for one registration, handler invocations never
//     overlap, and readiness is delivered in the order it was observed.
//  2. No lost readiness: readiness that arises while the handler runs (new
//     data, say) is delivered after it returns. Sources are level-checked:
//     in pool mode each registration is one-shot and re-armed after every
//     invocation, which reports it again at once if it is still ready; in
//     direct mode registrations are level-triggered.
//  3. Safe deregistration: once Deregister(token) returns on a thread other
//     than the one running that source's handler, the handler is not running
//     and will never be called again. Called from inside its own handler, no
//     further call follows the current one. The handler object is destroyed
//     only after its last invocation. (Deregister waits for an invocation in
//     flight: two handlers must not deregister each other at the same time.
//     Deregister(token, on_released) never waits: it removes the
//     registration at once and runs on_released when no invocation is
//     running or can start, which is where to close the descriptor.)
//  4. A handler that throws does not kill the loop or a worker: the exception
//     is counted (Stats::handler_exceptions) and reported through
//     EventLoopOptions::on_handler_exception; the source stays registered.
//  5. Stop() under load makes Run() return within the poll timeout plus the
//     longest running handler: handlers already queued but not started are
//     skipped, and Run() returns after every started handler has finished.
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

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "objectpool/buffer_pool.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/poller.h"
#include "poll/token.h"
#include "poll/waker.h"
#include "reactor/event_handler.h"
#include "registry/registry.h"
#include "threadpool/thread_pool.h"
#include "timer/timing_wheel.h"

namespace mill {

namespace reactor_internal {
struct Source;
struct LoopTimer;
}  // namespace reactor_internal

// Where handlers run.
enum class DispatchMode {
  // On the loop's worker pool. Handlers of different sources run in
  // parallel; a slow handler does not delay the loop. The default.
  kPool,
  // On the thread that calls Run(), inline, as soon as the event is polled.
  // Lowest latency (no hand-off between threads, no re-arming system call)
  // for handlers that never block; a slow handler delays every source.
  kDirect,
};

// Configuration of an EventLoop. The defaults are 4 workers, 1,024 events
// per poll and a 100 ms poll timeout.
struct EventLoopOptions {
  // Worker threads running handlers in DispatchMode::kPool (at least 1).
  // Ignored in kDirect mode, where no worker pool is created.
  int workers = 4;
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
  size_t buffer_size = 8 * 1024;
  size_t max_idle_buffers = 1024;
  // Advice to handlers on how much to read per invocation (guarantee 7).
  size_t read_budget = 64 * 1024;
  // Poller backend; the platform default when unset.
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

// The reactor facade. See the file comment for the guarantees.
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
  };

  // Builds a loop; fails (instead of aborting) when the poller, the waker or
  // the worker threads cannot be created, or when options are invalid.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(
      EventLoopOptions options = EventLoopOptions());

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Stops the loop, waits for running handlers and joins all threads.
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

  // Registers `fd` under a token the loop picks, from a space no user token
  // can collide with: for sources the user never names. Returns the handle
  // that Reregister and Deregister take. Same guarantees as named sources.
  absl::StatusOr<Registration> Register(int fd, Interest interest,
                                        std::shared_ptr<EventHandler> handler);

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

  // Polls and dispatches until Stop(). Returns after every started handler
  // has finished. FailedPrecondition if the loop is already running; an
  // error status if polling fails. After Stop() it returns at once.
  absl::Status Run();

  // Makes Run() return (guarantee 5). Thread-safe, idempotent and
  // async-signal-safe; may be called before Run(), which then returns at
  // once. A stopped loop stays stopped.
  void Stop();

  bool is_stopped() const { return stop_.load(std::memory_order_acquire); }

  // Runs `fn` on the loop thread: inline if called there, otherwise queued
  // and the poll woken. Tasks queued when the loop stops are destroyed
  // without running. Rejected with FailedPrecondition once stopped.
  absl::Status RunInLoop(absl::AnyInvocable<void()> fn);

  // True on the thread currently inside Run().
  bool IsInLoopThread() const;

  // --- Timers -------------------------------------------------------------
  //
  // Timers run on the loop's hierarchical timing wheel (//timer): O(1)
  // schedule and cancel, monotonic clock, never early (a timer fires once
  // the clock has reached its deadline, never before, not by a fraction of a
  // millisecond), and timers with equal deadlines fire in the order they were
  // scheduled. Callbacks run with the loop's dispatch mode: on a worker in
  // kPool mode, inline on the loop thread in kDirect mode. Invocations of one
  // repeating timer never overlap: a period that comes while the previous
  // invocation still runs (pool mode) is skipped. A repeating timer does not
  // drift: deadline k is first + k * interval; periods missed entirely are
  // skipped, not bunched. A callback that throws is handled as a handler
  // exception (guarantee 4); a repeating timer keeps running.

  // Identifies a timer. 0 is never a valid id.
  struct TimerId {
    uint64_t value = 0;
    bool valid() const { return value != 0; }
    friend bool operator==(TimerId a, TimerId b) { return a.value == b.value; }
    friend bool operator!=(TimerId a, TimerId b) { return a.value != b.value; }
  };

  // Runs `fn` once, `delay` from now (the deadline is taken at the call,
  // from any thread). Returns an invalid id if the loop is stopped or `fn`
  // is empty.
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn);

  // Runs `fn` every `interval` (> 0), first at now + interval.
  TimerId RunEvery(absl::Duration interval, absl::AnyInvocable<void()> fn);

  // Cancels a timer; safe from any thread and from inside timer callbacks
  // (itself, or another timer due in the same tick). Returns true if the
  // timer was pending: its callback will not start afterwards (an invocation
  // already running finishes). False for an unknown id, or a one-shot timer
  // whose callback already started.
  bool Cancel(TimerId id);

  // Pending timers (scheduled and neither fired nor cancelled).
  size_t pending_timers() const;

  // Offloads CPU-heavy work to the compute pool (separate from the I/O
  // workers, so it never delays handlers). Rejected once the loop is
  // destroyed or the pool shut down.
  absl::Status SpawnCompute(ThreadPool::Task task,
                            Priority priority = Priority::kNormal);

  // The compute pool, for its metrics (created on first call).
  ThreadPool& compute_pool();

  // Byte buffers for handlers to read into.
  BufferPool& buffer_pool() { return *buffers_; }

  const EventLoopOptions& options() const { return options_; }
  Stats stats() const;

 private:
  using SourcePtr = std::shared_ptr<reactor_internal::Source>;

  explicit EventLoop(EventLoopOptions options);
  absl::Status Init();

  absl::Status RegisterSource(int fd, std::optional<Token> user_token,
                              Interest interest,
                              std::shared_ptr<EventHandler> handler,
                              Token* key);
  absl::Status ReregisterSource(const SourcePtr& source, Interest interest,
                                const char* what);
  // Detaches `source` (already removed from the tables) and handles the
  // invocation gate; `wait` blocks for an invocation on another thread.
  absl::Status DeregisterSource(const SourcePtr& source, bool owned_fd,
                                absl::AnyInvocable<void()> on_released,
                                bool wait);
  void Dispatch(const Event& event);
  void Invoke(const SourcePtr& source, const Event& event);
  void RunPoolTask(const SourcePtr& source, const Event& event);
  void RunPostedTasks();
  void WaitForHandlers();
  void ReportException(Token token, std::exception_ptr error);
  TimerId AddTimer(absl::Duration delay, absl::Duration interval,
                   absl::AnyInvocable<void()> fn);
  void FireTimer(const std::shared_ptr<reactor_internal::LoopTimer>& timer);
  void RunTimerCallback(reactor_internal::LoopTimer& timer);
  bool ClaimOneShot(const reactor_internal::LoopTimer& timer);
  void FinishPoolTask();
  std::optional<absl::Duration> NextPollTimeout() const;

  const EventLoopOptions options_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<ThreadPool> workers_;  // null in kDirect mode
  std::unique_ptr<BufferPool> buffers_;

  std::once_flag compute_once_;
  std::unique_ptr<ThreadPool> compute_;

  // Sources keyed by their internal generation token (never reused), which
  // is what the poller reports. The user's token maps to it.
  Registry<reactor_internal::Source> sources_;
  // Guards user_tokens_ and fd_owners_ and serializes (de)register.
  std::mutex tokens_mu_;
  absl::flat_hash_map<Token, SourcePtr> user_tokens_;
  // The registration each descriptor number belongs to, so that a stale
  // registration (fd closed early, number reused) never touches the newer.
  absl::flat_hash_map<int, SourcePtr> fd_owners_;
  std::atomic<uint64_t> next_generation_{1};  // 0 is the waker's token.

  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::thread::id> loop_thread_{};

  // Loop thread only (created in Init).
  std::unique_ptr<TimingWheel> wheel_;
  // Timers by id, for Cancel from any thread.
  mutable std::mutex timers_mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<reactor_internal::LoopTimer>>
      timers_;  // Guarded by timers_mu_.
  std::atomic<uint64_t> next_timer_id_{1};

  std::mutex posted_mu_;
  std::vector<absl::AnyInvocable<void()>> posted_;  // Guarded by posted_mu_.

  // Pool tasks submitted and not yet finished; Run() waits for zero.
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;
  std::atomic<uint64_t> inflight_{0};

  std::atomic<uint64_t> events_dispatched_{0};
  std::atomic<uint64_t> stale_events_{0};
  std::atomic<uint64_t> handler_exceptions_{0};
  std::atomic<uint64_t> rearm_failures_{0};
  std::atomic<uint64_t> polls_{0};
};

// Makes SIGINT and SIGTERM (or the given signals) call loop->Stop(). The
// handler only stores a flag and writes to the loop's waker, which is
// async-signal-safe. One loop at a time: a later call replaces the loop.
// Pass nullptr to detach (the signal handlers stay installed but do nothing).
absl::Status StopOnSignals(EventLoop* loop, std::vector<int> signals = {
                                                2 /*SIGINT*/, 15 /*SIGTERM*/});

}  // namespace mill

#endif  // MILL_IO_REACTOR_EVENT_LOOP_H_
