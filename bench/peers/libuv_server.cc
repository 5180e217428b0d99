// Echo / HTTP hello peer on libuv: one uv_loop_t, uv_read_start with the
// session's 16 KiB buffer, replies with uv_try_write and, for the rest of a
// partial write, uv_write with reads stopped until it completes.
#include <signal.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdio>
#include <string_view>

#include "bench/peers/peer_common.h"
#include "bench/peers/session.h"

namespace mill {
namespace bench {
namespace {

struct Conn {
  uv_tcp_t handle;  // handle.data == this.
  uv_write_t write_req;
  Session session;
  std::string_view pending;  // Unwritten rest of the reply.
};

void OnConnClosed(uv_handle_t* handle) {
  delete static_cast<Conn*>(handle->data);
}

void CloseConn(Conn* conn) {
  uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(&conn->handle);
  if (!uv_is_closing(handle)) uv_close(handle, OnConnClosed);
}

void OnAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
  Conn* conn = static_cast<Conn*>(handle->data);
  *buf = uv_buf_init(conn->session.read_ptr(),
                     static_cast<unsigned>(conn->session.read_space()));
}

void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* /*buf*/);

void OnWritten(uv_write_t* req, int status) {
  Conn* conn = static_cast<Conn*>(req->data);
  if (status < 0) {
    CloseConn(conn);
    return;
  }
  conn->pending = {};
  uv_read_start(reinterpret_cast<uv_stream_t*>(&conn->handle), OnAlloc, OnRead);
}

void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* /*buf*/) {
  Conn* conn = static_cast<Conn*>(stream->data);
  if (nread == 0) return;  // EAGAIN.
  std::string_view reply;
  if (nread < 0 || !conn->session.Commit(static_cast<size_t>(nread), &reply)) {
    CloseConn(conn);
    return;
  }
  if (reply.empty()) return;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(reply.data()),
                             static_cast<unsigned>(reply.size()));
  int written = uv_try_write(stream, &buf, 1);
  if (written == UV_EAGAIN) written = 0;
  if (written < 0) {
    CloseConn(conn);
    return;
  }
  if (static_cast<size_t>(written) == reply.size()) return;
  // Partial write: queue the rest and pause reads until it is out, so the
  // reply (which lives in the session's buffer) stays intact.
  conn->pending = reply.substr(static_cast<size_t>(written));
  uv_read_stop(stream);
  buf = uv_buf_init(const_cast<char*>(conn->pending.data()),
                    static_cast<unsigned>(conn->pending.size()));
  conn->write_req.data = conn;
  if (uv_write(&conn->write_req, stream, &buf, 1, OnWritten) != 0) {
    CloseConn(conn);
  }
}

void OnConnection(uv_stream_t* listener, int status) {
  if (status < 0) return;
  Conn* conn = new Conn;
  uv_tcp_init(listener->loop, &conn->handle);
  conn->handle.data = conn;
  uv_stream_t* stream = reinterpret_cast<uv_stream_t*>(&conn->handle);
  if (uv_accept(listener, stream) != 0) {
    CloseConn(conn);
    return;
  }
  uv_tcp_nodelay(&conn->handle, 1);
  uv_read_start(stream, OnAlloc, OnRead);
}

// Closes every handle (connections free themselves in their close
// callback), which lets uv_run() return.
void CloseEverything(uv_handle_t* handle, void* /*arg*/) {
  if (uv_is_closing(handle)) return;
  const bool is_conn = handle->type == UV_TCP && handle->data != nullptr;
  uv_close(handle, is_conn ? OnConnClosed : nullptr);
}

void OnStopSignal(uv_signal_t* signal, int /*signum*/) {
  uv_walk(signal->loop, CloseEverything, nullptr);
}

int Main(int argc, char** argv) {
  const int port = ParsePortFlagOrDie(argc, argv);
  IgnoreSigpipe();
  uv_loop_t loop;
  uv_loop_init(&loop);

  uv_tcp_t listener;
  uv_tcp_init(&loop, &listener);
  listener.data = nullptr;
  const int listen_fd = ListenOrDie(port);
  int rc = uv_tcp_open(&listener, listen_fd);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), SOMAXCONN,
                   OnConnection);
  }
  if (rc != 0) {
    std::fprintf(stderr, "uv_listen: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_signal_t sigint;
  uv_signal_t sigterm;
  uv_signal_init(&loop, &sigint);
  uv_signal_init(&loop, &sigterm);
  sigint.data = sigterm.data = nullptr;
  uv_signal_start(&sigint, OnStopSignal, SIGINT);
  uv_signal_start(&sigterm, OnStopSignal, SIGTERM);

  AnnounceListening(LocalPortOrDie(listen_fd));
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) { return mill::bench::Main(argc, argv); }
