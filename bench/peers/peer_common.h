// Plumbing shared by the comparison peers in bench/peers (echo and HTTP
// servers on bare epoll, libuv, libevent and Asio), so that every server gets
// the same command line, the same listening socket and the same socket
// options, and only the event loop differs.
//
// Conventions every peer follows: one loop thread; `--port=N` (0 picks a free
// port); the listener is bound to 127.0.0.1 with SO_REUSEADDR; accepted
// sockets get TCP_NODELAY; reads use a 16 KiB buffer; when ready the server
// prints exactly "listening on 127.0.0.1:PORT" on stdout (flushed); SIGINT
// and SIGTERM stop the loop and the process exits 0.
//
// Thread-safety: the functions are meant for a single-threaded main(); they
// keep no state. Ownership: ListenOrDie() returns a file descriptor owned by
// the caller (usually handed over to the event library, which then owns it).
#ifndef MILL_IO_BENCH_PEERS_PEER_COMMON_H_
#define MILL_IO_BENCH_PEERS_PEER_COMMON_H_

#include <cstddef>
#include <string_view>

namespace mill {
namespace bench {

// Size of every peer's per-connection read buffer.
inline constexpr std::size_t kReadBufferSize = 16 * 1024;

// Parses the peer command line: `--port=N` (default 0) and nothing else.
// Prints usage to stderr and exits 2 on anything it does not understand.
int ParsePortFlagOrDie(int argc, char** argv);

// Creates a non-blocking TCP socket bound to 127.0.0.1:`port` with
// SO_REUSEADDR, listening with a SOMAXCONN backlog. Exits 1 with the errno
// text on failure.
int ListenOrDie(int port);

// The local port `fd` is bound to; exits 1 on failure.
int LocalPortOrDie(int fd);

// Prints "listening on 127.0.0.1:PORT\n" on stdout and flushes it.
void AnnounceListening(int port);

// Sets TCP_NODELAY on an accepted socket (for peers whose library has no
// wrapper for it). Returns false (errno set) on failure.
bool SetNoDelay(int fd);

// Writes as much of `*pending` to the non-blocking socket `fd` as it takes
// now, dropping what was written from `*pending`. Returns false if the
// connection failed (anything but EAGAIN); `*pending` is then unspecified.
bool WritePending(int fd, std::string_view* pending);

// Makes writes to a closed connection fail with EPIPE instead of killing the
// process.
void IgnoreSigpipe();

}  // namespace bench
}  // namespace mill

#endif  // MILL_IO_BENCH_PEERS_PEER_COMMON_H_
