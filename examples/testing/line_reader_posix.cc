// LineReader::Fill on POSIX: poll() and read() (sockets and pipes alike).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "examples/testing/line_reader.h"

namespace mill {
namespace testing {

bool LineReader::Fill(std::chrono::milliseconds timeout) {
  if (eof_) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd = {fd_, POLLIN, 0};
    const int ready =
        poll(&pfd, 1, static_cast<int>(left.count() > 0 ? left.count() : 0));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char chunk[65536];
    const ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
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
  std::vector<pollfd> pfds;
  for (const int fd : fds) pfds.push_back({fd, POLLIN, 0});
  readable->assign(fds.size(), false);
  const int ready =
      poll(pfds.data(), pfds.size(), static_cast<int>(timeout.count()));
  if (ready <= 0) return 0;
  for (size_t i = 0; i < pfds.size(); ++i) {
    (*readable)[i] = pfds[i].revents != 0;
  }
  return ready;
}

long ReceiveFromSocket(int fd, char* buffer, size_t size) {
  ssize_t n;
  do {
    n = recv(fd, buffer, size, 0);
  } while (n < 0 && errno == EINTR);
  return static_cast<long>(n);
}

}  // namespace testing
}  // namespace mill
