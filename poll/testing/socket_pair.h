// Test-only: the descriptors the poll tests need (stream socket pairs, TCP
// pairs, pipes, regular files, a refused connect) and the few operations
// they do on them, behind one portable interface, so that the SAME suite runs
// on every platform. socket_pair_posix.cc (socketpair, pipe, open) and
// socket_pair_win.cc (loopback TCP pairs, CreatePipe, CreateFile; SOCKETs and
// HANDLEs stored in an int as the public API does).
//
// Thread-safety: the functions are thread-safe; an Fd is a plain owner.
#ifndef MILL_IO_POLL_TESTING_SOCKET_PAIR_H_
#define MILL_IO_POLL_TESTING_SOCKET_PAIR_H_

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mill {
namespace poll_testing {

// Closes a descriptor from this file the platform's way (close(2);
// closesocket or CloseHandle on Windows).
void CloseDescriptor(int fd);

// Owns one descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) CloseDescriptor(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct FdPair {
  Fd a;  // pipes: read end; TCP pairs: client
  Fd b;  // pipes: write end; TCP pairs: accepted server side
};

// A connected pair of non-blocking stream sockets: socketpair(AF_UNIX) on
// POSIX, a loopback TCP connection on Windows (which has no socketpair).
absl::StatusOr<FdPair> MakeSocketPair();
// A connected non-blocking loopback TCP pair (127.0.0.1).
absl::StatusOr<FdPair> MakeTcpPair();
// A non-blocking pipe. On Windows an anonymous pipe (CreatePipe): a valid
// handle that is not a socket, which the IOCP backend cannot poll.
absl::StatusOr<FdPair> MakePipe();
// A non-blocking loopback TCP listener (backlog 16), and a blocking client
// connection to it (completed by the kernel; the listener can accept it).
absl::StatusOr<Fd> MakeListener();
absl::StatusOr<Fd> ConnectToListener(int listener);
// a: a non-blocking TCP socket whose connect to a loopback port nobody
// listens on is in progress; b: the bound, non-listening socket holding that
// port. Unavailable if the connect completed or failed synchronously.
absl::StatusOr<FdPair> StartRefusedConnect();
// The socket's pending error (SO_ERROR) is "connection refused"; else false
// and `detail` says what it is.
bool PendingErrorIsConnectionRefused(int fd, std::string* detail);

// Non-blocking I/O: bytes moved, 0 at end of stream, -1 on error (then
// LastErrorWouldBlock() tells whether it was EAGAIN / WSAEWOULDBLOCK).
long WriteSome(int fd, const void* data, size_t n);
long ReadSome(int fd, void* data, size_t n);
// One byte of urgent (out-of-band) data.
long SendUrgent(int fd, char byte);
bool LastErrorWouldBlock();
std::string LastErrorText();
// Closes `fd` abortively (SO_LINGER with a zero timeout): the peer gets a
// reset (RST) instead of an orderly end of stream.
void CloseWithReset(int fd);
// shutdown(SHUT_WR) / shutdown(SD_SEND).
absl::Status ShutdownWrite(int fd);

// Something that is a valid descriptor but no pollable one: a regular file
// (created) and a directory, opened as the platform opens them (Windows:
// CreateFile handles).
absl::StatusOr<Fd> OpenRegularFile(const std::string& path);
absl::StatusOr<Fd> OpenDirectory(const std::string& path);
void RemoveFile(const std::string& path);
// TEST_TMPDIR, else the platform's temporary directory.
std::string TempDir();

// The text a backend's status carries for a closed or invalid descriptor
// (strerror(EBADF) on POSIX; the Win32 text of WSAENOTSOCK on Windows).
std::string BadDescriptorErrorText();

// Raises the open-descriptor limit to at least `n` for this object's
// lifetime (POSIX RLIMIT_NOFILE; Windows has no such limit). ok() is false,
// with why(), when the hard limit is below `n`.
class ScopedDescriptorLimit {
 public:
  explicit ScopedDescriptorLimit(size_t n);
  ~ScopedDescriptorLimit();
  ScopedDescriptorLimit(const ScopedDescriptorLimit&) = delete;
  ScopedDescriptorLimit& operator=(const ScopedDescriptorLimit&) = delete;
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }

 private:
  bool ok_ = true;
  bool restore_ = false;
  unsigned long long old_soft_ = 0;
  std::string why_;
};

}  // namespace poll_testing
}  // namespace mill

#endif  // MILL_IO_POLL_TESTING_SOCKET_PAIR_H_
