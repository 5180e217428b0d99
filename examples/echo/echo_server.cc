// echo_server: a TCP echo server on Mill-IO's TcpServer.
//
//   bazel run //examples/echo:echo_server -- --port=7000 --mode=pool
//
// Prints "listening on ADDRESS:PORT" on stdout once it accepts connections
// (with --port=0 the port is the kernel's pick), echoes every byte back,
// and on SIGINT or SIGTERM stops the loop, closes every connection and
// exits with status 0. Bad flags print a message and exit non-zero.

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "examples/common/server_main.h"
#include "net/connection.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 7000, "TCP port (0: let the kernel pick a free one)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::ZeroDuration(),
          "close connections idle this long (0: never)");

int main(int argc, char** argv) {
  mill::examples::ServerProgram program(
      "echo_server",
      "TCP echo server on Mill-IO.\n  echo_server --port=7000 "
      "--mode=pool|direct --workers=4",
      FLAGS_port, FLAGS_idle_timeout);
  if (!program.ParseCommandLine(argc, argv)) return program.exit_code();

  mill::EventLoop* const loop = program.CreateLoop();
  if (loop == nullptr) return program.exit_code();

  mill::TcpServerCallbacks callbacks;
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         mill::ByteBuffer& input) {
    // Fails only if the connection is closing; then there is nobody to
    // answer anyway.
    (void)conn->Send(input.view());
    input.Consume(input.size());
  };
  if (!program.Listen(std::move(callbacks), program.server_options())) {
    return program.exit_code();
  }
  return program.Serve();
}
