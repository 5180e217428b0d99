// Echo / HTTP hello peer on standalone Asio: one io_context (concurrency
// hint 1) run by the main thread, the idiomatic async_read_some into the
// session's 16 KiB buffer followed by async_write of the whole reply
// (both try the socket at once before involving the reactor).
#include <signal.h>

#include <asio.hpp>
#include <cstdio>
#include <memory>
#include <string_view>
#include <utility>

#include "bench/peers/peer_common.h"
#include "bench/peers/session.h"

namespace mill {
namespace bench {
namespace {

using asio::ip::tcp;

// One connection; kept alive by the shared_ptr in its pending handler, so it
// is freed when the peer closes, on an error, or when the io_context is
// destroyed with the handler still queued.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  explicit Conn(tcp::socket socket) : socket_(std::move(socket)) {}

  void Read() {
    socket_.async_read_some(
        asio::buffer(session_.read_ptr(), session_.read_space()),
        [this, self = shared_from_this()](const asio::error_code& error,
                                          std::size_t n) {
          std::string_view reply;
          if (error || !session_.Commit(n, &reply)) return;
          if (reply.empty()) {
            Read();
            return;
          }
          asio::async_write(
              socket_, asio::buffer(reply.data(), reply.size()),
              [this, self](const asio::error_code& error, std::size_t) {
                if (!error) Read();
              });
        });
  }

 private:
  tcp::socket socket_;
  Session session_;
};

void Accept(tcp::acceptor& acceptor) {
  acceptor.async_accept(
      [&acceptor](const asio::error_code& error, tcp::socket socket) {
        if (error == asio::error::operation_aborted) return;
        if (!error) {
          asio::error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          std::make_shared<Conn>(std::move(socket))->Read();
        }
        Accept(acceptor);
      });
}

int Main(int argc, char** argv) {
  const int port = ParsePortFlagOrDie(argc, argv);
  IgnoreSigpipe();
  asio::io_context io(1);
  const int listen_fd = ListenOrDie(port);
  tcp::acceptor acceptor(io);
  asio::error_code error;
  acceptor.assign(tcp::v4(), listen_fd, error);
  if (error) {
    std::fprintf(stderr, "acceptor.assign: %s\n", error.message().c_str());
    return 1;
  }
  asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  stop_signals.async_wait([&io](const asio::error_code&, int) { io.stop(); });
  Accept(acceptor);
  AnnounceListening(LocalPortOrDie(listen_fd));
  io.run();
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) { return mill::bench::Main(argc, argv); }
