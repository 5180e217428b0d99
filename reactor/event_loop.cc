// EventLoop: the facade. Validates options, then forwards every call to the
// LoopImpl (reactor/internal/loop_impl.h), whose members live in the
// event_loop_*.cc files. Also RegisteredHandler's storage.
#include "reactor/event_loop.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/os_thread.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace {

using reactor_internal::EmbeddedSourceAccess;
using reactor_internal::LoopImpl;
using reactor_internal::OwnedSource;
using reactor_internal::Source;

static_assert(sizeof(Source) == RegisteredHandler::kSourceSize,
              "RegisteredHandler::kSourceSize must be sizeof(Source)");
static_assert(alignof(Source) <= 8, "RegisteredHandler aligns its Source to 8");

// The handler behind Register(fd, token, interest, callback): the callback
// and the registration's state in one allocation.
class CallbackRegisteredHandler final : public RegisteredHandler {
 public:
  explicit CallbackRegisteredHandler(std::function<void(const Event&)> callback)
      : callback_(std::move(callback)) {}
  void HandleEvent(const Event& event) override { callback_(event); }

 private:
  std::function<void(const Event&)> callback_;
};

// The loop's reference to a plain handler's registration: a fresh Source
// allocated together with the handler's shared_ptr.
std::shared_ptr<Source> SourceFor(std::shared_ptr<EventHandler> handler) {
  auto owned = std::make_shared<OwnedSource>(std::move(handler));
  Source* source = &owned->source;
  return std::shared_ptr<Source>(owned, source);  // aliasing (C++17: a copy)
}

// ... and to a RegisteredHandler's: its own Source, sharing its ownership.
std::shared_ptr<Source> SourceFor(
    const std::shared_ptr<RegisteredHandler>& handler) {
  Source* source = &EmbeddedSourceAccess::Of(*handler);
  return std::shared_ptr<Source>(handler, source);
}

absl::Status NullHandler() {
  return absl::InvalidArgumentError("EventLoop::Register: null handler");
}

}  // namespace

// --- RegisteredHandler -------------------------------------------------------

RegisteredHandler::RegisteredHandler() {
  new (source_) Source(static_cast<EventHandler*>(this));
}

RegisteredHandler::~RegisteredHandler() {
  EmbeddedSourceAccess::Of(*this).~Source();
}

namespace reactor_internal {
Source& EmbeddedSourceAccess::Of(RegisteredHandler& handler) {
  return *std::launder(reinterpret_cast<Source*>(handler.source_));
}
}  // namespace reactor_internal

// --- Construction ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(
    EventLoopOptions options) {
  if (options.workers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("EventLoopOptions::workers must not be negative, got ",
                     options.workers));
  }
  if (options.polling_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EventLoopOptions::polling_threads must not be negative, got ",
        options.polling_threads));
  }
  // A Source names its poller in 16 bits.
  constexpr int kMaxPollers = std::numeric_limits<uint16_t>::max() + 1;
  if (options.polling_threads > kMaxPollers) {
    return absl::InvalidArgumentError(
        absl::StrCat("EventLoopOptions::polling_threads must be at most ",
                     kMaxPollers, ", got ", options.polling_threads));
  }
  if (options.takeover_delay <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::takeover_delay must be positive");
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
  int workers = 1;
  int polling = 1;
  if (options.dispatch_mode == DispatchMode::kPool) {
    const int wanted = options.polling_threads > 0
                           ? options.polling_threads
                           : std::min(AvailableCpus(), kMaxPollers);
    workers = options.workers > 0 ? options.workers : wanted + 1;
    // Keep one thread beyond the pollers to take over from a blocked
    // handler, unless there is only one thread.
    polling = workers == 1 ? 1 : std::min(wanted, workers - 1);
  }
  auto impl = std::make_unique<LoopImpl>(std::move(options), workers, polling);
  absl::Status status = impl->Init();
  if (!status.ok()) return status;  // the destructor copes with a half loop
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(impl)));
}

EventLoop::EventLoop(std::unique_ptr<LoopImpl> impl) : impl_(std::move(impl)) {}

EventLoop::~EventLoop() = default;  // ~LoopImpl stops and joins

// --- Registration ------------------------------------------------------------

absl::Status EventLoop::Register(int fd, Token token, Interest interest,
                                 std::function<void(const Event&)> callback) {
  if (!callback) {
    return absl::InvalidArgumentError("EventLoop::Register: empty callback");
  }
  return Register(
      fd, token, interest,
      std::make_shared<CallbackRegisteredHandler>(std::move(callback)));
}

absl::Status EventLoop::Register(int fd, Token token, Interest interest,
                                 std::shared_ptr<EventHandler> handler) {
  if (handler == nullptr) return NullHandler();
  Token key;
  return impl_->Register(fd, token, interest, SourceFor(std::move(handler)),
                         &key);
}

absl::Status EventLoop::Register(
    int fd, Token token, Interest interest,
    const std::shared_ptr<RegisteredHandler>& handler) {
  if (handler == nullptr) return NullHandler();
  Token key;
  return impl_->Register(fd, token, interest, SourceFor(handler), &key);
}

absl::StatusOr<Registration> EventLoop::Register(
    int fd, Interest interest, std::shared_ptr<EventHandler> handler) {
  if (handler == nullptr) return NullHandler();
  Token key;
  absl::Status status = impl_->Register(fd, std::nullopt, interest,
                                        SourceFor(std::move(handler)), &key);
  if (!status.ok()) return status;
  return Registration(key.value());
}

absl::StatusOr<Registration> EventLoop::Register(
    int fd, Interest interest,
    const std::shared_ptr<RegisteredHandler>& handler) {
  if (handler == nullptr) return NullHandler();
  Token key;
  absl::Status status =
      impl_->Register(fd, std::nullopt, interest, SourceFor(handler), &key);
  if (!status.ok()) return status;
  return Registration(key.value());
}

absl::Status EventLoop::Reregister(Token token, Interest interest) {
  return impl_->ReregisterNamed(token, interest);
}

absl::Status EventLoop::Reregister(Registration registration,
                                   Interest interest) {
  return impl_->ReregisterUnnamed(Token(registration.id()), interest);
}

absl::Status EventLoop::Deregister(Token token) {
  return impl_->DeregisterNamed(token, nullptr);
}

absl::Status EventLoop::Deregister(Registration registration) {
  return impl_->DeregisterUnnamed(Token(registration.id()), nullptr);
}

absl::Status EventLoop::Deregister(Token token,
                                   absl::AnyInvocable<void()> on_released) {
  return impl_->DeregisterNamed(token, std::move(on_released));
}

absl::Status EventLoop::Deregister(Registration registration,
                                   absl::AnyInvocable<void()> on_released) {
  return impl_->DeregisterUnnamed(Token(registration.id()),
                                  std::move(on_released));
}

// --- Running -----------------------------------------------------------------

absl::Status EventLoop::Run() { return impl_->Run(); }

void EventLoop::Stop() { impl_->Stop(); }

bool EventLoop::is_stopped() const { return impl_->stopped(); }

absl::Status EventLoop::RunInLoop(absl::AnyInvocable<void()> fn) {
  return impl_->RunInLoop(std::move(fn));
}

bool EventLoop::IsInLoopThread() const { return impl_->IsInLoopThread(); }

// --- Timers ------------------------------------------------------------------

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay,
                                       absl::AnyInvocable<void()> fn) {
  return TimerId(impl_->AddTimer(delay, absl::ZeroDuration(), std::move(fn)));
}

EventLoop::TimerId EventLoop::RunEvery(absl::Duration interval,
                                       absl::AnyInvocable<void()> fn) {
  if (interval <= absl::ZeroDuration()) return TimerId();
  return TimerId(impl_->AddTimer(interval, interval, std::move(fn)));
}

bool EventLoop::Cancel(TimerId id) {
  return id.valid() && impl_->Cancel(id.value());
}

size_t EventLoop::pending_timers() const { return impl_->pending_timers(); }

// --- Pools, options, stats ---------------------------------------------------

absl::Status EventLoop::SpawnCompute(absl::AnyInvocable<void()> task) {
  return impl_->compute_pool().Submit(std::move(task));
}

absl::Status EventLoop::SpawnCompute(absl::AnyInvocable<void()> task,
                                     Priority priority) {
  return impl_->compute_pool().Submit(std::move(task), priority);
}

ThreadPool& EventLoop::compute_pool() { return impl_->compute_pool(); }

BufferPool& EventLoop::buffer_pool() { return impl_->buffer_pool(); }

const EventLoopOptions& EventLoop::options() const { return impl_->options(); }

EventLoop::Stats EventLoop::stats() const { return impl_->stats(); }

int EventLoop::workers() const { return impl_->workers(); }

int EventLoop::polling_threads() const { return impl_->polling_threads(); }

}  // namespace mill
