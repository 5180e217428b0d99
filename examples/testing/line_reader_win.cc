// LineReader::Fill on Windows. A socket (a SOCKET stored in the int) is
// waited for with WSAPoll and read with recv. A pipe (a HANDLE stored in
// the int: a child's stdout or stderr) cannot be waited for with a timeout
// (anonymous pipes have no overlapped I/O), so PeekNamedPipe polls it every
// few milliseconds until bytes, the end (ERROR_BROKEN_PIPE: the writer
// closed) or the deadline. Pipe lines lose the "\r" of the C runtime's
// text-mode "\r\n".
#include <windows.h>
#include <winsock2.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>

#include "examples/testing/line_reader.h"

namespace mill {
namespace testing {

bool LineReader::Fill(std::chrono::milliseconds timeout) {
  if (eof_) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char chunk[65536];
  if (source_ == Source::kPipe) {
    const HANDLE pipe = reinterpret_cast<HANDLE>(static_cast<intptr_t>(fd_));
    for (;;) {
      DWORD available = 0;
      if (!PeekNamedPipe(pipe, nullptr, 0, nullptr, &available, nullptr)) {
        eof_ = true;  // The writer closed (ERROR_BROKEN_PIPE), or an error.
        return false;
      }
      if (available > 0) {
        DWORD n = 0;
        const DWORD want = std::min<DWORD>(available, sizeof(chunk));
        if (!ReadFile(pipe, chunk, want, &n, nullptr) || n == 0) {
          eof_ = true;
          return false;
        }
        buffer_.append(chunk, n);
        // A child's C runtime writes "\n" to a pipe as "\r\n" (text mode):
        // undone here, so lines read as on POSIX. A "\r" that ends a read
        // meets its "\n" on the next one (the whole buffer is scanned).
        size_t at = 0;
        while ((at = buffer_.find("\r\n", at)) != std::string::npos) {
          buffer_.erase(at, 1);
        }
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  const SOCKET socket = static_cast<SOCKET>(static_cast<intptr_t>(fd_));
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    WSAPOLLFD pfd = {socket, POLLRDNORM, 0};
    const int ready =
        WSAPoll(&pfd, 1, static_cast<INT>(left.count() > 0 ? left.count() : 0));
    if (ready <= 0) return false;
    const int n = recv(socket, chunk, sizeof(chunk), 0);
    if (n < 0 && WSAGetLastError() == WSAEWOULDBLOCK) continue;
    if (n <= 0) {
      eof_ = true;  // end of stream, or the peer reset the connection
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
}

int WaitReadable(const std::vector<int>& fds, std::chrono::milliseconds timeout,
                 std::vector<bool>* readable) {
  std::vector<WSAPOLLFD> pfds;
  for (const int fd : fds) {
    pfds.push_back(
        {static_cast<SOCKET>(static_cast<intptr_t>(fd)), POLLRDNORM, 0});
  }
  readable->assign(fds.size(), false);
  const int ready = WSAPoll(pfds.data(), static_cast<ULONG>(pfds.size()),
                            static_cast<INT>(timeout.count()));
  if (ready <= 0) return 0;
  for (size_t i = 0; i < pfds.size(); ++i) {
    (*readable)[i] = pfds[i].revents != 0;
  }
  return ready;
}

long ReceiveFromSocket(int fd, char* buffer, size_t size) {
  const int n = recv(static_cast<SOCKET>(static_cast<intptr_t>(fd)), buffer,
                     static_cast<int>(std::min<size_t>(size, 1 << 30)), 0);
  return n == SOCKET_ERROR ? -1 : n;
}

}  // namespace testing
}  // namespace mill
