// The floor: an echo / HTTP hello server on bare epoll (level-triggered), one
// thread, no library. Each readiness event does one read() of up to 16 KiB
// and one write() of the reply; a partial write parks the connection on
// EPOLLOUT (reads paused) until the reply is out.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <unordered_set>

#include "bench/peers/peer_common.h"
#include "bench/peers/session.h"

namespace mill {
namespace bench {
namespace {

struct Conn {
  int fd = -1;
  Session session;
  std::string_view pending;  // Unwritten rest of the reply.
};

// epoll_data.ptr values for the two non-connection descriptors.
char listener_tag;
char signal_tag;

// Open connections, so that a stop frees them (leak checkers stay quiet).
// Touched only on accept and close, never per message.
std::unordered_set<Conn*> conns;

void CloseConn(int epfd, Conn* conn) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, conn->fd, nullptr);
  close(conn->fd);
  conns.erase(conn);
  delete conn;
}

void SetInterest(int epfd, Conn* conn, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = conn;
  epoll_ctl(epfd, EPOLL_CTL_MOD, conn->fd, &ev);
}

void OnReadable(int epfd, Conn* conn) {
  const ssize_t n =
      read(conn->fd, conn->session.read_ptr(), conn->session.read_space());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0 || !conn->session.Commit(static_cast<size_t>(n), &conn->pending) ||
      !WritePending(conn->fd, &conn->pending)) {
    CloseConn(epfd, conn);
    return;
  }
  if (!conn->pending.empty()) SetInterest(epfd, conn, EPOLLOUT);
}

void OnWritable(int epfd, Conn* conn) {
  if (!WritePending(conn->fd, &conn->pending)) {
    CloseConn(epfd, conn);
    return;
  }
  if (conn->pending.empty()) SetInterest(epfd, conn, EPOLLIN);
}

void AcceptAll(int epfd, int listen_fd) {
  for (;;) {
    const int fd =
        accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of descriptors: retried on the next event.
    }
    SetNoDelay(fd);
    Conn* conn = new Conn;
    conn->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = conn;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      delete conn;
      continue;
    }
    conns.insert(conn);
  }
}

int Main(int argc, char** argv) {
  const int port = ParsePortFlagOrDie(argc, argv);
  IgnoreSigpipe();

  // SIGINT/SIGTERM arrive through a signalfd, so stopping is just an event.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  const int sigfd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (sigfd < 0 || epfd < 0) {
    std::perror("signalfd/epoll_create1");
    return 1;
  }
  const int listen_fd = ListenOrDie(port);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listener_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.ptr = &signal_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &ev);
  AnnounceListening(LocalPortOrDie(listen_fd));

  epoll_event events[256];
  for (bool running = true; running;) {
    const int count = epoll_wait(epfd, events, 256, -1);
    if (count < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < count; ++i) {
      void* ptr = events[i].data.ptr;
      if (ptr == &listener_tag) {
        AcceptAll(epfd, listen_fd);
      } else if (ptr == &signal_tag) {
        running = false;
      } else {
        Conn* conn = static_cast<Conn*>(ptr);
        // Readiness for the current interest only: EPOLLIN while reading,
        // EPOLLOUT while a reply is pending. Errors surface through the
        // read or write call.
        if (conn->pending.empty()) {
          OnReadable(epfd, conn);
        } else {
          OnWritable(epfd, conn);
        }
      }
    }
  }
  for (Conn* conn : conns) {
    close(conn->fd);
    delete conn;
  }
  conns.clear();
  close(listen_fd);
  close(sigfd);
  close(epfd);
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) { return mill::bench::Main(argc, argv); }
