// The UdpSocket tests' fixture: a loop per dispatch mode (EveryLoopMode),
// a blocking UDP peer for the test thread, and a recorder of what a socket's
// callbacks saw. Test-only.
//
// Thread-safety: Recorder is thread-safe (the loop writes, the test reads);
// Peer belongs to one thread. Ownership: Peer owns its descriptor.
#ifndef MILL_IO_NET_TESTING_UDP_FIXTURE_H_
#define MILL_IO_NET_TESTING_UDP_FIXTURE_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "gtest/gtest.h"
#include "net/internal/udp_core.h"
#include "net/socket_address.h"
#include "net/udp_socket.h"
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace net_internal {

// The tests' way to the socket's core (UdpSocket befriends it).
struct UdpTestAccess {
  static void HoldSends(UdpSocket& socket, bool hold) {
    socket.core_->HoldSendsForTesting(hold);
  }
};

}  // namespace net_internal

namespace udp_testing {

using reactor_testing::WaitFor;

// A blocking UDP socket on the test thread, receive timeout 10 s.
class Peer {
 public:
  explicit Peer(const SocketAddress& bind_to = SocketAddress::LoopbackIPv4(0)) {
    fd_ = ::socket(bind_to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << strerror(errno);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    EXPECT_EQ(::bind(fd_, bind_to.sockaddr_ptr(), bind_to.sockaddr_len()), 0)
        << strerror(errno);
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    address_ =
        *SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  ~Peer() {
    if (fd_ >= 0) ::close(fd_);
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  int fd() const { return fd_; }
  const SocketAddress& address() const { return address_; }
  bool SendTo(const SocketAddress& to, const std::string& data) {
    return ::sendto(fd_, data.data(), data.size(), 0, to.sockaddr_ptr(),
                    to.sockaddr_len()) == static_cast<ssize_t>(data.size());
  }
  // One datagram, or "<timeout>" after 10 s; `from` gets the sender.
  std::string Receive(SocketAddress* from = nullptr) {
    std::string buf(70000, '\0');
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const ssize_t n = ::recvfrom(fd_, &buf[0], buf.size(), 0,
                                 reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) return "<timeout>";
    if (from != nullptr) {
      *from =
          *SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    }
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  int fd_ = -1;
  SocketAddress address_;
};

// What a socket's callbacks saw, copied out of the callback.
struct Received {
  std::string data;
  SocketAddress peer;
  bool truncated = false;
};

class Recorder {
 public:
  // Callbacks that record (and optionally echo every datagram back).
  UdpCallbacks Callbacks(bool echo) {
    UdpCallbacks cb;
    cb.on_datagrams = [this, echo](UdpSocket& socket,
                                   absl::Span<const Datagram> batch) {
      // The socket's callbacks never overlap.
      EXPECT_FALSE(inside_.exchange(true));
      {
        MutexLock lock(&mu_);
        batch_sizes_.push_back(batch.size());
        for (const Datagram& d : batch) {
          got_.push_back(Received{std::string(d.data), d.peer, d.truncated});
        }
      }
      if (echo) {
        for (const Datagram& d : batch) {
          EXPECT_TRUE(socket.SendTo(d.peer, d.data).ok());
        }
      }
      inside_.store(false);
    };
    cb.on_error = [this](UdpSocket&, const absl::Status& status) {
      MutexLock lock(&mu_);
      errors_.push_back(status);
    };
    return cb;
  }
  size_t count() const {
    MutexLock lock(&mu_);
    return got_.size();
  }
  std::vector<Received> received() const {
    MutexLock lock(&mu_);
    return got_;
  }
  std::vector<size_t> batch_sizes() const {
    MutexLock lock(&mu_);
    return batch_sizes_;
  }
  std::vector<absl::Status> errors() const {
    MutexLock lock(&mu_);
    return errors_;
  }

 private:
  mutable Mutex mu_;
  std::vector<Received> got_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> batch_sizes_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> errors_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> inside_{false};
};

// Runs every test in each dispatch configuration (EveryLoopMode()).
class UdpTest : public reactor_testing::EventLoopTest {
 protected:
  void SetUp() override {
    loop_ = MakeLoop();
    runner_ = std::make_unique<reactor_testing::LoopRunner>(loop_.get());
  }
  void TearDown() override {
    // Sockets first (they deregister), then the loop.
    sockets_.clear();
    runner_.reset();
    loop_.reset();
  }
  // A recorder that outlives every socket of the test.
  Recorder* NewRecorder() {
    recorders_.push_back(std::make_unique<Recorder>());
    return recorders_.back().get();
  }
  // A socket on loopback (or `local`) that records into `recorder`.
  UdpSocket* Open(Recorder* recorder, bool echo, UdpSocketOptions options = {},
                  const SocketAddress& local = SocketAddress::LoopbackIPv4(0)) {
    absl::StatusOr<std::unique_ptr<UdpSocket>> s = UdpSocket::Create(
        loop_.get(), local, options, recorder->Callbacks(echo));
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return nullptr;
    sockets_.push_back(std::move(*s));
    return sockets_.back().get();
  }

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<reactor_testing::LoopRunner> runner_;
  std::vector<std::unique_ptr<Recorder>> recorders_;
  std::vector<std::unique_ptr<UdpSocket>> sockets_;
};

}  // namespace udp_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_UDP_FIXTURE_H_
