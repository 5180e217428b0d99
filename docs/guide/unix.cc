// Step 6: Unix-domain sockets. The same server and client on a local socket
// (here in Linux's abstract namespace: no file to clean up), the peer's
// credentials, and a socketpair end adopted as a Connection.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "net/unix_credentials.h"
#include "reactor/event_loop.h"

int main() {
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create();
  if (!loop.ok()) return 1;
  std::thread runner([&] { (void)(*loop)->Run(); });

  // Only this user may talk to the server: the kernel vouches for the uid.
  mill::TcpServerCallbacks server_callbacks;
  server_callbacks.on_connect = [](const mill::ConnectionPtr& conn) {
    absl::StatusOr<mill::PeerCredentials> peer =
        mill::GetPeerCredentials(*conn);
    if (!peer.ok() || peer->uid != getuid()) return conn->Close();
    (void)conn->Send(absl::StrCat("hello, pid ", peer->pid, "\n"));
  };
  const std::string where = absl::StrCat("unix:@mill_guide_", getpid());
  auto server = mill::TcpServer::Create(
      loop->get(), *mill::SocketAddress::Parse(where), server_callbacks);
  if (!server.ok()) return 1;

  std::atomic<int> lines{0};
  mill::ConnectionCallbacks client_callbacks;
  client_callbacks.on_data = [&](const mill::ConnectionPtr&,
                                 mill::ByteBuffer& input) {
    for (size_t eol; (eol = input.find('\n')) != mill::ByteBuffer::npos;) {
      std::printf("got '%s'\n", input.Take(eol).c_str());
      input.Consume(1);
      ++lines;
    }
  };
  auto client = mill::TcpClient::Create(loop->get(), client_callbacks);
  if (!client.ok()) return 1;
  // "unix:..." is an address, not a name: nothing is resolved.
  (*client)->Connect(where, [](absl::StatusOr<mill::ConnectionPtr> conn) {
    if (!conn.ok())
      std::fprintf(stderr, "%s\n", conn.status().ToString().c_str());
  });

  // A socket made elsewhere (here a socketpair) becomes a Connection too.
  int ends[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return 1;
  absl::StatusOr<mill::ConnectionPtr> adopted = (*client)->Adopt(ends[0]);
  if (!adopted.ok()) return 1;
  (void)write(ends[1], "hello over a socketpair\n", 24);

  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (lines < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  close(ends[1]);
  client->reset();  // the client, then the server, then the loop
  server->reset();
  (*loop)->Stop();
  runner.join();
  return lines == 2 ? 0 : 1;
}
