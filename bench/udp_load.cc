// udp_load: the UDP load generator of bench/udp_bench.py, in three roles.
//
//   udp_load --mode=echo --port=N --senders=100 --size=64 --window=4
//            --duration=5 --warmup=1
//     100 connected UDP sockets on one epoll thread, each keeping `window`
//     datagrams in flight to an echo server: every answer (checked: its
//     sender and sequence number) is followed by a new datagram. A datagram
//     lost (the server's buffer overflowed) is replaced after 200 ms without
//     an answer. Prints one JSON line: {"datagrams":N,"per_s":..,
//     "refills":..,"errors":0,"client_cpu":..}.
//
//   udp_load --mode=sink --gro=true|false
//     A UdpSocket (//net) on 127.0.0.1 that counts what it receives; prints
//     "listening on 127.0.0.1:PORT (udp)", and on SIGTERM one JSON line:
//     {"received":N,"coalesced":..,"receive_calls":..,"kernel_drops":..}.
//
//   udp_load --mode=bulk --port=N --gso=true|false --size=1400 --duration=5
//     One UdpSocket sending `size`-byte datagrams as fast as it can, 64 per
//     call: SendSegmented (one UDP_SEGMENT sendmsg) with --gso, else
//     SendBatch (one sendmmsg). Prints {"sent":N,"send_calls":..,"cpu":..}.
//
// Exits 2 on bad flags, 1 on errors.
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/types/span.h"
#include "net/socket_address.h"
#include "net/udp_socket.h"
#include "reactor/event_loop.h"

ABSL_FLAG(std::string, mode, "echo", "echo, sink or bulk");
ABSL_FLAG(int, port, 0, "the server's port on 127.0.0.1 (echo, bulk)");
ABSL_FLAG(int, senders, 100, "sockets sending (echo)");
ABSL_FLAG(int, window, 4, "datagrams in flight per sender (echo)");
ABSL_FLAG(int, size, 64, "datagram payload in bytes (at least 16)");
ABSL_FLAG(double, duration, 5, "seconds measured");
ABSL_FLAG(double, warmup, 1, "seconds before measuring (echo)");
ABSL_FLAG(bool, gro, false, "sink: UDP_GRO");
ABSL_FLAG(bool, gso, false, "bulk: UDP_SEGMENT");

namespace {

using Clock = std::chrono::steady_clock;

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Sender {
  int fd = -1;
  uint64_t next_seq = 0;
  int in_flight = 0;
  Clock::time_point last_answer;
};

int RunEcho() {
  const int port = absl::GetFlag(FLAGS_port);
  const int senders = absl::GetFlag(FLAGS_senders);
  const int window = absl::GetFlag(FLAGS_window);
  const size_t size = static_cast<size_t>(absl::GetFlag(FLAGS_size));
  const mill::SocketAddress server = mill::SocketAddress::LoopbackIPv4(port);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Sender> s(senders);
  std::string buf(size, 'x');
  auto send_one = [&](int i) {
    uint64_t header[2] = {static_cast<uint64_t>(i), s[i].next_seq++};
    std::memcpy(&buf[0], header, sizeof(header));
    if (send(s[i].fd, buf.data(), size, MSG_DONTWAIT) ==
        static_cast<ssize_t>(size)) {
      ++s[i].in_flight;
    }
  };
  for (int i = 0; i < senders; ++i) {
    s[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s[i].fd < 0 ||
        connect(s[i].fd, server.sockaddr_ptr(), server.sockaddr_len()) != 0) {
      std::fprintf(stderr, "udp_load: socket/connect: %s\n", strerror(errno));
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &ev);
  }
  const auto start = Clock::now();
  for (int i = 0; i < senders; ++i) {
    s[i].last_answer = start;
    for (int w = 0; w < window; ++w) send_one(i);
  }
  const auto measure_from =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup)));
  const auto end =
      measure_from +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(absl::GetFlag(FLAGS_duration)));
  uint64_t measured = 0, refills = 0, errors = 0;
  double cpu_start = -1;
  auto last_check = start;
  std::string in(70000, '\0');
  epoll_event events[128];
  for (;;) {
    const auto now = Clock::now();
    if (now >= end) break;
    if (cpu_start < 0 && now >= measure_from) cpu_start = CpuSeconds();
    if (now - last_check > std::chrono::milliseconds(100)) {
      last_check = now;
      for (int i = 0; i < senders; ++i) {
        if (now - s[i].last_answer > std::chrono::milliseconds(200)) {
          s[i].in_flight = 0;  // lost: start the window again
          s[i].last_answer = now;
          ++refills;
          for (int w = 0; w < window; ++w) send_one(i);
        }
      }
    }
    const int n = epoll_wait(ep, events, 128, 50);
    for (int e = 0; e < n; ++e) {
      const int i = static_cast<int>(events[e].data.u32);
      for (;;) {
        const ssize_t got = recv(s[i].fd, &in[0], in.size(), MSG_DONTWAIT);
        if (got < 0) break;
        uint64_t header[2] = {0, 0};
        if (static_cast<size_t>(got) != size) {
          ++errors;
          continue;
        }
        std::memcpy(header, in.data(), sizeof(header));
        if (header[0] != static_cast<uint64_t>(i) ||
            header[1] >= s[i].next_seq) {
          ++errors;
          continue;
        }
        s[i].last_answer = Clock::now();
        if (cpu_start >= 0) ++measured;
        if (s[i].in_flight > 0) --s[i].in_flight;
        send_one(i);
      }
    }
  }
  const double seconds = absl::GetFlag(FLAGS_duration);
  std::printf(
      "{\"datagrams\":%llu,\"per_s\":%.0f,\"refills\":%llu,\"errors\":%llu,"
      "\"client_cpu\":%.3f}\n",
      static_cast<unsigned long long>(measured), measured / seconds,
      static_cast<unsigned long long>(refills),
      static_cast<unsigned long long>(errors),
      cpu_start >= 0 ? (CpuSeconds() - cpu_start) / seconds : 0.0);
  return errors == 0 && measured > 0 ? 0 : 1;
}

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

std::unique_ptr<mill::EventLoop> DirectLoop() {
  mill::EventLoopOptions options;
  options.dispatch_mode = mill::DispatchMode::kDirect;
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create(options);
  if (!loop.ok()) {
    std::fprintf(stderr, "udp_load: %s\n", loop.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*loop);
}

int RunSink() {
  std::unique_ptr<mill::EventLoop> loop = DirectLoop();
  mill::UdpSocketOptions options;
  options.gro = absl::GetFlag(FLAGS_gro);
  options.batch_size = 32;
  options.receive_buffer_bytes = 4 << 20;
  mill::UdpCallbacks callbacks;
  callbacks.on_datagrams = [](mill::UdpSocket&,
                              absl::Span<const mill::Datagram>) {};
  absl::StatusOr<std::unique_ptr<mill::UdpSocket>> socket =
      mill::UdpSocket::Create(loop.get(), mill::SocketAddress::LoopbackIPv4(0),
                              options, std::move(callbacks));
  if (!socket.ok()) {
    std::fprintf(stderr, "udp_load: %s\n", socket.status().ToString().c_str());
    return 1;
  }
  if (options.gro && !(*socket)->gro_enabled()) {
    std::fprintf(stderr, "udp_load: this kernel has no UDP_GRO\n");
    return 1;
  }
  mill::StopOnSignals(loop.get());
  std::printf("listening on %s (udp)\n",
              (*socket)->local_address().ToString().c_str());
  std::fflush(stdout);
  (void)loop->Run();
  mill::StopOnSignals(nullptr);
  (*socket)->Close();
  const mill::UdpSocket::Stats st = (*socket)->stats();
  std::printf(
      "{\"received\":%llu,\"coalesced\":%llu,\"receive_calls\":%llu,"
      "\"kernel_drops\":%llu}\n",
      static_cast<unsigned long long>(st.datagrams_received),
      static_cast<unsigned long long>(st.coalesced),
      static_cast<unsigned long long>(st.receive_calls),
      static_cast<unsigned long long>(st.kernel_drops));
  std::fflush(stdout);
  return 0;
}

int RunBulk() {
  std::unique_ptr<mill::EventLoop> loop = DirectLoop();
  std::thread runner([&] { (void)loop->Run(); });
  const bool gso = absl::GetFlag(FLAGS_gso);
  const size_t size = static_cast<size_t>(absl::GetFlag(FLAGS_size));
  mill::UdpSocketOptions options;
  options.gso = gso;
  options.batch_size = 64;
  absl::StatusOr<std::unique_ptr<mill::UdpSocket>> socket =
      mill::UdpSocket::Create(loop.get(), mill::SocketAddress::LoopbackIPv4(0),
                              options, {});
  if (!socket.ok() || (gso && !(*socket)->gso_enabled())) {
    std::fprintf(stderr, "udp_load: no socket or no UDP_SEGMENT\n");
    loop->Stop();
    runner.join();
    return 1;
  }
  const mill::SocketAddress to =
      mill::SocketAddress::LoopbackIPv4(absl::GetFlag(FLAGS_port));
  constexpr size_t kPerCall = 64;
  const std::string data(kPerCall * size, 'b');
  std::vector<mill::OutgoingDatagram> batch;
  for (size_t i = 0; i < kPerCall; ++i) {
    batch.push_back({absl::string_view(data).substr(i * size, size), to});
  }
  const double cpu0 = CpuSeconds();
  const auto end =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(absl::GetFlag(FLAGS_duration)));
  while (Clock::now() < end) {
    if (gso) {
      (void)(*socket)->SendSegmented(to, data, size);
    } else {
      (void)(*socket)->SendBatch(batch);
    }
  }
  const double cpu = CpuSeconds() - cpu0;
  const mill::UdpSocket::Stats st = (*socket)->stats();
  std::printf("{\"sent\":%llu,\"send_calls\":%llu,\"cpu\":%.3f}\n",
              static_cast<unsigned long long>(st.datagrams_sent),
              static_cast<unsigned long long>(st.send_calls), cpu);
  socket->reset();
  loop->Stop();
  runner.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (absl::GetFlag(FLAGS_size) < 16 || absl::GetFlag(FLAGS_size) > 65507) {
    std::fprintf(stderr, "udp_load: --size must be in [16, 65507]\n");
    return 2;
  }
  if (mode == "echo") return RunEcho();
  if (mode == "sink") return RunSink();
  if (mode == "bulk") return RunBulk();
  std::fprintf(stderr, "udp_load: --mode must be echo, sink or bulk\n");
  return 2;
}
