// echo_server: a TCP echo server on Mill-IO's TcpServer.
//
//   bazel run //examples/echo:echo_server -- --port=7000 --mode=pool
//
// Prints "listening on ADDRESS:PORT" on stdout once it accepts connections
// (with --port=0 the port is the kernel's pick), echoes every byte back,
// and on SIGINT or SIGTERM stops the loop, closes every connection and
// exits with status 0. Bad flags print a message and exit non-zero.

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
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
  int exit_code = 0;
  const std::optional<mill::examples::ServerSetup> setup =
      mill::examples::ParseServerCommandLine(
          argc, argv, kProgram,
          "TCP echo server on Mill-IO.\n  echo_server --port=7000 "
          "--mode=pool|direct --workers=4",
          FLAGS_port, FLAGS_idle_timeout, &exit_code);
  if (!setup) return exit_code;

  std::unique_ptr<mill::EventLoop> loop =
      mill::examples::CreateLoop(kProgram, *setup);
  if (loop == nullptr) return 2;

  mill::TcpServerCallbacks callbacks;
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         mill::ByteBuffer& input) {
    // Fails only if the connection is closing; then there is nobody to
    // answer anyway.
    (void)conn->Send(input.view());
    input.Consume(input.size());
  };
  mill::TcpServerOptions options = mill::examples::CommonServerOptions(*setup);
  absl::StatusOr<std::unique_ptr<mill::TcpServer>> server =
      mill::TcpServer::Create(loop.get(), setup->address, std::move(callbacks),
                              options);
  if (!server.ok()) return Fail(kProgram, server.status().ToString());

  exit_code = mill::examples::ServeUntilSignal(kProgram, *loop, **server);
  const mill::TcpServerStats stats = (*server)->stats();
  server->reset();
  loop.reset();
  std::fprintf(stderr,
               "echo_server: stopped; %llu connections, %llu bytes echoed\n",
               static_cast<unsigned long long>(stats.accepted),
               static_cast<unsigned long long>(stats.bytes_written));
  return exit_code;
}
