#include "examples/common/server_main.h"

#include <signal.h>

#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, address, "127.0.0.1",
          "numeric IPv4 or IPv6 address to listen on");
ABSL_FLAG(int, workers, 4, "handler threads in --mode=pool");
ABSL_FLAG(std::string, mode, "pool",
          "dispatch mode: pool (handlers on workers) or direct (on the loop "
          "thread)");
ABSL_FLAG(int, max_connections, 0, "open connections at most (0: no limit)");

namespace mill {
namespace examples {

CommonServerFlags ReadCommonServerFlags(int port, absl::Duration idle_timeout) {
  CommonServerFlags flags;
  flags.address = absl::GetFlag(FLAGS_address);
  flags.port = port;
  flags.workers = absl::GetFlag(FLAGS_workers);
  flags.mode = absl::GetFlag(FLAGS_mode);
  flags.max_connections = absl::GetFlag(FLAGS_max_connections);
  flags.idle_timeout = idle_timeout;
  return flags;
}

absl::StatusOr<ServerSetup> ValidateCommonServerFlags(
    const CommonServerFlags& flags) {
  if (flags.port < 0 || flags.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--port must be in [0, 65535], got ", flags.port));
  }
  if (flags.workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers must be at least 1, got ", flags.workers));
  }
  ServerSetup setup;
  setup.loop.workers = flags.workers;
  if (flags.mode == "pool") {
    setup.loop.dispatch_mode = DispatchMode::kPool;
  } else if (flags.mode == "direct") {
    setup.loop.dispatch_mode = DispatchMode::kDirect;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mode must be 'pool' or 'direct', got '", flags.mode, "'"));
  }
  if (flags.max_connections < 0) {
    return absl::InvalidArgumentError("--max_connections must not be negative");
  }
  setup.max_connections = static_cast<size_t>(flags.max_connections);
  if (flags.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--idle_timeout must not be negative");
  }
  setup.idle_timeout = flags.idle_timeout;
  absl::StatusOr<SocketAddress> address = SocketAddress::Parse(
      flags.address.find(':') != std::string::npos
          ? absl::StrCat("[", flags.address, "]:", flags.port)
          : absl::StrCat(flags.address, ":", flags.port));
  if (!address.ok()) return address.status();
  setup.address = *address;
  return setup;
}

std::optional<ServerSetup> ParseServerCommandLine(
    int argc, char** argv, absl::string_view program, absl::string_view usage,
    const absl::Flag<int>& port, const absl::Flag<absl::Duration>& idle_timeout,
    int* exit_code) {
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    *exit_code =
        Fail(program, absl::StrCat("unexpected argument '", rest[1], "'"));
    return std::nullopt;
  }
  absl::StatusOr<ServerSetup> setup = ValidateCommonServerFlags(
      ReadCommonServerFlags(absl::GetFlag(port), absl::GetFlag(idle_timeout)));
  if (!setup.ok()) {
    *exit_code = Fail(program, setup.status().message());
    return std::nullopt;
  }
  return *std::move(setup);
}

std::unique_ptr<EventLoop> CreateLoop(absl::string_view program,
                                      const ServerSetup& setup) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop =
      EventLoop::Create(setup.loop);
  if (!loop.ok()) {
    Fail(program, loop.status().ToString());
    return nullptr;
  }
  return *std::move(loop);
}

TcpServerOptions CommonServerOptions(const ServerSetup& setup) {
  TcpServerOptions options;
  options.connection.socket.no_delay = true;
  options.max_connections = setup.max_connections;
  options.connection.idle_timeout = setup.idle_timeout;
  return options;
}

int Fail(absl::string_view program, absl::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()),
               program.data(), static_cast<int>(message.size()),
               message.data());
  return 2;
}

int ServeUntilSignal(absl::string_view program, EventLoop& loop,
                     TcpServer& server) {
  // Sockets use MSG_NOSIGNAL already; this covers anything else.
  signal(SIGPIPE, SIG_IGN);
  // Before announcing readiness, so that a signal sent as soon as the line
  // is read already stops the loop gracefully.
  absl::Status status = StopOnSignals(&loop);
  if (!status.ok()) return Fail(program, status.ToString());
  std::printf("listening on %s\n", server.local_address().ToString().c_str());
  std::fflush(stdout);

  status = loop.Run();
  // Graceful shutdown: close every connection and the listener; the caller
  // then destroys the server before the loop.
  (void)StopOnSignals(nullptr);
  server.Stop();
  if (!status.ok()) {
    Fail(program, status.ToString());
    return 1;
  }
  return 0;
}

}  // namespace examples
}  // namespace mill
