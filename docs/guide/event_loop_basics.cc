// Step 1: the raw EventLoop. Register a descriptor with a handler, add a
// timer, stop the loop from a handler (or on SIGINT/SIGTERM), and run it.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "reactor/event_loop.h"

int main() {
  // Direct mode: handlers run inline on the thread that calls Run().
  mill::EventLoopOptions options;
  options.dispatch_mode = mill::DispatchMode::kDirect;
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create(options);
  if (!loop.ok()) {
    std::fprintf(stderr, "%s\n", loop.status().ToString().c_str());
    return 1;
  }
  // Ctrl-C stops the loop; detach before the loop is destroyed.
  if (!mill::StopOnSignals(loop->get()).ok()) return 1;

  int fds[2];
  if (pipe(fds) != 0) return 1;
  std::string received;
  // The handler runs when the read end is readable; the token names it.
  absl::Status registered =
      (*loop)->Register(fds[0], mill::Token(1), mill::Interest::Readable(),
                        [&](const mill::Event& event) {
                          char buf[64];
                          const ssize_t n = read(fds[0], buf, sizeof(buf));
                          if (n > 0)
                            received.append(buf, static_cast<size_t>(n));
                          if (received == "tick") (*loop)->Stop();
                        });
  if (!registered.ok()) return 1;

  // A timer: 10 ms from now, write to the pipe.
  (*loop)->RunAfter(absl::Milliseconds(10),
                    [&] { (void)write(fds[1], "tick", 4); });

  absl::Status run = (*loop)->Run();  // until Stop()
  std::printf("received '%s'\n", received.c_str());

  // Deregister before closing the descriptor.
  (void)(*loop)->Deregister(mill::Token(1));
  close(fds[0]);
  close(fds[1]);
  (void)mill::StopOnSignals(nullptr);
  return run.ok() && received == "tick" ? 0 : 1;
}
