// EventHandler: what the EventLoop calls when a registered source is ready.
//
// Thread-safety: the loop never runs two invocations of one handler at once
// (see the guarantees in reactor/event_loop.h), so a handler needs no locking
// for state that only it touches. Different handlers may run concurrently on
// the loop's worker threads in pool mode.
//
// Ownership: the loop shares ownership of a registered handler and releases
// it only after the handler's last invocation has returned. A
// RegisteredHandler also carries the loop's bookkeeping for its registration,
// so that registering it allocates nothing besides the loop's table slots.
#ifndef MILL_IO_REACTOR_EVENT_HANDLER_H_
#define MILL_IO_REACTOR_EVENT_HANDLER_H_

#include <cstddef>
#include <functional>
#include <utility>

#include "poll/event.h"

namespace mill {

// Implement HandleEvent to react to readiness of one registered source.
//
//   class EchoHandler : public mill::EventHandler {
//    public:
//     void HandleEvent(const mill::Event& event) override {
//       if (event.is_readable()) { /* read until EAGAIN or a budget */ }
//     }
//   };
//
// An exception thrown from HandleEvent is caught by the loop, counted in
// EventLoop::Stats::handler_exceptions and passed to the loop's
// on_handler_exception callback; the source stays registered.
class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void HandleEvent(const Event& event) = 0;
};

namespace reactor_internal {
struct EmbeddedSourceAccess;
}  // namespace reactor_internal

// An EventHandler with room for the loop's per-registration state (48 bytes):
// registered through EventLoop::Register's overloads for
// std::shared_ptr<RegisteredHandler> (or a pointer to a class derived from
// it), its registration allocates nothing of its own, and the loop's
// references to it share the handler's control block, so that state lives
// exactly as long as the handler. For handlers that exist by the thousand,
// one registration each: connections.
//
//   class Conn : public mill::RegisteredHandler {
//     void HandleEvent(const mill::Event& event) override { ... }
//   };
//   auto conn = std::make_shared<Conn>();
//   absl::StatusOr<mill::Registration> r =
//       loop->Register(fd, mill::Interest::Readable(), conn);
//
// A class that inherits it privately (and is shared_from_this) passes
// std::shared_ptr<RegisteredHandler>(shared_from_this(), this) to Register.
// Passed as a plain std::shared_ptr<EventHandler> instead, it is registered
// like any handler (the loop allocates the state; the room goes unused).
//
// Every guarantee of reactor/event_loop.h holds as for any handler. One
// registration at a time: registering the handler again before its previous
// registration was released fails with FailedPrecondition. A registration is
// released when Deregister has returned and no invocation of it runs: before
// Deregister returns when no invocation is in flight (or when it waited for
// one), right before on_released runs otherwise, and, for a handler that
// deregistered itself, when that invocation returns.
class RegisteredHandler : public EventHandler {
 public:
  // sizeof the loop's state; checked against it where it is defined.
  static constexpr size_t kSourceSize = 48;

  RegisteredHandler();
  ~RegisteredHandler() override;
  RegisteredHandler(const RegisteredHandler&) = delete;
  RegisteredHandler& operator=(const RegisteredHandler&) = delete;

 private:
  friend struct reactor_internal::EmbeddedSourceAccess;
  alignas(8) unsigned char source_[kSourceSize];
};

// Adapts any callable taking `const Event&` (a lambda, usually).
class CallbackHandler final : public EventHandler {
 public:
  explicit CallbackHandler(std::function<void(const Event&)> callback)
      : callback_(std::move(callback)) {}
  void HandleEvent(const Event& event) override { callback_(event); }

 private:
  std::function<void(const Event&)> callback_;
};

}  // namespace mill

#endif  // MILL_IO_REACTOR_EVENT_HANDLER_H_
