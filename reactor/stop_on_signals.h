// StopOnSignals: makes SIGINT and SIGTERM (or other signals) stop an
// EventLoop, so a server's main() can Run() until the process is told to
// quit.
//
// Thread-safety: call it from one thread at a time (it installs process-wide
// signal handlers with sigaction). The installed handler is
// async-signal-safe: it only calls EventLoop::Stop(), which stores a flag and
// writes to the loop's wakers.
//
// Ownership: the handler keeps a plain pointer to the loop; detach it (pass
// nullptr) before the loop is destroyed, or a late signal calls into freed
// memory.
//
// Windows (stop_on_signals_win.cc) has no such signals; a console process
// gets console control events, which map to the signal numbers as Go's
// os/signal maps them:
//   2 (SIGINT)    CTRL_C_EVENT and CTRL_BREAK_EVENT (Ctrl+C, Ctrl+Break,
//                 GenerateConsoleCtrlEvent)
//   15 (SIGTERM)  CTRL_CLOSE_EVENT (console window closed), CTRL_LOGOFF_EVENT,
//                 CTRL_SHUTDOWN_EVENT
//   21 (SIGBREAK) CTRL_BREAK_EVENT
// Other numbers are InvalidArgument. The handler is installed once with
// SetConsoleCtrlHandler and runs on a thread the system starts, so it is not
// restricted as a signal handler is. After a close, logoff or shutdown event
// it stops the loop and then blocks: the system ends the process as soon as
// the handler returns, and blocking lets main() return from Run() and exit
// first (within the system's timeout, 5 s for a closed console). Detached
// (nullptr), the requested events are swallowed, as ignored signals are.
#ifndef MILL_IO_REACTOR_STOP_ON_SIGNALS_H_
#define MILL_IO_REACTOR_STOP_ON_SIGNALS_H_

#include <vector>

#include "absl/status/status.h"

namespace mill {

class EventLoop;

// Makes SIGINT and SIGTERM (or the given signals) call loop->Stop(). One
// loop at a time: a later call replaces the loop. Pass nullptr to detach
// (the signal handlers stay installed but do nothing).
//
//   mill::StopOnSignals(loop.get());
//   absl::Status status = loop->Run();  // returns on SIGINT/SIGTERM
//   mill::StopOnSignals(nullptr);       // before the loop goes away
absl::Status StopOnSignals(EventLoop* loop, const std::vector<int>& signals = {
                                                2 /*SIGINT*/, 15 /*SIGTERM*/});

}  // namespace mill

#endif  // MILL_IO_REACTOR_STOP_ON_SIGNALS_H_
