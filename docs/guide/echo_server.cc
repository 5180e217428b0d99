// Step 2: a TCP echo server. The connection's input buffer keeps what the
// callback does not consume; here everything is echoed and consumed.
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "net/tcp_stream.h"
#include "reactor/event_loop.h"

int main() {
  // Pool mode (the default): handlers run on worker threads and may block.
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create();
  if (!loop.ok()) return 1;

  mill::TcpServerCallbacks callbacks;
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         mill::ByteBuffer& input) {
    (void)conn->Send(input.view());  // any thread may Send
    input.Consume(input.size());
  };
  mill::TcpServerOptions options;
  options.connection.idle_timeout = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<mill::TcpServer>> server =
      mill::TcpServer::Create(loop->get(), mill::SocketAddress::LoopbackIPv4(0),
                              callbacks, options);
  if (!server.ok()) return 1;
  const uint16_t port = (*server)->local_address().port();
  std::thread runner([&] { (void)(*loop)->Run(); });

  // A blocking client, to show the server works.
  absl::StatusOr<mill::TcpStream> client = mill::TcpStream::ConnectAndWait(
      mill::SocketAddress::LoopbackIPv4(port), absl::Seconds(5));
  if (!client.ok()) return 1;
  const std::string message = "hello, echo";
  (void)client->Write(message.data(), message.size());
  std::string echoed;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (echoed.size() < message.size() && absl::Now() < deadline) {
    char buf[64];
    const ssize_t n = client->Read(buf, sizeof(buf));
    if (n > 0) echoed.append(buf, static_cast<size_t>(n));
  }
  std::printf("echoed '%s'\n", echoed.c_str());

  (*server)->Stop();  // closes every connection
  (*loop)->Stop();
  runner.join();
  return echoed == message ? 0 : 1;
}
