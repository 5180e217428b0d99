// UdpSocket's receive batching, in every dispatch mode: a property test
// (random senders, sizes, batch sizes and batches per event: every datagram
// is delivered once, in the order the kernel queued it, in batches no larger
// than batch_size), and a flood that overflows the socket buffer (the server
// keeps answering, the kernel's drops are counted, memory stays fixed).
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/testing/udp_fixture.h"
#include "net/udp_socket.h"

namespace mill {
namespace udp_testing {
namespace {

using reactor_testing::EveryLoopMode;
using reactor_testing::LoopConfigName;

class UdpBatchingTest : public UdpTest {};
INSTANTIATE_TEST_SUITE_P(Modes, UdpBatchingTest, EveryLoopMode(),
                         LoopConfigName);

// One trial: `senders` peers send `total` datagrams, interleaved at random
// from this one thread; over loopback the kernel queues them in send order,
// so the receiver must see exactly that order (per sender, and overall).
TEST_P(UdpBatchingTest, PropertyEveryDatagramOnceInKernelOrder) {
  std::mt19937 rng(20261207);
  const int trials = 24 / reactor_testing::kScale;
  for (int trial = 0; trial < trials; ++trial) {
    UdpSocketOptions options;
    options.batch_size = std::uniform_int_distribution<size_t>(1, 64)(rng);
    options.max_batches_per_event =
        std::uniform_int_distribution<int>(1, 4)(rng);
    // Room for a whole trial, so that the kernel drops nothing.
    options.receive_buffer_bytes = 4 << 20;
    const int senders = std::uniform_int_distribution<int>(1, 8)(rng);
    const int total = std::uniform_int_distribution<int>(1, 150)(rng);
    SCOPED_TRACE(absl::StrCat("trial ", trial, ": batch ", options.batch_size,
                              ", batches/event ", options.max_batches_per_event,
                              ", ", senders, " senders, ", total,
                              " datagrams"));
    Recorder* rec = NewRecorder();
    UdpSocket* server = Open(rec, /*echo=*/false, options);
    ASSERT_NE(server, nullptr);
    std::vector<std::unique_ptr<Peer>> peers;
    for (int s = 0; s < senders; ++s) peers.push_back(std::make_unique<Peer>());
    std::vector<std::string> sent;
    std::vector<int> next(senders, 0);
    for (int i = 0; i < total; ++i) {
      const int s = std::uniform_int_distribution<int>(0, senders - 1)(rng);
      const size_t pad = std::uniform_int_distribution<size_t>(0, 1200)(rng);
      std::string msg = absl::StrCat(s, "/", next[s]++, "/");
      msg.append(pad, static_cast<char>('a' + s));
      ASSERT_TRUE(peers[s]->SendTo(server->local_address(), msg));
      sent.push_back(std::move(msg));
    }
    ASSERT_TRUE(WaitFor([&] { return rec->count() >= sent.size(); }));
    const std::vector<Received> got = rec->received();
    ASSERT_EQ(got.size(), sent.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].data, sent[i]) << "datagram " << i;
      const int s = std::stoi(got[i].data.substr(0, got[i].data.find('/')));
      EXPECT_EQ(got[i].peer, peers[s]->address());
      EXPECT_FALSE(got[i].truncated);
    }
    size_t in_batches = 0;
    for (size_t b : rec->batch_sizes()) {
      EXPECT_GE(b, 1u);
      EXPECT_LE(b, options.batch_size);
      in_batches += b;
    }
    EXPECT_EQ(in_batches, sent.size());
    EXPECT_EQ(server->stats().kernel_drops, 0u);
    server->Close();  // its buffers (batch_size * 64 KiB) go with it
  }
}

// A burst far beyond a small socket buffer, sent while the server's first
// callback is held up (so it overflows for certain): the kernel drops the
// excess and the socket counts it (received + dropped == sent exactly), its
// memory stays at its fixed buffers, and the server answers a client at once
// afterwards.
TEST_P(UdpBatchingTest, BurstOverflowingTheSocketBufferLeavesServerResponsive) {
  UdpSocketOptions options;
  options.receive_buffer_bytes = 16 * 1024;  // the kernel doubles it
  options.batch_size = 16;
  options.max_datagram_size = 2048;
  Peer flooder;
  Peer client;
  std::atomic<bool> gate_open{false};
  std::atomic<bool> first_callback{false};
  std::atomic<uint64_t> from_flooder{0};
  std::atomic<uint64_t> from_client{0};
  UdpCallbacks cb;
  cb.on_datagrams = [&](UdpSocket& socket, absl::Span<const Datagram> batch) {
    first_callback = true;
    // Holding the handler holds the socket: the burst piles up in the kernel.
    WaitFor([&] { return gate_open.load(); });
    for (const Datagram& d : batch) {
      if (d.peer == flooder.address()) ++from_flooder;
      if (d.peer == client.address()) {
        ++from_client;
        EXPECT_TRUE(socket.SendTo(d.peer, d.data).ok());
      }
    }
  };
  absl::StatusOr<std::unique_ptr<UdpSocket>> created = UdpSocket::Create(
      loop_.get(), SocketAddress::LoopbackIPv4(0), options, std::move(cb));
  ASSERT_TRUE(created.ok()) << created.status();
  UdpSocket* server = created->get();
  sockets_.push_back(std::move(*created));

  const int burst = 20000 / reactor_testing::kScale;
  const std::string payload(1000, 'f');
  ASSERT_TRUE(flooder.SendTo(server->local_address(), payload));
  ASSERT_TRUE(WaitFor([&] { return first_callback.load(); }));
  for (int i = 1; i < burst; ++i) {
    ASSERT_TRUE(flooder.SendTo(server->local_address(), payload));
  }
  gate_open = true;

  // Once the backlog is drained (pings sent before then may find the buffer
  // still full and be dropped: retried), the server answers a client in
  // lockstep, every ping at the first try.
  uint64_t client_sent = 0;
  bool answered = false;
  for (int attempt = 0; attempt < 100 && !answered; ++attempt) {
    ASSERT_TRUE(client.SendTo(server->local_address(), "hello"));
    ++client_sent;
    timeval tv{0, 100 * 1000};
    setsockopt(client.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    answered = client.Receive() == "hello";
  }
  ASSERT_TRUE(answered);
  timeval tv{10, 0};
  setsockopt(client.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (int i = 0; i < 50; ++i) {
    const std::string ping = absl::StrCat("ping ", i);
    ASSERT_TRUE(client.SendTo(server->local_address(), ping));
    ++client_sent;
    std::string got;
    // Late answers to retried hellos may come first.
    while ((got = client.Receive()) == "hello") {
    }
    ASSERT_EQ(got, ping);
  }
  const UdpSocket::Stats stats = server->stats();
  EXPECT_GT(stats.kernel_drops, 0u);
  // The last ping was received after the burst, so its drop count is final:
  // every datagram sent was received or counted as dropped.
  EXPECT_EQ(from_flooder.load() + from_client.load() + stats.kernel_drops,
            static_cast<uint64_t>(burst) + client_sent);
  EXPECT_EQ(stats.datagrams_received, from_flooder.load() + from_client.load());
  EXPECT_EQ(stats.truncated, 0u);
}

}  // namespace
}  // namespace udp_testing
}  // namespace mill
