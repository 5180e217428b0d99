// A consumer of the installed package that uses the event loop and //net:
// an echo server and a client on loopback, one message there and back.
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

int main() {
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create();
  if (!loop.ok()) return 1;
  std::thread runner([&] { (void)(*loop)->Run(); });

  mill::TcpServerCallbacks server_callbacks;
  server_callbacks.on_data = [](const mill::ConnectionPtr& conn,
                                mill::ByteBuffer& input) {
    (void)conn->Send(input.Take(input.size()));
  };
  auto server = mill::TcpServer::Create(
      loop->get(), mill::SocketAddress::LoopbackIPv4(0), server_callbacks);
  if (!server.ok()) return 1;

  const std::string message = "hello through the event loop\n";
  std::atomic<bool> done{false};
  std::string echoed;
  mill::ConnectionCallbacks client_callbacks;
  client_callbacks.on_data = [&](const mill::ConnectionPtr& conn,
                                 mill::ByteBuffer& input) {
    echoed += input.Take(input.size());
    if (echoed.size() >= message.size()) {
      conn->Close();
      done = true;
    }
  };
  auto client = mill::TcpClient::Create(loop->get(), client_callbacks);
  if (!client.ok()) return 1;
  (*client)->Connect((*server)->local_address(),
                     [&](absl::StatusOr<mill::ConnectionPtr> conn) {
                       if (!conn.ok()) {
                         done = true;
                         return;
                       }
                       (void)(*conn)->Send(message);
                     });
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!done.load() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  client->reset();
  server->reset();
  (*loop)->Stop();
  runner.join();
  std::printf("echo_roundtrip: %s", echoed.c_str());
  return echoed == message ? 0 : 1;
}
