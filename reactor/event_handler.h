// EventHandler: what the EventLoop calls when a registered source is ready.
//
// Thread-safety: the loop never runs two invocations of one handler at once
// (see the guarantees in reactor/event_loop.h), so a handler needs no locking
// for state that only it touches. Different handlers may run concurrently on
// the loop's worker threads in pool mode.
//
// Ownership: the loop shares ownership of a registered handler and releases
// it only after the handler's last invocation has returned.
#ifndef MILL_IO_REACTOR_EVENT_HANDLER_H_
#define MILL_IO_REACTOR_EVENT_HANDLER_H_

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
