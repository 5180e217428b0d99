// What a thread of an EventLoop knows about itself, and the helpers the
// loop's two source files share. Internal: not part of the API.
#ifndef MILL_IO_REACTOR_INTERNAL_LOOP_CONTEXT_H_
#define MILL_IO_REACTOR_INTERNAL_LOOP_CONTEXT_H_

#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include "poll/token.h"
#include "reactor/event_loop.h"

namespace mill {
namespace reactor_internal {

// The wakers' poller token. Registration generations start at 1.
inline constexpr Token kWakerToken(0);

struct ThreadContext {
  // The loop this thread belongs to while it runs (IsInLoopThread).
  const EventLoop* loop = nullptr;
  // The loop whose RunInLoop tasks this thread is running (inline nesting).
  const EventLoop* task_loop = nullptr;
  // Where the wheel's callbacks put due timers during Advance.
  std::vector<std::shared_ptr<LoopTimer>>* collecting = nullptr;
};

inline thread_local ThreadContext t_context;

}  // namespace reactor_internal

// The one place that catches, counts and reports what a handler, a timer
// callback, a task or an on_released callback throws (guarantee 4).
template <typename F>
void EventLoop::Guarded(Token token, F&& fn) {
  try {
    std::forward<F>(fn)();
  } catch (...) {
    ReportException(token, std::current_exception());
  }
}

}  // namespace mill

#endif  // MILL_IO_REACTOR_INTERNAL_LOOP_CONTEXT_H_
