// Step 3: connecting out. A TcpClient opens a Connection (the same type a
// server hands out) and reports the result to a callback.
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
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

  // A server that greets every connection and closes it.
  mill::TcpServerCallbacks server_callbacks;
  server_callbacks.on_connect = [](const mill::ConnectionPtr& conn) {
    (void)conn->Send("hello from the server\n");
    conn->Close();  // after the greeting is flushed
  };
  auto server = mill::TcpServer::Create(
      loop->get(), mill::SocketAddress::LoopbackIPv4(0), server_callbacks);
  if (!server.ok()) return 1;

  // The client collects lines; a partial line stays in the input buffer.
  std::atomic<bool> done{false};
  std::string greeting;
  mill::ConnectionCallbacks client_callbacks;
  client_callbacks.on_data = [&](const mill::ConnectionPtr&,
                                 mill::ByteBuffer& input) {
    const size_t eol = input.find('\n');
    if (eol == mill::ByteBuffer::npos) return;  // wait for the rest
    greeting = input.Take(eol);
    input.Consume(1);
  };
  client_callbacks.on_close = [&](const mill::ConnectionPtr&,
                                  mill::CloseReason reason,
                                  const absl::Status&) { done = true; };
  auto client = mill::TcpClient::Create(loop->get(), client_callbacks);
  if (!client.ok()) return 1;

  // "localhost:PORT" is resolved off the loop; a refused or timed-out
  // connect arrives here as an error status.
  const std::string target =
      absl::StrCat("localhost:", (*server)->local_address().port());
  (*client)->Connect(target, [&](absl::StatusOr<mill::ConnectionPtr> conn) {
    if (!conn.ok()) {
      std::fprintf(stderr, "connect: %s\n", conn.status().ToString().c_str());
      done = true;
    }
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!done.load() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  std::printf("got '%s'\n", greeting.c_str());

  client->reset();  // the client and server go before the loop
  server->reset();
  (*loop)->Stop();
  runner.join();
  return greeting == "hello from the server" ? 0 : 1;
}
