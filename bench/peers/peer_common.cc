#include "bench/peers/peer_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace mill {
namespace bench {
namespace {

[[noreturn]] void DieErrno(const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

}  // namespace

int ParsePortFlagOrDie(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const std::string prefix = "--port=";
    if (arg.compare(0, prefix.size(), prefix) == 0) {
      char* end = nullptr;
      const long value = std::strtol(arg.c_str() + prefix.size(), &end, 10);
      if (end != arg.c_str() + arg.size() ||
          end == arg.c_str() + prefix.size() || value < 0 || value > 65535) {
        std::fprintf(stderr, "%s: bad port in '%s'\n", argv[0], argv[i]);
        std::exit(2);
      }
      port = static_cast<int>(value);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--port=N]\n"
                   "  Serves on 127.0.0.1:N (0 = a free port) until SIGINT or "
                   "SIGTERM.\n",
                   argv[0]);
      std::exit(2);
    }
  }
  return port;
}

int ListenOrDie(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) DieErrno("socket");
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    DieErrno("setsockopt(SO_REUSEADDR)");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    DieErrno("bind(127.0.0.1)");
  }
  if (listen(fd, SOMAXCONN) != 0) DieErrno("listen");
  return fd;
}

int LocalPortOrDie(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    DieErrno("getsockname");
  }
  return ntohs(addr.sin_port);
}

void AnnounceListening(int port) {
  std::printf("listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
}

bool SetNoDelay(int fd) {
  const int one = 1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
}

bool WritePending(int fd, std::string_view* pending) {
  while (!pending->empty()) {
    const ssize_t n = write(fd, pending->data(), pending->size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN;
    }
    pending->remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void IgnoreSigpipe() { signal(SIGPIPE, SIG_IGN); }

}  // namespace bench
}  // namespace mill
