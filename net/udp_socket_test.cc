// UdpSocket in every dispatch mode: sizes 0 to 65,507 bytes, truncation,
// many senders, IPv6, connected sockets and their ICMP errors, multicast,
// GSO/GRO, the bounded send queue, and bad input.
#include "net/udp_socket.h"

#include <net/if.h>
#include <netinet/in.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/testing/udp_fixture.h"

namespace mill {
namespace udp_testing {
namespace {

using reactor_testing::EveryLoopMode;
using reactor_testing::LoopConfigName;

// Deterministic bytes, different per (seed, length).
std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed) * 7) & 0xff);
  }
  return s;
}

class UdpSocketTest : public UdpTest {};
INSTANTIATE_TEST_SUITE_P(Modes, UdpSocketTest, EveryLoopMode(), LoopConfigName);

TEST_P(UdpSocketTest, EchoesEverySizeFromZeroToTheUdpMaximum) {
  Recorder* rec = NewRecorder();
  UdpSocket* server = Open(rec, /*echo=*/true);
  ASSERT_NE(server, nullptr);
  Peer client;
  const std::vector<size_t> sizes = {
      0,    1,    2,     100,   1400,  1472,          1473,
      8192, 9000, 32768, 65000, 65506, kMaxUdpPayload};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string data = Bytes(sizes[i], static_cast<int>(i));
    ASSERT_TRUE(client.SendTo(server->local_address(), data)) << sizes[i];
    SocketAddress from;
    const std::string echo = client.Receive(&from);
    ASSERT_EQ(echo.size(), data.size()) << sizes[i];
    EXPECT_TRUE(echo == data) << sizes[i];
    EXPECT_EQ(from, server->local_address());
  }
  const std::vector<Received> got = rec->received();
  ASSERT_EQ(got.size(), sizes.size());
  for (const Received& r : got) {
    EXPECT_EQ(r.peer, client.address());
    EXPECT_FALSE(r.truncated);
  }
  // The last echo may reach the client before the server's sendto returns
  // and counts it.
  EXPECT_TRUE(
      WaitFor([&] { return server->stats().datagrams_sent == sizes.size(); }));
  const UdpSocket::Stats stats = server->stats();
  EXPECT_EQ(stats.datagrams_received, sizes.size());
  EXPECT_EQ(stats.truncated, 0u);
}

TEST_P(UdpSocketTest, LongDatagramsAreDeliveredTruncatedAndSaySo) {
  Recorder* rec = NewRecorder();
  UdpSocketOptions options;
  options.max_datagram_size = 100;
  UdpSocket* server = Open(rec, /*echo=*/false, options);
  ASSERT_NE(server, nullptr);
  Peer client;
  const std::string exact = Bytes(100, 1);
  const std::string longer = Bytes(150, 2);
  ASSERT_TRUE(client.SendTo(server->local_address(), exact));
  ASSERT_TRUE(client.SendTo(server->local_address(), longer));
  ASSERT_TRUE(WaitFor([&] { return rec->count() == 2; }));
  const std::vector<Received> got = rec->received();
  EXPECT_EQ(got[0].data, exact);
  EXPECT_FALSE(got[0].truncated);
  EXPECT_EQ(got[1].data, longer.substr(0, 100));
  EXPECT_TRUE(got[1].truncated);
  EXPECT_EQ(server->stats().truncated, 1u);
}

TEST_P(UdpSocketTest, ManySendersEachGetTheirOwnEchoesInOrder) {
  Recorder* rec = NewRecorder();
  UdpSocket* server = Open(rec, /*echo=*/true);
  ASSERT_NE(server, nullptr);
  constexpr int kSenders = 16;
  const int rounds = 200 / reactor_testing::kScale;
  std::vector<std::thread> threads;
  std::vector<int> good(kSenders, 0);
  for (int s = 0; s < kSenders; ++s) {
    threads.emplace_back([&, s] {
      Peer client;
      for (int i = 0; i < rounds; ++i) {
        const std::string msg = absl::StrCat(s, ":", i, ":", Bytes(i % 64, s));
        if (!client.SendTo(server->local_address(), msg)) return;
        if (client.Receive() != msg) return;
        ++good[s];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int s = 0; s < kSenders; ++s) EXPECT_EQ(good[s], rounds) << s;
  EXPECT_EQ(server->stats().datagrams_received,
            static_cast<uint64_t>(kSenders * rounds));
}

TEST_P(UdpSocketTest, IPv6AndDualStack) {
  Recorder* rec = NewRecorder();
  UdpSocket* v6 = Open(rec, /*echo=*/true, {}, SocketAddress::LoopbackIPv6(0));
  ASSERT_NE(v6, nullptr);
  EXPECT_TRUE(v6->local_address().is_ipv6());
  Peer client(SocketAddress::LoopbackIPv6(0));
  ASSERT_TRUE(client.SendTo(v6->local_address(), "six"));
  EXPECT_EQ(client.Receive(), "six");

  // A wildcard IPv6 socket (not v6-only) hears IPv4 peers, as mapped
  // addresses, and answers them.
  Recorder* dual_rec = NewRecorder();
  UdpSocket* dual =
      Open(dual_rec, /*echo=*/true, {}, SocketAddress::AnyIPv6(0));
  ASSERT_NE(dual, nullptr);
  Peer v4;
  ASSERT_TRUE(v4.SendTo(
      SocketAddress::LoopbackIPv4(dual->local_address().port()), "four"));
  EXPECT_EQ(v4.Receive(), "four");
  const std::vector<Received> got = dual_rec->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].peer.is_ipv6());
  EXPECT_EQ(got[0].peer.port(), v4.address().port());
}

TEST_P(UdpSocketTest, ConnectedSocketReportsIcmpPortUnreachable) {
  // A port nobody listens on: bind one, note it, close it.
  SocketAddress closed_port;
  {
    Peer gone;
    closed_port = gone.address();
  }
  Recorder* rec = NewRecorder();
  UdpSocket* client = Open(rec, /*echo=*/false);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Connect(closed_port).ok());
  ASSERT_TRUE(client->Send("anyone?").ok());
  ASSERT_TRUE(WaitFor([&] { return !rec->errors().empty(); }));
  const absl::Status error = rec->errors()[0];
  EXPECT_NE(error.message().find("Connection refused"), std::string::npos)
      << error;
  EXPECT_GE(client->stats().async_errors, 1u);

  // Connected to a live peer, it only hears that peer.
  Peer peer;
  Peer stranger;
  ASSERT_TRUE(client->Connect(peer.address()).ok());
  ASSERT_TRUE(client->Send("hello").ok());
  EXPECT_EQ(peer.Receive(), "hello");
  ASSERT_TRUE(stranger.SendTo(client->local_address(), "not for you"));
  ASSERT_TRUE(peer.SendTo(client->local_address(), "reply"));
  ASSERT_TRUE(WaitFor([&] { return rec->count() == 1; }));
  EXPECT_EQ(rec->received()[0].data, "reply");
}

TEST_P(UdpSocketTest, MulticastJoinAndLeave) {
  const SocketAddress group_any = *SocketAddress::Parse("239.255.77.1:0");
  Recorder* rec = NewRecorder();
  UdpSocket* member = Open(rec, /*echo=*/false, {}, SocketAddress::AnyIPv4(0));
  ASSERT_NE(member, nullptr);
  const unsigned lo = if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  ASSERT_TRUE(member->JoinMulticast(group_any, lo).ok());
  const SocketAddress group = *SocketAddress::Parse(
      absl::StrCat("239.255.77.1:", member->local_address().port()));
  const SocketAddress unicast =
      SocketAddress::LoopbackIPv4(member->local_address().port());

  Peer sender;
  in_addr lo_addr{};
  lo_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(setsockopt(sender.fd(), IPPROTO_IP, IP_MULTICAST_IF, &lo_addr,
                       sizeof(lo_addr)),
            0);
  ASSERT_TRUE(sender.SendTo(group, "to the group"));
  ASSERT_TRUE(WaitFor([&] { return rec->count() == 1; }));
  EXPECT_EQ(rec->received()[0].data, "to the group");

  // After leaving, a datagram to the group does not arrive: the unicast
  // marker sent after it over the same path is the next one received.
  ASSERT_TRUE(member->LeaveMulticast(group_any, lo).ok());
  ASSERT_TRUE(sender.SendTo(group, "after leave"));
  ASSERT_TRUE(sender.SendTo(unicast, "marker"));
  ASSERT_TRUE(WaitFor([&] { return rec->count() >= 2; }));
  EXPECT_EQ(rec->received()[1].data, "marker");

  // Not a group; leaving a group never joined.
  EXPECT_EQ(member->JoinMulticast(SocketAddress::LoopbackIPv4(0)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(member->LeaveMulticast(group_any, lo).ok());
}

TEST_P(UdpSocketTest, SegmentedSendsArriveAsDatagramsWithAndWithoutGro) {
  for (const bool gro : {false, true}) {
    SCOPED_TRACE(gro ? "GRO receiver" : "plain receiver");
    Recorder* rec = NewRecorder();
    UdpSocketOptions receiver_options;
    receiver_options.gro = gro;
    receiver_options.max_datagram_size = 1400;
    UdpSocket* receiver = Open(rec, /*echo=*/false, receiver_options);
    ASSERT_NE(receiver, nullptr);
    Recorder* sender_rec = NewRecorder();
    UdpSocket* sender = Open(sender_rec, /*echo=*/false);
    ASSERT_NE(sender, nullptr);
    const std::string data = Bytes(40 * 1400 + 500, 9);  // 41 datagrams
    ASSERT_TRUE(
        sender->SendSegmented(receiver->local_address(), data, 1400).ok());
    ASSERT_TRUE(WaitFor([&] { return rec->count() == 41; }));
    const std::vector<Received> got = rec->received();
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].data, data.substr(i * 1400, 1400)) << i;
      EXPECT_FALSE(got[i].truncated);
      EXPECT_EQ(got[i].peer, sender->local_address());
    }
    if (sender->gso_enabled()) {
      EXPECT_EQ(sender->stats().segmented_sends, 1u);
      EXPECT_EQ(sender->stats().send_calls, 1u);
    }
    // Over loopback a segmented send reaches a GRO socket whole.
    if (sender->gso_enabled() && receiver->gro_enabled()) {
      EXPECT_GE(receiver->stats().coalesced, 1u);
      EXPECT_LT(receiver->stats().receive_calls, 41u);
    }
  }
}

TEST_P(UdpSocketTest, SendQueueIsBoundedAndFlushesInOrder) {
  Recorder* rec = NewRecorder();
  UdpSocketOptions options;
  options.max_send_queue_bytes = 10 * (1000 + 64);
  UdpSocket* sender = Open(rec, /*echo=*/false, options);
  ASSERT_NE(sender, nullptr);
  Peer receiver;
  net_internal::UdpTestAccess::HoldSends(*sender, true);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        sender
            ->SendTo(
                receiver.address(),
                absl::StrCat(i, ":", std::string(998, 'x')).substr(0, 1000))
            .ok());
  }
  EXPECT_EQ(sender->queued_bytes(), 10u * (1000 + 64));
  const absl::Status full = sender->SendTo(receiver.address(), "one more");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  std::vector<OutgoingDatagram> batch(3, {"b", receiver.address()});
  absl::StatusOr<size_t> accepted = sender->SendBatch(batch);
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(*accepted, 0u);
  EXPECT_EQ(sender->stats().send_refused, 4u);
  EXPECT_EQ(sender->stats().queued, 10u);

  net_internal::UdpTestAccess::HoldSends(*sender, false);  // the loop flushes
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(receiver.Receive().substr(0, 2), absl::StrCat(i, ":"));
  }
  ASSERT_TRUE(WaitFor([&] { return sender->queued_bytes() == 0; }));
  EXPECT_TRUE(sender->SendTo(receiver.address(), "after").ok());
  EXPECT_EQ(receiver.Receive(), "after");
}

TEST_P(UdpSocketTest, SendBatchSendsInOrderToEachAddress) {
  Recorder* rec = NewRecorder();
  UdpSocketOptions options;
  options.batch_size = 4;  // several sendmmsg calls
  UdpSocket* sender = Open(rec, /*echo=*/false, options);
  ASSERT_NE(sender, nullptr);
  Peer a;
  Peer b;
  std::vector<std::string> texts;
  for (int i = 0; i < 10; ++i) texts.push_back(absl::StrCat("m", i));
  std::vector<OutgoingDatagram> batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back({texts[i], i % 2 == 0 ? a.address() : b.address()});
  }
  absl::StatusOr<size_t> sent = sender->SendBatch(batch);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, 10u);
  for (int i = 0; i < 10; i += 2) EXPECT_EQ(a.Receive(), texts[i]);
  for (int i = 1; i < 10; i += 2) EXPECT_EQ(b.Receive(), texts[i]);
  EXPECT_EQ(sender->stats().send_calls, 3u);  // 4 + 4 + 2
}

TEST_P(UdpSocketTest, BadInputIsRefusedClearly) {
  Recorder* rec = NewRecorder();
  absl::StatusOr<std::unique_ptr<UdpSocket>> s =
      UdpSocket::Create(nullptr, SocketAddress::LoopbackIPv4(0), {}, {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  UdpSocketOptions bad;
  bad.batch_size = 0;
  s = UdpSocket::Create(loop_.get(), SocketAddress::LoopbackIPv4(0), bad, {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  bad = {};
  bad.max_datagram_size = 70000;
  s = UdpSocket::Create(loop_.get(), SocketAddress::LoopbackIPv4(0), bad, {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("max_datagram_size"), std::string::npos);

  UdpSocket* socket = Open(rec, /*echo=*/false);
  ASSERT_NE(socket, nullptr);
  // The port is taken.
  s = UdpSocket::Create(loop_.get(), socket->local_address(), {}, {});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("Address already in use"),
            std::string::npos)
      << s.status();
  EXPECT_EQ(socket
                ->SendTo(socket->local_address(),
                         std::string(kMaxUdpPayload + 1, 'x'))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(socket->Send("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(socket->SendSegmented(socket->local_address(), "x", 0).code(),
            absl::StatusCode::kInvalidArgument);
  socket->Close();
  EXPECT_EQ(socket->SendTo(socket->local_address(), "x").code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace udp_testing
}  // namespace mill
