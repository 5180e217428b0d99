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
#include "examples/common/server_main.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 7000, "TCP port (0: let the kernel pick a free one)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::ZeroDuration(),
          "close connections idle this long (0: never)");

namespace {
using mill::examples::Fail;
constexpr absl::string_view kProgram = "echo_server";
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "TCP echo server on Mill-IO.\n  echo_server --port=7000 "
      "--mode=pool|direct --workers=4");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return Fail(kProgram, absl::StrCat("unexpected argument '", rest[1], "'"));
  }
  absl::StatusOr<mill::examples::ServerSetup> setup =
      mill::examples::ValidateCommonServerFlags(
          mill::examples::ReadCommonServerFlags(
              absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_idle_timeout)));
  if (!setup.ok()) return Fail(kProgram, setup.status().message());

  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create(setup->loop);
  if (!loop.ok()) return Fail(kProgram, loop.status().ToString());

  mill::TcpServerCallbacks callbacks;
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         mill::ByteBuffer& input) {
    // Fails only if the connection is closing; then there is nobody to
    // answer anyway.
    (void)conn->Send(input.view());
    input.Consume(input.size());
  };
  mill::TcpServerOptions options;
  options.connection.socket.no_delay = true;
  options.max_connections = setup->max_connections;
  options.connection.idle_timeout = setup->idle_timeout;
  absl::StatusOr<std::unique_ptr<mill::TcpServer>> server =
      mill::TcpServer::Create(loop->get(), setup->address, std::move(callbacks),
                              options);
  if (!server.ok()) return Fail(kProgram, server.status().ToString());

  const int exit_code =
      mill::examples::ServeUntilSignal(kProgram, **loop, **server);
  const mill::TcpServerStats stats = (*server)->stats();
  server->reset();
  loop->reset();
  std::fprintf(stderr,
               "echo_server: stopped; %llu connections, %llu bytes echoed\n",
               static_cast<unsigned long long>(stats.accepted),
               static_cast<unsigned long long>(stats.bytes_written));
  return exit_code;
}
