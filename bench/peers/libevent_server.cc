// Echo / HTTP hello peer on libevent (libevent_core): one event_base, a
// persistent EV_READ event per connection reading into the session's 16 KiB
// buffer, replies written at once; a partial write swaps the read event for
// an EV_WRITE event until the reply is out. Raw events rather than
// bufferevents: bufferevents read at most 4 KiB at a time and copy through
// an evbuffer, which would not be the same work as the other peers.
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>
#include <unordered_set>

#include "bench/peers/peer_common.h"
#include "bench/peers/session.h"

namespace mill {
namespace bench {
namespace {

struct Conn {
  int fd = -1;
  event* read_event = nullptr;
  event* write_event = nullptr;
  Session session;
  std::string_view pending;  // Unwritten rest of the reply.
};

// Open connections, so that a stop frees them. Touched only on accept and
// close, never per message.
std::unordered_set<Conn*> conns;

void FreeConn(Conn* conn) {
  if (conn->read_event != nullptr) event_free(conn->read_event);
  if (conn->write_event != nullptr) event_free(conn->write_event);
  close(conn->fd);
  delete conn;
}

void CloseConn(Conn* conn) {
  conns.erase(conn);
  FreeConn(conn);
}

void OnReadable(evutil_socket_t fd, short /*what*/, void* arg) {
  Conn* conn = static_cast<Conn*>(arg);
  const ssize_t n =
      read(fd, conn->session.read_ptr(), conn->session.read_space());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0 || !conn->session.Commit(static_cast<size_t>(n), &conn->pending) ||
      !WritePending(fd, &conn->pending)) {
    CloseConn(conn);
    return;
  }
  if (!conn->pending.empty()) {
    event_del(conn->read_event);
    event_add(conn->write_event, nullptr);
  }
}

void OnWritable(evutil_socket_t fd, short /*what*/, void* arg) {
  Conn* conn = static_cast<Conn*>(arg);
  if (!WritePending(fd, &conn->pending)) {
    CloseConn(conn);
    return;
  }
  if (conn->pending.empty()) {
    event_del(conn->write_event);
    event_add(conn->read_event, nullptr);
  }
}

// evconnlistener hands over accepted sockets already non-blocking.
void OnAccept(evconnlistener* listener, evutil_socket_t fd, sockaddr*,
              int /*socklen*/, void* /*arg*/) {
  event_base* base = evconnlistener_get_base(listener);
  SetNoDelay(fd);
  Conn* conn = new Conn;
  conn->fd = fd;
  conn->read_event =
      event_new(base, fd, EV_READ | EV_PERSIST, OnReadable, conn);
  conn->write_event =
      event_new(base, fd, EV_WRITE | EV_PERSIST, OnWritable, conn);
  if (conn->read_event == nullptr || conn->write_event == nullptr ||
      event_add(conn->read_event, nullptr) != 0) {
    FreeConn(conn);
    return;
  }
  conns.insert(conn);
}

void OnStopSignal(evutil_socket_t, short, void* base) {
  event_base_loopbreak(static_cast<event_base*>(base));
}

int Main(int argc, char** argv) {
  const int port = ParsePortFlagOrDie(argc, argv);
  IgnoreSigpipe();
  event_base* base = event_base_new();
  if (base == nullptr) {
    std::fprintf(stderr, "event_base_new failed\n");
    return 1;
  }
  const int listen_fd = ListenOrDie(port);
  // backlog 0: the socket is already listening (ListenOrDie).
  evconnlistener* listener = evconnlistener_new(
      base, OnAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
      listen_fd);
  event* sigint = evsignal_new(base, SIGINT, OnStopSignal, base);
  event* sigterm = evsignal_new(base, SIGTERM, OnStopSignal, base);
  if (listener == nullptr || sigint == nullptr || sigterm == nullptr ||
      event_add(sigint, nullptr) != 0 || event_add(sigterm, nullptr) != 0) {
    std::fprintf(stderr, "libevent setup failed\n");
    return 1;
  }
  AnnounceListening(LocalPortOrDie(listen_fd));
  const int rc = event_base_dispatch(base);

  for (Conn* conn : conns) FreeConn(conn);
  conns.clear();
  event_free(sigint);
  event_free(sigterm);
  evconnlistener_free(listener);
  event_base_free(base);
  return rc < 0 ? 1 : 0;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) { return mill::bench::Main(argc, argv); }
