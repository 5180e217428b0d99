// file_watcher DIR [DIR...]
//
// Watches the given directories recursively (including subdirectories
// created later) through the Mill-IO event loop and prints one line per
// change on stdout, flushed as it happens:
//
//   created <path>
//   modified <path>
//   deleted <path>
//   moved <from> -> <to>
//   overflow: events lost
//
// The last means the kernel's event queue (fs.inotify.max_queued_events)
// overflowed while the watcher could not keep up (it was stopped, say):
// changes were lost, and whoever consumes the lines should rescan. The
// watcher itself rescans its trees and carries on.
//
// Once every directory is watched it says so on stderr ("watching N
// directories"). SIGINT or SIGTERM stops it with exit status 0, also when
// they keep arriving while it exits.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "examples/file_watcher/inotify_watcher.h"
#include "reactor/event_loop.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Usage: file_watcher DIR [DIR...]\n"
      "Prints created/modified/deleted/moved lines for changes under DIRs.");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::fprintf(stderr, "usage: file_watcher DIR [DIR...]\n");
    return 2;
  }

  absl::StatusOr<std::unique_ptr<mill::InotifyWatcher>> watcher =
      mill::InotifyWatcher::Create();
  if (!watcher.ok()) {
    std::fprintf(stderr, "file_watcher: %s\n",
                 watcher.status().ToString().c_str());
    return 1;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    absl::Status added = (*watcher)->AddRecursive(args[i]);
    if (!added.ok()) {
      std::fprintf(stderr, "file_watcher: %s: %s\n", args[i],
                   added.ToString().c_str());
      return 1;
    }
  }

  // The stop signals' handler (StopOnSignals) runs on whichever thread the
  // kernel picks among those not blocking them. Blocking them while the loop
  // starts any threads (which inherit the mask), and only then unblocking
  // them here, makes it run on this thread alone, so it can never run
  // concurrently with the teardown below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous_mask);

  // One source, lines must come out in order: direct dispatch on the loop
  // thread is the natural mode (no hand-off, no re-arm system call).
  mill::EventLoopOptions options;
  options.dispatch_mode = mill::DispatchMode::kDirect;
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create(options);
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  if (!loop.ok()) {
    std::fprintf(stderr, "file_watcher: %s\n",
                 loop.status().ToString().c_str());
    return 1;
  }
  mill::InotifyWatcher* w = watcher->get();
  // Bounded reading per readiness event (guarantee 7 of event_loop.h): a
  // burst is read over several calls; what is left keeps the descriptor
  // readable, and the level-triggered loop reports it again.
  const size_t read_budget = (*loop)->options().read_budget;
  absl::Status registered = (*loop)->Register(
      w->fd(), mill::Token(1), mill::Interest::Readable(),
      [w, read_budget](const mill::Event&) {
        std::vector<mill::WatchEvent> events;
        absl::Status read = w->ReadEvents(&events, read_budget);
        for (const mill::WatchEvent& event : events) {
          std::fprintf(stdout, "%s\n", event.ToLine().c_str());
        }
        std::fflush(stdout);
        if (!read.ok()) {
          std::fprintf(stderr, "file_watcher: %s\n", read.ToString().c_str());
        }
      });
  if (!registered.ok()) {
    std::fprintf(stderr, "file_watcher: %s\n", registered.ToString().c_str());
    return 1;
  }
  if (absl::Status s = mill::StopOnSignals(loop->get()); !s.ok()) {
    std::fprintf(stderr, "file_watcher: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "watching %zu directories\n", w->watch_count());
  std::fflush(stderr);

  absl::Status ran = (*loop)->Run();
  // Detach before the loop is destroyed: a SIGTERM arriving from here on
  // (a supervisor repeating it, say) must not call Stop() on a freed loop.
  // The handler runs only on this thread (see above), so none is in flight.
  (void)mill::StopOnSignals(nullptr);
  (void)(*loop)->Deregister(mill::Token(1));
  if (!ran.ok()) {
    std::fprintf(stderr, "file_watcher: %s\n", ran.ToString().c_str());
    return 1;
  }
  return 0;
}
