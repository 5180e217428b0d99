// What every example server's main() shares: the flags --address, --unix,
// --workers, --mode, --io and --max_connections (defined here, once),
// validating them with the binary's own --port and --idle_timeout (whose
// defaults differ per binary) into loop and server options, and serving until
// SIGINT/SIGTERM with a graceful shutdown.
//
// Thread-safety: call from main() only. Ownership: see ServerProgram.
#ifndef MILL_IO_EXAMPLES_COMMON_SERVER_MAIN_H_
#define MILL_IO_EXAMPLES_COMMON_SERVER_MAIN_H_

#include <cstddef>
#include <memory>
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
  // --io: auto, epoll, uring or default (EventLoopOptions::io).
  std::string io = "default";
  int max_connections = 0;
  // --unix: a Unix socket path (or @abstract name); replaces address:port.
  std::string unix_path;
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

// One example server's main(), the parts every binary shares: the command
// line (its own --port and --idle_timeout, whose defaults differ per binary,
// plus the common flags above), the loop they ask for, the common server
// options, errors as "<program>: <why>" with exit code 2, serving until
// SIGINT/SIGTERM with a graceful shutdown, and a last line of statistics.
//
//   ServerProgram program("echo_server", "TCP echo server ...", FLAGS_port,
//                         FLAGS_idle_timeout);
//   if (!program.ParseCommandLine(argc, argv)) return program.exit_code();
//   EventLoop* loop = program.CreateLoop();
//   if (loop == nullptr) return program.exit_code();
//   TcpServerCallbacks callbacks = ...;
//   if (!program.Listen(std::move(callbacks), program.server_options())) {
//     return program.exit_code();
//   }
//   return program.Serve();
//
// Ownership: the program owns the loop and the server and destroys the
// server, then the loop. Objects the server's callbacks use must outlive
// Serve() (which destroys the server); objects that use the loop must be
// destroyed before the program (declare them after it).
class ServerProgram {
 public:
  ServerProgram(absl::string_view name, absl::string_view usage,
                const absl::Flag<int>& port,
                const absl::Flag<absl::Duration>& idle_timeout);
  ~ServerProgram();
  ServerProgram(const ServerProgram&) = delete;
  ServerProgram& operator=(const ServerProgram&) = delete;

  // Sets the usage message, parses the command line (no positional
  // arguments; a flag's name may be spelled with '-' for '_':
  // --tls-cert is --tls_cert) and validates the common flags. False after
  // printing why.
  bool ParseCommandLine(int argc, char** argv);
  // The validated common flags (after ParseCommandLine returned true).
  const ServerSetup& setup() const { return setup_; }

  // Prints "<program>: <message>" on stderr and returns 2 (bad usage), which
  // exit_code() returns from then on.
  int Fail(absl::string_view message);
  // 0, or the code of the last failure.
  int exit_code() const { return exit_code_; }

  // Creates the loop --mode and --workers ask for; nullptr after printing
  // why.
  EventLoop* CreateLoop();

  // TCP_NODELAY, --max_connections and the idle timeout; a binary adds its
  // own.
  TcpServerOptions server_options() const;

  // Creates the server on --address:--port, or --unix (after CreateLoop). False
  // after printing why.
  bool Listen(TcpServerCallbacks callbacks, const TcpServerOptions& options);

  // Watches stop requests (StopRequests, stop_requests.h: SIGINT/SIGTERM;
  // on Windows also the stop event), prints "listening on ADDRESS:PORT"
  // (or "listening on unix:PATH" with --unix)
  // (flushed), runs the loop until a stop request, then stops and destroys the
  // server and prints "<program>: stopped; N connections, M bytes sent"
  // (", K TLS handshakes failed" appended when the server has a layer).
  // Returns the process exit code: 0 after a graceful shutdown.
  int Serve();

 private:
  const std::string name_;
  const std::string usage_;
  const absl::Flag<int>& port_;
  const absl::Flag<absl::Duration>& idle_timeout_;
  ServerSetup setup_;
  int exit_code_ = 0;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<TcpServer> server_;
  bool tls_ = false;  // the server has a layer (TLS)
};

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_SERVER_MAIN_H_
