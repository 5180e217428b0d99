// echo_server: a TCP echo server on Mill-IO's TcpServer.
//
//   bazel run //examples/echo:echo_server -- --port=7000 --mode=pool
//
// Prints "listening on ADDRESS:PORT" on stdout once it accepts connections
// (with --port=0 the port is the kernel's pick), echoes every byte back,
// and on SIGINT or SIGTERM stops the loop, closes every connection and
// exits with status 0. Bad flags print a message and exit non-zero.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

ABSL_FLAG(std::string, address, "127.0.0.1",
          "numeric IPv4 or IPv6 address to listen on");
ABSL_FLAG(int, port, 7000, "TCP port (0: let the kernel pick a free one)");
ABSL_FLAG(int, workers, 4, "handler threads in --mode=pool");
ABSL_FLAG(std::string, mode, "pool",
          "dispatch mode: pool (handlers on workers) or direct (on the loop "
          "thread)");
ABSL_FLAG(int, max_connections, 0, "open connections at most (0: no limit)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::ZeroDuration(),
          "close connections idle this long (0: never)");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "echo_server: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "TCP echo server on Mill-IO.\n  echo_server --port=7000 "
      "--mode=pool|direct --workers=4");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return Fail(absl::StrCat("unexpected argument '", rest[1], "'"));
  }
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    return Fail(absl::StrCat("--port must be in [0, 65535], got ", port));
  }
  const int workers = absl::GetFlag(FLAGS_workers);
  if (workers < 1) {
    return Fail(absl::StrCat("--workers must be at least 1, got ", workers));
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  mill::EventLoopOptions loop_options;
  loop_options.workers = workers;
  if (mode == "pool") {
    loop_options.dispatch_mode = mill::DispatchMode::kPool;
  } else if (mode == "direct") {
    loop_options.dispatch_mode = mill::DispatchMode::kDirect;
  } else {
    return Fail(
        absl::StrCat("--mode must be 'pool' or 'direct', got '", mode, "'"));
  }
  if (absl::GetFlag(FLAGS_max_connections) < 0) {
    return Fail("--max_connections must not be negative");
  }
  const std::string host = absl::GetFlag(FLAGS_address);
  absl::StatusOr<mill::SocketAddress> address = mill::SocketAddress::Parse(
      host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port)
                                          : absl::StrCat(host, ":", port));
  if (!address.ok()) return Fail(std::string(address.status().message()));

  // Sockets use MSG_NOSIGNAL already; this covers anything else.
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create(loop_options);
  if (!loop.ok()) return Fail(loop.status().ToString());

  mill::TcpServerCallbacks callbacks;
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         absl::string_view data) {
    // Fails only if the connection is closing; then there is nobody to
    // answer anyway.
    (void)conn->Send(data);
  };
  mill::TcpServerOptions options;
  options.connection.no_delay = true;
  options.max_connections =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_connections));
  options.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  absl::StatusOr<std::unique_ptr<mill::TcpServer>> server =
      mill::TcpServer::Create(loop->get(), *address, std::move(callbacks),
                              options);
  if (!server.ok()) return Fail(server.status().ToString());

  // Before announcing readiness, so that a signal sent as soon as the line
  // is read already stops the loop gracefully.
  absl::Status status = mill::StopOnSignals(loop->get());
  if (!status.ok()) return Fail(status.ToString());

  std::printf("listening on %s\n",
              (*server)->local_address().ToString().c_str());
  std::fflush(stdout);

  status = (*loop)->Run();
  // Graceful shutdown: close every connection and the listener, then the
  // loop (the server must go first: it deregisters from the loop).
  (void)mill::StopOnSignals(nullptr);
  (*server)->Stop();
  const mill::TcpServerStats stats = (*server)->stats();
  server->reset();
  loop->reset();
  std::fprintf(stderr,
               "echo_server: stopped; %llu connections, %llu bytes echoed\n",
               static_cast<unsigned long long>(stats.accepted),
               static_cast<unsigned long long>(stats.bytes_written));
  if (!status.ok()) return Fail(status.ToString());
  return 0;
}
