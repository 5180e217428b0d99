// echo_load: a closed-loop load client for echo servers.
//
//   echo_load --host=127.0.0.1 --port=N --connections=C --size=BYTES
//             --duration=SECONDS --warmup=SECONDS
//   echo_load --unix=PATH|@NAME ...   (a Unix-domain server instead)
//
// Opens C connections; each sends one message of BYTES bytes, waits for the
// whole echo, checks every byte, and sends the next (one outstanding message
// per connection). Every message is distinct: it starts with the
// connection's message counter and the connection id, followed by a
// per-connection pseudo-random pattern, so a lost, duplicated, reordered or
// cross-connection byte is a verification error. The client is one thread on
// its own level-triggered epoll loop.
//
// After the warmup it measures for `duration` seconds and prints one JSON
// line on stdout:
//   {"connections":C,"size":S,"duration_s":..,"messages":N,
//    "msgs_per_s":..,"mb_per_s":..,"p50_us":..,"p99_us":..,"p999_us":..,
//    "max_us":..,"client_cpu":..,"errors":0}
// mb_per_s counts echoed payload in one direction, 1 MB = 1e6 bytes; latency
// is from the first byte sent to the last byte received, in microseconds;
// client_cpu is the CPU time this client used per second of measurement
// (near 1.0 means the client, not the server, may be the bottleneck).
// Exits 1 (after printing the JSON line with "errors" > 0 and an "error"
// text) on any verification error, connection failure or if no message
// completed; 2 on bad flags.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/load_clock.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Server IPv4 address or name.");
ABSL_FLAG(int, port, 0, "Server port (required unless --unix).");
ABSL_FLAG(std::string, unix, "",
          "Connect to this Unix-domain socket path (@NAME: abstract) instead "
          "of --host and --port.");
ABSL_FLAG(int, connections, 1, "Concurrent connections.");
ABSL_FLAG(int, size, 64, "Message size in bytes.");
ABSL_FLAG(double, duration, 5.0, "Measured seconds (after the warmup).");
ABSL_FLAG(double, warmup, 1.0, "Unmeasured seconds before the measurement.");

namespace mill {
namespace bench {
namespace {

struct Conn {
  int fd = -1;
  uint32_t id = 0;
  uint64_t counter = 0;       // Messages started on this connection.
  std::vector<char> message;  // The message in flight.
  size_t sent = 0;            // Bytes of `message` written.
  size_t received = 0;        // Bytes of its echo received and verified.
  int64_t start_ns = 0;
  bool want_write = false;  // EPOLLOUT registered.
};

// The load: Connect(), then Run() once, then Json(). Single-threaded; owns
// its sockets and epoll descriptor. Every failure is sticky (first error
// wins) and ends the run.
class LoadClient {
 public:
  explicit LoadClient(int size) : size_(static_cast<size_t>(size)) {}
  ~LoadClient() {
    for (auto& conn : conns_) {
      if (conn->fd >= 0) close(conn->fd);
    }
    if (epfd_ >= 0) close(epfd_);
  }

  // Connects `count` sockets to `addr`. Returns false with error_ set.
  bool Connect(const sockaddr_storage& addr, socklen_t addr_len, int count) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      return Fail(absl::StrCat("epoll_create1: ", strerror(errno)));
    }
    std::mt19937_64 rng(0x6d696c6c);  // Fixed: runs are reproducible.
    for (int i = 0; i < count; ++i) {
      auto conn = std::make_unique<Conn>();
      conn->id = static_cast<uint32_t>(i);
      conn->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (conn->fd < 0) return Fail(absl::StrCat("socket: ", strerror(errno)));
      // Blocking connect: loopback connects complete at once, and the run
      // must not start with half of its connections.
      if (connect(conn->fd, reinterpret_cast<const sockaddr*>(&addr),
                  addr_len) != 0) {
        const int err = errno;
        close(conn->fd);
        conn->fd = -1;
        return Fail(
            absl::StrCat("connect (connection ", i, "): ", strerror(err)));
      }
      if (addr.ss_family != AF_UNIX) {  // no Nagle on a Unix socket
        const int one = 1;
        setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      const int flags = fcntl(conn->fd, F_GETFL);
      fcntl(conn->fd, F_SETFL, flags | O_NONBLOCK);
      conn->message.resize(size_);
      for (char& c : conn->message) c = static_cast<char>(rng());
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = conn.get();
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, conn->fd, &ev) != 0) {
        return Fail(absl::StrCat("epoll_ctl: ", strerror(errno)));
      }
      conns_.push_back(std::move(conn));
    }
    return true;
  }

  // Runs warmup then measurement. Returns false with error_ set.
  bool Run(double warmup_s, double duration_s) {
    latencies_ns_.reserve(1 << 20);
    for (auto& conn : conns_) {
      if (!StartMessage(conn.get())) return false;
    }
    const int64_t begin = NowNs();
    const int64_t measure_at = begin + static_cast<int64_t>(warmup_s * 1e9);
    const int64_t end_at = measure_at + static_cast<int64_t>(duration_s * 1e9);
    measuring_ = warmup_s <= 0;
    measure_start_ns_ = begin;
    measure_start_cpu_ns_ = CpuNs();
    std::vector<epoll_event> events(conns_.size() + 1);
    for (;;) {
      int64_t now = NowNs();
      if (!measuring_ && now >= measure_at) {
        measuring_ = true;
        measure_start_ns_ = now;
        measure_start_cpu_ns_ = CpuNs();
        messages_ = 0;
        latencies_ns_.clear();
      }
      if (now >= end_at) {
        measure_end_ns_ = now;
        measure_end_cpu_ns_ = CpuNs();
        return true;
      }
      const int64_t next = measuring_ ? end_at : measure_at;
      const int timeout_ms = static_cast<int>(
          std::max<int64_t>(1, (next - now + 999999) / 1000000));
      const int n = epoll_wait(epfd_, events.data(),
                               static_cast<int>(events.size()), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail(absl::StrCat("epoll_wait: ", strerror(errno)));
      }
      for (int i = 0; i < n; ++i) {
        Conn* conn = static_cast<Conn*>(events[i].data.ptr);
        if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
            !OnReadable(conn)) {
          return false;
        }
        if ((events[i].events & EPOLLOUT) && !TrySend(conn)) return false;
      }
    }
  }

  std::string Json(int connections, double warmup_s) const {
    // A failed run never reached the end of the measurement: no rates.
    const bool finished = measure_end_ns_ > 0;
    const double seconds =
        finished ? (measure_end_ns_ - measure_start_ns_) / 1e9 : 0;
    const double per_second = seconds > 0 ? 1 / seconds : 0;
    std::vector<uint32_t> sorted = latencies_ns_;
    auto percentile_us = [&sorted](double p) -> double {
      if (sorted.empty()) return 0;
      size_t k = static_cast<size_t>(std::ceil(p * sorted.size())) - 1;
      k = std::min(k, sorted.size() - 1);
      std::nth_element(sorted.begin(), sorted.begin() + k, sorted.end());
      return sorted[k] / 1e3;
    };
    const double p50 = percentile_us(0.50);
    const double p99 = percentile_us(0.99);
    const double p999 = percentile_us(0.999);
    const double max_us =
        sorted.empty() ? 0
                       : *std::max_element(sorted.begin(), sorted.end()) / 1e3;
    std::string json = absl::StrFormat(
        "{\"connections\":%d,\"size\":%d,\"warmup_s\":%.3f,"
        "\"duration_s\":%.3f,\"messages\":%d,\"msgs_per_s\":%.1f,"
        "\"mb_per_s\":%.3f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
        "\"p999_us\":%.1f,\"max_us\":%.1f,\"client_cpu\":%.3f,"
        "\"errors\":%d",
        connections, size_, warmup_s, seconds, messages_,
        messages_ * per_second,
        messages_ * static_cast<double>(size_) * per_second / 1e6, p50, p99,
        p999, max_us,
        (measure_end_cpu_ns_ - measure_start_cpu_ns_) / 1e9 * per_second,
        error_.empty() ? 0 : 1);
    if (!error_.empty()) {
      std::string escaped;
      for (char c : error_) {
        if (c == '"' || c == '\\') escaped += '\\';
        escaped += (c >= 0x20) ? c : ' ';
      }
      absl::StrAppend(&json, ",\"error\":\"", escaped, "\"");
    }
    return json + "}";
  }

  int64_t messages() const { return messages_; }
  const std::string& error() const { return error_; }
  bool Fail(std::string error) {
    if (error_.empty()) error_ = std::move(error);
    return false;
  }

 private:
  bool StartMessage(Conn* conn) {
    // Header: the connection's message counter, then its id (as much as
    // fits); the rest keeps the connection's random pattern.
    const uint64_t counter = ++conn->counter;
    std::memcpy(conn->message.data(), &counter,
                std::min(sizeof(counter), size_));
    if (size_ > sizeof(counter)) {
      std::memcpy(conn->message.data() + sizeof(counter), &conn->id,
                  std::min(sizeof(conn->id), size_ - sizeof(counter)));
    }
    conn->sent = 0;
    conn->received = 0;
    conn->start_ns = NowNs();
    return TrySend(conn);
  }

  bool TrySend(Conn* conn) {
    while (conn->sent < size_) {
      const ssize_t n = write(conn->fd, conn->message.data() + conn->sent,
                              size_ - conn->sent);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return Fail(absl::StrCat("write (connection ", conn->id,
                                 "): ", strerror(errno)));
      }
      conn->sent += static_cast<size_t>(n);
    }
    const bool want_write = conn->sent < size_;
    if (want_write != conn->want_write) {
      conn->want_write = want_write;
      epoll_event ev{};
      ev.events = want_write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
      ev.data.ptr = conn;
      epoll_ctl(epfd_, EPOLL_CTL_MOD, conn->fd, &ev);
    }
    return true;
  }

  bool OnReadable(Conn* conn) {
    const ssize_t n = read(conn->fd, buffer_, sizeof(buffer_));
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      return Fail(
          absl::StrCat("read (connection ", conn->id, "): ", strerror(errno)));
    }
    if (n == 0) {
      return Fail(absl::StrCat("connection ", conn->id,
                               " closed by the server after ", conn->counter,
                               " messages"));
    }
    const size_t got = static_cast<size_t>(n);
    // The echo can only be of bytes already sent.
    if (conn->received + got > conn->sent) {
      return Fail(absl::StrCat("connection ", conn->id, ": received ",
                               conn->received + got, " bytes of message ",
                               conn->counter, " but only ", conn->sent,
                               " were sent"));
    }
    if (std::memcmp(buffer_, conn->message.data() + conn->received, got) != 0) {
      size_t at = 0;
      while (buffer_[at] == conn->message[conn->received + at]) ++at;
      return Fail(absl::StrCat("connection ", conn->id,
                               ": echo differs at byte ", conn->received + at,
                               " of message ", conn->counter));
    }
    conn->received += got;
    if (conn->received < size_) return true;
    // Full echo verified.
    if (measuring_) {
      const int64_t latency = NowNs() - conn->start_ns;
      latencies_ns_.push_back(static_cast<uint32_t>(
          std::min<int64_t>(latency, int64_t{UINT32_MAX})));
      ++messages_;
    }
    return StartMessage(conn);
  }

  const size_t size_;
  int epfd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  bool measuring_ = false;
  int64_t measure_start_ns_ = 0;
  int64_t measure_end_ns_ = 0;
  int64_t measure_start_cpu_ns_ = 0;
  int64_t measure_end_cpu_ns_ = 0;
  int64_t messages_ = 0;
  std::vector<uint32_t> latencies_ns_;  // Clamped at ~4.3 s.
  std::string error_;
  char buffer_[16 * 1024];
};

// --unix=PATH or --unix=@NAME as a sockaddr_un; false if too long.
bool UnixAddress(const std::string& where, sockaddr_storage* storage,
                 socklen_t* len) {
  auto* un = reinterpret_cast<sockaddr_un*>(storage);
  const bool abstract = !where.empty() && where[0] == '@';
  if (where.size() >= sizeof(un->sun_path)) return false;
  *un = {};
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, where.data(), where.size());
  if (abstract) un->sun_path[0] = '\0';
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + where.size() +
                                (abstract ? 0 : 1));
  return true;
}

bool Resolve(const std::string& host, int port, sockaddr_in* addr) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0 ||
      result == nullptr) {
    return false;
  }
  *addr = *reinterpret_cast<sockaddr_in*>(result->ai_addr);
  addr->sin_port = htons(static_cast<uint16_t>(port));
  freeaddrinfo(result);
  return true;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Closed-loop echo load client; prints one JSON line. Example:\n"
      "  echo_load --port=8080 --connections=100 --size=64 --duration=5");
  absl::ParseCommandLine(argc, argv);
  const int port = absl::GetFlag(FLAGS_port);
  const int connections = absl::GetFlag(FLAGS_connections);
  const int size = absl::GetFlag(FLAGS_size);
  const double duration = absl::GetFlag(FLAGS_duration);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const std::string unix_path = absl::GetFlag(FLAGS_unix);
  if ((unix_path.empty() && (port <= 0 || port > 65535)) || connections < 1 ||
      size < 1 || duration <= 0 || warmup < 0) {
    std::fprintf(stderr,
                 "echo_load: need --port in 1..65535 (or --unix), "
                 "--connections >= 1, --size >= 1, --duration > 0, "
                 "--warmup >= 0\n");
    return 2;
  }
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!unix_path.empty()) {
    if (!UnixAddress(unix_path, &addr, &addr_len)) {
      std::fprintf(stderr, "echo_load: --unix path too long: '%s'\n",
                   unix_path.c_str());
      return 2;
    }
  } else {
    sockaddr_in in{};
    if (!Resolve(absl::GetFlag(FLAGS_host), port, &in)) {
      std::fprintf(stderr, "echo_load: cannot resolve '%s'\n",
                   absl::GetFlag(FLAGS_host).c_str());
      return 2;
    }
    std::memcpy(&addr, &in, sizeof(in));
    addr_len = sizeof(in);
  }
  LoadClient client(size);
  if (client.Connect(addr, addr_len, connections) &&
      client.Run(warmup, duration) && client.messages() == 0) {
    client.Fail("no message completed during the measurement");
  }
  std::printf("%s\n", client.Json(connections, warmup).c_str());
  std::fflush(stdout);
  if (!client.error().empty()) {
    std::fprintf(stderr, "echo_load: %s\n", client.error().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) { return mill::bench::Main(argc, argv); }
