// udp_echo: a UDP echo server on Mill-IO's UdpSocket.
//
//   bazel run //examples:udp_echo -- --port=7000 --mode=pool
//
// Prints "listening on ADDRESS:PORT (udp)" on stdout once it receives
// (with --port=0 the port is the kernel's pick), sends every datagram back
// to its sender (each received batch answered with one sendmmsg), and on
// SIGINT or SIGTERM stops the loop, closes the socket, prints its counters
// on stderr and exits with status 0. Bad flags print a message and exit 2.

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "examples/common/server_main.h"
#include "examples/common/stop_requests.h"
#include "net/udp_socket.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 7000, "UDP port (0: let the kernel pick a free one)");
ABSL_FLAG(int, batch, 32, "datagrams per recvmmsg/sendmmsg call (1..1024)");
ABSL_FLAG(bool, gro, false, "accept coalesced receives (UDP_GRO)");
ABSL_FLAG(int, rcvbuf, 0, "SO_RCVBUF in bytes (0: the system default)");

namespace {

constexpr char kName[] = "udp_echo";

int Fail(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", kName, message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "UDP echo server on Mill-IO.\n  udp_echo --port=7000 "
      "--mode=pool|direct --batch=32");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1)
    return Fail(absl::StrCat("unexpected argument '", rest[1], "'"));
  // The servers' common flags (--address, --port, --mode, --workers).
  absl::StatusOr<mill::examples::ServerSetup> setup =
      mill::examples::ValidateCommonServerFlags(
          mill::examples::ReadCommonServerFlags(absl::GetFlag(FLAGS_port),
                                                absl::ZeroDuration()));
  if (!setup.ok()) return Fail(std::string(setup.status().message()));
  const int batch = absl::GetFlag(FLAGS_batch);
  if (batch < 1 || batch > 1024) {
    return Fail(absl::StrCat("--batch must be in [1, 1024], got ", batch));
  }
  if (absl::GetFlag(FLAGS_rcvbuf) < 0) {
    return Fail("--rcvbuf must not be negative");
  }

  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create(setup->loop);
  if (!loop.ok()) return Fail(loop.status().ToString());

  mill::UdpSocketOptions options;
  options.batch_size = static_cast<size_t>(batch);
  options.gro = absl::GetFlag(FLAGS_gro);
  options.receive_buffer_bytes = absl::GetFlag(FLAGS_rcvbuf);
  mill::UdpCallbacks callbacks;
  // Only the loop's handler of this one socket touches it (callbacks never
  // overlap), so it needs no lock.
  auto replies = std::make_shared<std::vector<mill::OutgoingDatagram>>();
  callbacks.on_datagrams = [replies](mill::UdpSocket& socket,
                                     absl::Span<const mill::Datagram> batch) {
    replies->clear();
    for (const mill::Datagram& d : batch) replies->push_back({d.data, d.peer});
    // What the kernel refuses or the full queue drops is lost, as UDP may
    // lose it anyway: counted in the socket's stats.
    (void)socket.SendBatch(*replies);
  };
  absl::StatusOr<std::unique_ptr<mill::UdpSocket>> socket =
      mill::UdpSocket::Create(loop->get(), setup->address, options,
                              std::move(callbacks));
  if (!socket.ok()) return Fail(socket.status().ToString());

  // SIGINT/SIGTERM (Windows: also the stop event, examples/common).
  absl::StatusOr<std::unique_ptr<mill::examples::StopRequests>> stop_requests =
      mill::examples::StopRequests::Start(loop->get());
  if (!stop_requests.ok()) return Fail(stop_requests.status().ToString());
  std::printf("listening on %s (udp)\n",
              (*socket)->local_address().ToString().c_str());
  std::fflush(stdout);

  absl::Status status = (*loop)->Run();
  stop_requests->reset();
  (*socket)->Close();
  const mill::UdpSocket::Stats stats = (*socket)->stats();
  std::fprintf(stderr,
               "%s: stopped; %llu datagrams received, %llu sent, %llu "
               "receive calls, %llu send calls, %llu dropped by the kernel\n",
               kName, static_cast<unsigned long long>(stats.datagrams_received),
               static_cast<unsigned long long>(stats.datagrams_sent),
               static_cast<unsigned long long>(stats.receive_calls),
               static_cast<unsigned long long>(stats.send_calls),
               static_cast<unsigned long long>(stats.kernel_drops));
  socket->reset();
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, status.ToString().c_str());
    return 1;
  }
  return 0;
}
