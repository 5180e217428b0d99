#include "reactor/event_loop.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "reactor/internal/source.h"

namespace mill {
namespace {

using reactor_internal::LoopTimer;
using reactor_internal::Source;
using Clock = std::chrono::steady_clock;

// The waker's poller token. Registration generations start at 1.
constexpr Token kWakerToken(0);

std::string DescribeException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "non-standard exception";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(
    EventLoopOptions options) {
  if (options.workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EventLoopOptions::workers must be at least 1, got ", options.workers));
  }
  if (options.events_capacity < 1) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::events_capacity must be at least 1");
  }
  if (options.poll_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::poll_timeout must not be negative");
  }
  if (options.buffer_size < 1) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::buffer_size must be at least 1");
  }
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(options)));
  absl::Status status = loop->Init();
  if (!status.ok()) return status;
  return loop;
}

EventLoop::EventLoop(EventLoopOptions options) : options_(std::move(options)) {}

absl::Status EventLoop::Init() {
  absl::StatusOr<std::unique_ptr<Poller>> poller =
      options_.backend ? Poller::Create(*options_.backend) : Poller::Create();
  if (!poller.ok()) return poller.status();
  poller_ = std::move(*poller);

  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, kWakerToken);
  if (!waker.ok()) return waker.status();
  waker_ = std::move(*waker);

  if (options_.dispatch_mode == DispatchMode::kPool) {
    ThreadPoolOptions pool_options;
    pool_options.num_workers = options_.workers;
    pool_options.name_prefix = "mill-io-";
    absl::StatusOr<std::unique_ptr<ThreadPool>> pool =
        ThreadPool::Create(pool_options);
    if (!pool.ok()) return pool.status();
    workers_ = std::move(*pool);
  }

  wheel_ = std::make_unique<TimingWheel>(Clock::now());

  BufferPoolOptions buffer_options;
  buffer_options.buffer_size = options_.buffer_size;
  buffer_options.max_idle = options_.max_idle_buffers;
  buffers_ = std::make_unique<BufferPool>(buffer_options);
  return absl::OkStatus();
}

EventLoop::~EventLoop() {
  Stop();
  // Queued dispatches still reference this loop (and re-arm through the
  // poller): drain them before any member goes away. They skip their
  // handlers since the loop is stopped.
  if (workers_ != nullptr) workers_->Shutdown();
  if (compute_ != nullptr) compute_->Shutdown();
}

absl::Status EventLoop::Register(int fd, Token token, Interest interest,
                                 std::function<void(const Event&)> callback) {
  if (!callback) {
    return absl::InvalidArgumentError("EventLoop::Register: empty callback");
  }
  return Register(fd, token, interest,
                  std::make_shared<CallbackHandler>(std::move(callback)));
}

absl::Status EventLoop::Register(int fd, Token token, Interest interest,
                                 std::shared_ptr<EventHandler> handler) {
  Token key;
  return RegisterSource(fd, token, interest, std::move(handler), &key);
}

absl::StatusOr<Registration> EventLoop::Register(
    int fd, Interest interest, std::shared_ptr<EventHandler> handler) {
  Token key;
  absl::Status status =
      RegisterSource(fd, std::nullopt, interest, std::move(handler), &key);
  if (!status.ok()) return status;
  return Registration(key.value());
}

absl::Status EventLoop::RegisterSource(int fd, std::optional<Token> user_token,
                                       Interest interest,
                                       std::shared_ptr<EventHandler> handler,
                                       Token* key_out) {
  if (handler == nullptr) {
    return absl::InvalidArgumentError("EventLoop::Register: null handler");
  }
  // Destroyed after the lock is released on every path: a handler's or
  // source's destructor may call back into the loop.
  SourcePtr source;
  SourcePtr stale;
  absl::Status status;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    if (user_token.has_value() && user_tokens_.contains(*user_token)) {
      return absl::AlreadyExistsError(
          absl::StrCat("EventLoop::Register: token ", user_token->value(),
                       " is already registered"));
    }
    const Token key(next_generation_.fetch_add(1, std::memory_order_relaxed));
    source = std::make_shared<Source>(fd, user_token.has_value(),
                                      user_token.value_or(key), key, interest,
                                      std::move(handler));
    // Visible to the dispatcher before the poller can report the fd.
    status = sources_.Insert(key, source);
    if (!status.ok()) return status;
    auto owner = fd_owners_.find(fd);
    if (owner != fd_owners_.end()) {
      // Either the same open descriptor twice (the poller refuses it below)
      // or the earlier registration's fd was closed and the number reused:
      // from now on the earlier one must not touch the descriptor.
      stale = owner->second;
      std::lock_guard<std::mutex> state(stale->state_mu);
      stale->fd_lost = true;
    }
    const Trigger trigger = options_.dispatch_mode == DispatchMode::kPool
                                ? Trigger::kOneShot
                                : Trigger::kLevel;
    status = poller_->Register(fd, key, interest, trigger);
    if (!status.ok()) {
      if (stale != nullptr) {
        std::lock_guard<std::mutex> state(stale->state_mu);
        stale->fd_lost = false;  // it still owns its (open) descriptor
      }
      sources_.Remove(key);
      return status;
    }
    fd_owners_[fd] = source;
    if (user_token.has_value()) user_tokens_.emplace(*user_token, source);
    *key_out = key;
  }
  return absl::OkStatus();
}

absl::Status EventLoop::Reregister(Token token, Interest interest) {
  SourcePtr source;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    auto it = user_tokens_.find(token);
    if (it == user_tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("EventLoop::Reregister: token ",
                                              token.value(),
                                              " is not registered"));
    }
    source = it->second;
  }
  return ReregisterSource(source, interest, "EventLoop::Reregister");
}

absl::Status EventLoop::Reregister(Registration registration,
                                   Interest interest) {
  SourcePtr source = sources_.Find(Token(registration.id()));
  if (source == nullptr || source->named) {
    return absl::NotFoundError(
        absl::StrCat("EventLoop::Reregister: registration ", registration.id(),
                     " is not registered"));
  }
  return ReregisterSource(source, interest, "EventLoop::Reregister");
}

absl::Status EventLoop::ReregisterSource(const SourcePtr& source,
                                         Interest interest, const char* what) {
  std::lock_guard<std::mutex> lock(source->state_mu);
  if (source->deregistered.load(std::memory_order_relaxed)) {
    return absl::NotFoundError(absl::StrCat(
        what, ": token ", source->user_token.value(), " was deregistered"));
  }
  if (source->fd_lost) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": descriptor ", source->fd,
                     " was closed before Deregister and now belongs to a newer "
                     "registration"));
  }
  source->interest = interest;
  if (options_.dispatch_mode == DispatchMode::kPool) {
    // While a dispatch is in flight the fd is disarmed; re-arming it here
    // would let a second worker run the handler concurrently. The dispatch
    // re-arms with the new interest when it finishes.
    if (source->in_flight) return absl::OkStatus();
    return poller_->Reregister(source->fd, source->key, interest,
                               Trigger::kOneShot);
  }
  return poller_->Reregister(source->fd, source->key, interest,
                             Trigger::kLevel);
}

absl::Status EventLoop::Deregister(Token token) {
  return Deregister(token, nullptr);
}

absl::Status EventLoop::Deregister(Registration registration) {
  return Deregister(registration, nullptr);
}

absl::Status EventLoop::Deregister(Token token,
                                   absl::AnyInvocable<void()> on_released) {
  const bool wait = on_released == nullptr;
  SourcePtr source;
  bool owned_fd = false;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    auto it = user_tokens_.find(token);
    if (it == user_tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("EventLoop::Deregister: token ",
                                              token.value(),
                                              " is not registered"));
    }
    source = std::move(it->second);
    user_tokens_.erase(it);
    auto owner = fd_owners_.find(source->fd);
    if (owner != fd_owners_.end() && owner->second == source) {
      fd_owners_.erase(owner);
      owned_fd = true;
    }
  }
  return DeregisterSource(source, owned_fd, std::move(on_released), wait);
}

absl::Status EventLoop::Deregister(Registration registration,
                                   absl::AnyInvocable<void()> on_released) {
  const bool wait = on_released == nullptr;
  SourcePtr source;
  bool owned_fd = false;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    source = sources_.Find(Token(registration.id()));
    // Named sources are removed through their token, and a source already
    // being deregistered is not found twice.
    if (source == nullptr || source->named ||
        source->deregistered.load(std::memory_order_acquire)) {
      return absl::NotFoundError(
          absl::StrCat("EventLoop::Deregister: registration ",
                       registration.id(), " is not registered"));
    }
    // Marked under tokens_mu_, so a concurrent Deregister of the same
    // registration sees it above.
    source->deregistered.store(true, std::memory_order_release);
    auto owner = fd_owners_.find(source->fd);
    if (owner != fd_owners_.end() && owner->second == source) {
      fd_owners_.erase(owner);
      owned_fd = true;
    }
  }
  return DeregisterSource(source, owned_fd, std::move(on_released), wait);
}

absl::Status EventLoop::DeregisterSource(const SourcePtr& source, bool owned_fd,
                                         absl::AnyInvocable<void()> on_released,
                                         bool wait) {
  absl::Status status;
  bool fd_lost;
  {
    std::lock_guard<std::mutex> lock(source->state_mu);
    source->deregistered.store(true, std::memory_order_release);
    fd_lost = source->fd_lost || !owned_fd;
    if (!fd_lost) status = poller_->Deregister(source->fd);
  }
  sources_.Remove(source->key);

  // The gate: no invocation starts from now on. If one is running, the
  // later of it and us runs on_released (see Source::gate).
  const uint32_t before =
      source->gate.fetch_or(Source::kDeregistered, std::memory_order_acq_rel);
  if ((before & Source::kInvoking) == 0) {
    if (on_released) on_released();
  } else {
    const bool self = source->invoking_thread.load(std::memory_order_acquire) ==
                      std::this_thread::get_id();
    std::unique_lock<std::mutex> lock(source->release_mu);
    if (source->invocation_finished) {
      lock.unlock();
      if (on_released) on_released();
    } else {
      if (on_released) source->on_released = std::move(on_released);
      // From inside its own handler there is nothing to wait for: the gate
      // stops every later call.
      if (wait && !self) {
        source->released_cv.wait(
            lock, [&source] { return source->invocation_finished; });
      }
    }
  }
  if (fd_lost) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EventLoop::Deregister: registration removed, but descriptor ",
        source->fd,
        " was closed before Deregister and now belongs to a newer "
        "registration, which was left alone"));
  }
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat("registration removed, but the poller refused (was the "
                     "fd closed before Deregister?): ",
                     status.message()));
  }
  return absl::OkStatus();
}

absl::Status EventLoop::Run() {
  if (running_.exchange(true, std::memory_order_acq_rel)) {
    return absl::FailedPreconditionError(
        "EventLoop::Run: the loop is already running on another thread");
  }
  loop_thread_.store(std::this_thread::get_id(), std::memory_order_release);
  Events events(options_.events_capacity);
  absl::Status result;
  RunPostedTasks();
  while (!stop_.load(std::memory_order_acquire)) {
    absl::StatusOr<size_t> ready = poller_->Poll(events, NextPollTimeout());
    polls_.fetch_add(1, std::memory_order_relaxed);
    if (!ready.ok()) {
      result = ready.status();
      break;
    }
    for (const Event& event : events) {
      if (stop_.load(std::memory_order_relaxed)) break;
      Dispatch(event);
    }
    RunPostedTasks();
    if (!wheel_->empty()) wheel_->Advance(Clock::now());
  }
  WaitForHandlers();
  {
    // Stopped for good: posted tasks will never run.
    std::vector<absl::AnyInvocable<void()>> dropped;
    std::lock_guard<std::mutex> lock(posted_mu_);
    dropped.swap(posted_);
  }
  loop_thread_.store(std::thread::id(), std::memory_order_release);
  running_.store(false, std::memory_order_release);
  return result;
}

void EventLoop::Stop() {
  // Async-signal-safe: an atomic store and a write(2) to the waker.
  stop_.store(true, std::memory_order_seq_cst);
  (void)waker_->Wake();
}

bool EventLoop::IsInLoopThread() const {
  return loop_thread_.load(std::memory_order_acquire) ==
         std::this_thread::get_id();
}

absl::Status EventLoop::RunInLoop(absl::AnyInvocable<void()> fn) {
  if (IsInLoopThread()) {
    fn();
    return absl::OkStatus();
  }
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    if (stop_.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError(
          "EventLoop::RunInLoop: the loop is stopped");
    }
    posted_.push_back(std::move(fn));
  }
  return waker_->Wake();
}

std::optional<absl::Duration> EventLoop::NextPollTimeout() const {
  std::optional<absl::Duration> timeout;
  if (options_.wake_on_poll_timeout) timeout = options_.poll_timeout;
  if (std::optional<TimingWheel::TimePoint> next = wheel_->NextDeadline()) {
    // The poller rounds up to its resolution, so this never wakes early.
    const absl::Duration until =
        std::max(absl::ZeroDuration(), absl::FromChrono(*next - Clock::now()));
    if (!timeout || until < *timeout) timeout = until;
  }
  return timeout;
}

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay,
                                       absl::AnyInvocable<void()> fn) {
  return AddTimer(delay, absl::ZeroDuration(), std::move(fn));
}

EventLoop::TimerId EventLoop::RunEvery(absl::Duration interval,
                                       absl::AnyInvocable<void()> fn) {
  if (interval <= absl::ZeroDuration()) return TimerId();
  return AddTimer(interval, interval, std::move(fn));
}

EventLoop::TimerId EventLoop::AddTimer(absl::Duration delay,
                                       absl::Duration interval,
                                       absl::AnyInvocable<void()> fn) {
  if (!fn || stop_.load(std::memory_order_acquire)) return TimerId();
  // The deadline counts from the call, not from when the loop gets to it.
  const TimingWheel::TimePoint deadline =
      Clock::now() +
      absl::ToChronoNanoseconds(std::max(delay, absl::ZeroDuration()));
  const bool repeating = interval > absl::ZeroDuration();
  auto timer = std::make_shared<LoopTimer>(
      next_timer_id_.fetch_add(1, std::memory_order_relaxed), repeating,
      std::move(fn));
  {
    std::lock_guard<std::mutex> lock(timers_mu_);
    timers_.emplace(timer->id, timer);
  }
  auto schedule = [this, timer, deadline, interval] {
    if (timer->cancelled.load(std::memory_order_acquire)) return;
    auto fire = [this, timer] { FireTimer(timer); };
    timer->wheel_id =
        timer->repeating
            ? wheel_->ScheduleRepeating(
                  deadline, absl::ToChronoNanoseconds(interval), fire)
            : wheel_->Schedule(deadline, fire);
  };
  if (!RunInLoop(std::move(schedule)).ok()) {
    std::lock_guard<std::mutex> lock(timers_mu_);
    timers_.erase(timer->id);
    return TimerId();
  }
  return TimerId{timer->id};
}

bool EventLoop::Cancel(TimerId id) {
  std::shared_ptr<LoopTimer> timer;
  {
    std::lock_guard<std::mutex> lock(timers_mu_);
    auto it = timers_.find(id.value);
    if (it == timers_.end()) return false;
    timer = std::move(it->second);
    timers_.erase(it);
  }
  timer->cancelled.store(true, std::memory_order_release);
  // Free the wheel slot on the loop thread. If the loop is stopped the wheel
  // never runs again, so failing to post is harmless.
  (void)RunInLoop([this, timer] {
    if (timer->wheel_id.valid()) wheel_->Cancel(timer->wheel_id);
  });
  return true;
}

size_t EventLoop::pending_timers() const {
  std::lock_guard<std::mutex> lock(timers_mu_);
  return timers_.size();
}

bool EventLoop::ClaimOneShot(const LoopTimer& timer) {
  // Whoever removes the id first wins: Cancel (the callback never starts)
  // or the dispatch (the callback starts and can no longer be cancelled).
  std::lock_guard<std::mutex> lock(timers_mu_);
  return timers_.erase(timer.id) == 1;
}

void EventLoop::FireTimer(const std::shared_ptr<LoopTimer>& timer) {
  if (timer->cancelled.load(std::memory_order_acquire)) return;
  if (workers_ == nullptr) {  // kDirect: inline on the loop thread
    if (timer->repeating || ClaimOneShot(*timer)) RunTimerCallback(*timer);
    return;
  }
  // Never two invocations of one timer at once: skip this period instead.
  if (timer->running.exchange(true, std::memory_order_acq_rel)) return;
  inflight_.fetch_add(1, std::memory_order_seq_cst);
  absl::Status submitted = workers_->Submit([this, timer] {
    const bool run =
        !stop_.load(std::memory_order_acquire) &&
        (timer->repeating ? !timer->cancelled.load(std::memory_order_acquire)
                          : ClaimOneShot(*timer));
    if (run) RunTimerCallback(*timer);
    timer->running.store(false, std::memory_order_release);
    FinishPoolTask();
  });
  if (!submitted.ok()) {
    timer->running.store(false, std::memory_order_release);
    inflight_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void EventLoop::FinishPoolTask() {
  if (inflight_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      stop_.load(std::memory_order_seq_cst)) {
    std::lock_guard<std::mutex> lock(inflight_mu_);
    inflight_cv_.notify_all();
  }
}

void EventLoop::RunTimerCallback(LoopTimer& timer) {
  try {
    timer.fn();
  } catch (...) {
    handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
    ReportException(Token(), std::current_exception());
  }
}

void EventLoop::RunPostedTasks() {
  std::vector<absl::AnyInvocable<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) {
    try {
      task();
    } catch (...) {
      handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      ReportException(Token(), std::current_exception());
    }
  }
}

void EventLoop::Dispatch(const Event& polled) {
  if (polled.token() == kWakerToken) {
    waker_->Drain();
    return;
  }
  SourcePtr source = sources_.Find(polled.token());
  if (source == nullptr ||
      source->deregistered.load(std::memory_order_acquire)) {
    stale_events_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Handlers see their own token, not the generation tag.
  const Event event(source->user_token, polled.flags());
  if (workers_ == nullptr) {  // DispatchMode::kDirect
    Invoke(source, event);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(source->state_mu);
    // One-shot registrations report once per arming, so a second event for
    // an in-flight source is spurious; the re-arm re-checks readiness.
    if (source->in_flight || source->deregistered.load()) return;
    source->in_flight = true;
  }
  inflight_.fetch_add(1, std::memory_order_seq_cst);
  absl::Status submitted =
      workers_->Submit([this, source, event] { RunPoolTask(source, event); });
  if (!submitted.ok()) {
    // Only while the loop is being destroyed; the source stays disarmed.
    std::lock_guard<std::mutex> lock(source->state_mu);
    source->in_flight = false;
    inflight_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void EventLoop::RunPoolTask(const SourcePtr& source, const Event& event) {
  if (!stop_.load(std::memory_order_acquire)) Invoke(source, event);
  {
    std::lock_guard<std::mutex> lock(source->state_mu);
    source->in_flight = false;
    if (!source->deregistered.load(std::memory_order_relaxed)) {
      // Level-checked re-arm: readiness that arose while the handler ran is
      // reported by the next poll (guarantee 2).
      absl::Status status = poller_->Reregister(
          source->fd, source->key, source->interest, Trigger::kOneShot);
      if (!status.ok()) {
        rearm_failures_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  FinishPoolTask();
}

void EventLoop::Invoke(const SourcePtr& source, const Event& event) {
  uint32_t expected = 0;
  if (!source->gate.compare_exchange_strong(expected, Source::kInvoking,
                                            std::memory_order_acq_rel)) {
    stale_events_.fetch_add(1, std::memory_order_relaxed);  // deregistered
    return;
  }
  source->invoking_thread.store(std::this_thread::get_id(),
                                std::memory_order_release);
  events_dispatched_.fetch_add(1, std::memory_order_relaxed);
  try {
    source->handler->HandleEvent(event);
  } catch (...) {
    handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
    ReportException(source->user_token, std::current_exception());
  }
  source->invoking_thread.store(std::thread::id(), std::memory_order_release);
  const uint32_t before =
      source->gate.fetch_and(~Source::kInvoking, std::memory_order_acq_rel);
  if ((before & Source::kDeregistered) == 0) return;
  // Deregister overlapped this invocation: release the source here.
  absl::AnyInvocable<void()> on_released;
  {
    std::lock_guard<std::mutex> lock(source->release_mu);
    source->invocation_finished = true;
    on_released = std::move(source->on_released);
  }
  source->released_cv.notify_all();
  if (on_released) {
    try {
      on_released();
    } catch (...) {
      handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      ReportException(source->user_token, std::current_exception());
    }
  }
}

void EventLoop::WaitForHandlers() {
  if (workers_ == nullptr) return;
  std::unique_lock<std::mutex> lock(inflight_mu_);
  inflight_cv_.wait(
      lock, [this] { return inflight_.load(std::memory_order_seq_cst) == 0; });
}

void EventLoop::ReportException(Token token, std::exception_ptr error) {
  if (options_.on_handler_exception) {
    try {
      options_.on_handler_exception(token, error);
    } catch (...) {
      // A throwing reporter must not take the worker down either.
    }
    return;
  }
  std::fprintf(stderr, "mill-io: handler for token %llu threw: %s\n",
               static_cast<unsigned long long>(token.value()),
               DescribeException(error).c_str());
}

absl::Status EventLoop::SpawnCompute(ThreadPool::Task task, Priority priority) {
  return compute_pool().Submit(std::move(task), priority);
}

ThreadPool& EventLoop::compute_pool() {
  std::call_once(compute_once_, [this] {
    ThreadPoolOptions pool_options;
    pool_options.num_workers = options_.compute_workers;
    pool_options.name_prefix = "mill-compute-";
    compute_ = std::make_unique<ThreadPool>(pool_options);
  });
  return *compute_;
}

EventLoop::Stats EventLoop::stats() const {
  Stats stats;
  stats.events_dispatched = events_dispatched_.load(std::memory_order_relaxed);
  stats.stale_events = stale_events_.load(std::memory_order_relaxed);
  stats.handler_exceptions =
      handler_exceptions_.load(std::memory_order_relaxed);
  stats.rearm_failures = rearm_failures_.load(std::memory_order_relaxed);
  stats.registered = sources_.size();
  stats.polls = polls_.load(std::memory_order_relaxed);
  return stats;
}

// --- Signals ---------------------------------------------------------------

namespace {
std::atomic<EventLoop*> g_signal_loop{nullptr};

extern "C" void StopLoopOnSignal(int) {
  const int saved_errno = errno;
  if (EventLoop* loop = g_signal_loop.load(std::memory_order_acquire)) {
    loop->Stop();
  }
  errno = saved_errno;
}
}  // namespace

absl::Status StopOnSignals(EventLoop* loop, std::vector<int> signals) {
  g_signal_loop.store(loop, std::memory_order_release);
  for (int signo : signals) {
    struct sigaction action = {};
    action.sa_handler = StopLoopOnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(signo, &action, nullptr) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("sigaction(", signo, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mill
