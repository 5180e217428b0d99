// What every example server's main() shares: the flags --address,
// --workers, --mode and --max_connections (defined here, once), validating
// them with the binary's own --port and --idle_timeout (whose defaults differ
// per binary) into loop and server options, and serving until SIGINT/SIGTERM
// with a graceful shutdown.
//
// Thread-safety: call from main() only. Ownership: borrows the loop and the
// server passed in.
#ifndef MILL_IO_EXAMPLES_COMMON_SERVER_MAIN_H_
#define MILL_IO_EXAMPLES_COMMON_SERVER_MAIN_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace examples {

// The common flags' values.
struct CommonServerFlags {
  std::string address;
  int port = 0;
  int workers = 1;
  std::string mode;
  int max_connections = 0;
  absl::Duration idle_timeout = absl::ZeroDuration();
};

// Validated settings. Errors name the flag ("--port must be in [0, 65535],
// got 70000").
struct ServerSetup {
  EventLoopOptions loop;
  SocketAddress address;
  size_t max_connections = 0;
  absl::Duration idle_timeout = absl::ZeroDuration();
};
absl::StatusOr<ServerSetup> ValidateCommonServerFlags(
    const CommonServerFlags& flags);

// The shared flags as parsed, plus the binary's own --port and
// --idle_timeout. Call after absl::ParseCommandLine.
CommonServerFlags ReadCommonServerFlags(int port, absl::Duration idle_timeout);

// Prints "<program>: <message>" on stderr and returns 2 (bad usage).
int Fail(absl::string_view program, absl::string_view message);

// The start of every example server's main(): sets the usage message,
// parses the command line (no positional arguments), and validates the
// common flags with the binary's own --port and --idle_timeout. On error it
// prints "<program>: <why>", sets *exit_code to 2 and returns nullopt.
std::optional<ServerSetup> ParseServerCommandLine(
    int argc, char** argv, absl::string_view program, absl::string_view usage,
    const absl::Flag<int>& port, const absl::Flag<absl::Duration>& idle_timeout,
    int* exit_code);

// The loop the common flags ask for, or nullptr after printing why.
std::unique_ptr<EventLoop> CreateLoop(absl::string_view program,
                                      const ServerSetup& setup);

// Server options from the common flags: TCP_NODELAY, --max_connections and
// the idle timeout; a binary adds its own.
TcpServerOptions CommonServerOptions(const ServerSetup& setup);

// Installs the SIGINT/SIGTERM handlers, prints "listening on ADDRESS:PORT"
// (flushed), runs the loop until a signal, then stops the server. Returns
// the process exit code: 0 after a graceful shutdown.
int ServeUntilSignal(absl::string_view program, EventLoop& loop,
                     TcpServer& server);

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_SERVER_MAIN_H_
