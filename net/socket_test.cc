// Tests of SocketAddress, TcpListener and TcpStream.
#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "net/tcp_listener.h"
#include "net/tcp_stream.h"
#include "net/testing/socket_checks.h"

namespace mill {
namespace {

using net_testing::GetSocketOptionInt;
using net_testing::IsNonBlocking;

int GetOpt(int fd, int level, int name) {
  return GetSocketOptionInt(fd, level, name);
}

bool IsOpen(int fd) { return net_testing::IsDescriptorOpen(fd); }

// Non-blocking, where the platform can tell (not Windows).
bool NonBlockingOrUnknown(int fd) {
  const std::optional<bool> on = IsNonBlocking(fd);
  return !on.has_value() || *on;
}

// Accepts one connection, waiting up to 5 s.
TcpStream AcceptOne(TcpListener& listener) {
  for (int i = 0; i < 500; ++i) {
    absl::StatusOr<TcpStream> s = listener.Accept();
    if (s.ok()) return std::move(*s);
    EXPECT_TRUE(absl::IsUnavailable(s.status())) << s.status();
    net_testing::WaitReadable(listener.fd(), 10);
  }
  ADD_FAILURE() << "nothing to accept";
  return TcpStream();
}

TEST(SocketAddressTest, ParsesAndPrintsIPv4) {
  absl::StatusOr<SocketAddress> a = SocketAddress::Parse("127.0.0.1:7000");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port(), 7000);
  EXPECT_FALSE(a->is_ipv6());
  EXPECT_EQ(a->ToString(), "127.0.0.1:7000");
  EXPECT_EQ(*a, SocketAddress::LoopbackIPv4(7000));
  EXPECT_NE(*a, SocketAddress::LoopbackIPv4(7001));
  EXPECT_EQ(SocketAddress::AnyIPv4(80).ToString(), "0.0.0.0:80");
}

TEST(SocketAddressTest, ParsesAndPrintsIPv6) {
  absl::StatusOr<SocketAddress> a = SocketAddress::Parse("[::1]:443");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->is_ipv6());
  EXPECT_EQ(a->port(), 443);
  EXPECT_EQ(a->ToString(), "[::1]:443");
  EXPECT_EQ(*a, SocketAddress::LoopbackIPv6(443));
}

TEST(SocketAddressTest, RejectsMalformed) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "1.2.3.4:70000",
                          "host:80", "[::1:80", "[::1]80", "1.2.3.4:x"}) {
    absl::StatusOr<SocketAddress> a = SocketAddress::Parse(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(a.status())) << bad;
  }
}

TEST(TcpListenerTest, BindPortZeroGivesAPort) {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(l.ok()) << l.status();
  absl::StatusOr<SocketAddress> addr = l->local_address();
  ASSERT_TRUE(addr.ok()) << addr.status();
  EXPECT_NE(addr->port(), 0);
  EXPECT_EQ(addr->ToString(), absl::StrCat("127.0.0.1:", addr->port()));
  // Non-blocking: nothing pending is Unavailable (EAGAIN), not a hang.
  absl::StatusOr<TcpStream> none = l->Accept();
  EXPECT_TRUE(absl::IsUnavailable(none.status())) << none.status();
}

TEST(TcpListenerTest, OptionsAreSet) {
  absl::StatusOr<TcpListener> defaults =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  // (Windows: no SO_REUSEADDR, deliberately; see net/internal/sys_socket.h.)
  EXPECT_EQ(net_testing::ReuseAddressSet(defaults->fd()),
            net_testing::ListenerSetsReuseAddress());
  EXPECT_FALSE(net_testing::ReusePortSet(defaults->fd()));
  EXPECT_TRUE(NonBlockingOrUnknown(defaults->fd()));
  EXPECT_TRUE(net_testing::IsCloseOnExec(defaults->fd()));

  TcpListenerOptions options;
  options.reuse_address = false;
  options.reuse_port = true;
  absl::StatusOr<TcpListener> custom =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0), options);
  if (!net_testing::PlatformHasReusePort()) {
    // Windows: no load-balancing port sharing to ask for.
    EXPECT_TRUE(absl::IsUnimplemented(custom.status())) << custom.status();
    return;
  }
  ASSERT_TRUE(custom.ok()) << custom.status();
  EXPECT_FALSE(net_testing::ReuseAddressSet(custom->fd()));
  EXPECT_TRUE(net_testing::ReusePortSet(custom->fd()));
}

TEST(TcpListenerTest, BindingATakenPortFailsWithErrnoText) {
  absl::StatusOr<TcpListener> first =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(first.ok());
  const uint16_t port = first->local_address()->port();
  absl::StatusOr<TcpListener> second =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(port));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("bind"), absl::string_view::npos)
      << second.status();
}

TEST(TcpListenerTest, IPv6Loopback) {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv6(0));
  if (!l.ok()) GTEST_SKIP() << "no IPv6 here: " << l.status();
  const uint16_t port = l->local_address()->port();
  absl::StatusOr<TcpStream> client = TcpStream::ConnectAndWait(
      SocketAddress::LoopbackIPv6(port), absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  TcpStream server = AcceptOne(*l);
  ASSERT_TRUE(server.valid());
  EXPECT_TRUE(server.peer_address()->is_ipv6());
}

TEST(TcpStreamTest, OptionsAreSet) {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = *l->local_address();

  absl::StatusOr<TcpStream> plain =
      TcpStream::ConnectAndWait(addr, absl::Seconds(5));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(GetOpt(plain->fd(), IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(GetOpt(plain->fd(), SOL_SOCKET, SO_KEEPALIVE), 0);
  EXPECT_TRUE(NonBlockingOrUnknown(plain->fd()));

  TcpStreamOptions options;
  options.no_delay = true;
  options.keep_alive = true;
  absl::StatusOr<TcpStream> tuned =
      TcpStream::ConnectAndWait(addr, absl::Seconds(5), options);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_NE(GetOpt(tuned->fd(), IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_NE(GetOpt(tuned->fd(), SOL_SOCKET, SO_KEEPALIVE), 0);

  // Accept applies options to the accepted socket too.
  TcpStream first = AcceptOne(*l);  // `plain`
  ASSERT_TRUE(first.valid());
  absl::StatusOr<TcpStream> accepted = l->Accept(options);
  for (int i = 0; i < 500 && !accepted.ok(); ++i) {
    net_testing::WaitReadable(l->fd(), 10);
    accepted = l->Accept(options);
  }
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_NE(GetOpt(accepted->fd(), IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_NE(GetOpt(accepted->fd(), SOL_SOCKET, SO_KEEPALIVE), 0);
}

TEST(TcpStreamTest, RoundTripAndAddresses) {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = *l->local_address();
  absl::StatusOr<TcpStream> client =
      TcpStream::ConnectAndWait(addr, absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  TcpStream server = AcceptOne(*l);
  ASSERT_TRUE(server.valid());
  EXPECT_EQ(*client->peer_address(), addr);
  EXPECT_EQ(*server.peer_address(), *client->local_address());

  const std::string message = "hello, mill";
  ASSERT_EQ(client->Write(message.data(), message.size()),
            static_cast<ssize_t>(message.size()));
  std::string got;
  char buf[64];
  for (int i = 0; i < 500 && got.size() < message.size(); ++i) {
    const ssize_t n = server.Read(buf, sizeof(buf));
    if (n > 0) {
      got.append(buf, n);
    } else {
      ASSERT_EQ(errno, EAGAIN);
      net_testing::WaitReadable(server.fd(), 10);
    }
  }
  EXPECT_EQ(got, message);
  // Nothing more: a non-blocking read says EAGAIN rather than blocking.
  EXPECT_EQ(server.Read(buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EAGAIN);
  // Half-close: the server reads EOF.
  ASSERT_TRUE(client->Shutdown(SHUT_WR).ok());
  ASSERT_EQ(net_testing::WaitReadable(server.fd(), 5000), 1);
  EXPECT_EQ(server.Read(buf, sizeof(buf)), 0);
}

TEST(TcpStreamTest, ConnectToClosedPortFails) {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = *l->local_address();
  l->Close();
  absl::StatusOr<TcpStream> client =
      TcpStream::ConnectAndWait(addr, absl::Seconds(5));
  ASSERT_FALSE(client.ok());
  EXPECT_TRUE(absl::IsUnavailable(client.status())) << client.status();
}

TEST(TcpStreamTest, OwnsItsDescriptorAndMoves) {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(l.ok());
  int fd;
  {
    absl::StatusOr<TcpStream> a =
        TcpStream::ConnectAndWait(*l->local_address(), absl::Seconds(5));
    ASSERT_TRUE(a.ok());
    fd = a->fd();
    TcpStream b = std::move(*a);
    EXPECT_EQ(a->fd(), -1);
    EXPECT_EQ(b.fd(), fd);
    EXPECT_TRUE(IsOpen(fd));
    TcpStream c;
    c = std::move(b);
    EXPECT_EQ(c.fd(), fd);
  }
  EXPECT_FALSE(IsOpen(fd));

  absl::StatusOr<TcpStream> d =
      TcpStream::ConnectAndWait(*l->local_address(), absl::Seconds(5));
  ASSERT_TRUE(d.ok());
  const int released = d->Release();
  EXPECT_EQ(d->fd(), -1);
  EXPECT_TRUE(IsOpen(released));
  absl::StatusOr<TcpStream> adopted = TcpStream::Adopt(released);
  ASSERT_TRUE(adopted.ok());
  adopted->Close();
  EXPECT_FALSE(IsOpen(released));
  EXPECT_TRUE(absl::IsInvalidArgument(TcpStream::Adopt(-1).status()));
}

}  // namespace
}  // namespace mill
