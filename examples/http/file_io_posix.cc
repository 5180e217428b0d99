// file_io.h on POSIX: pread(), close(), fstat().
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errno_status.h"
#include "examples/http/file_io.h"

namespace mill::http::internal {

absl::StatusOr<size_t> ReadFileAt(int fd, uint64_t offset, char* buffer,
                                  size_t size) {
  while (true) {
    const ssize_t n = pread(fd, buffer, size, static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) {
      return mill::ErrnoStatus(errno, "pread of a response file body");
    }
  }
}

absl::StatusOr<int> OpenFileForReading(const std::string& path) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return mill::ErrnoStatus(errno, "open " + path);
  return fd;
}

void CloseFile(int fd) {
  // Not retried on EINTR: on Linux the descriptor is released regardless.
  if (fd >= 0) close(fd);
}

absl::StatusOr<FileInfo> StatOpenFile(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return mill::ErrnoStatus(errno, "fstat");
  FileInfo info;
  info.size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  info.mtime_sec = static_cast<int64_t>(st.st_mtim.tv_sec);
  info.mtime_nsec = static_cast<int64_t>(st.st_mtim.tv_nsec);
  info.id = static_cast<uint64_t>(st.st_ino);
  return info;
}

}  // namespace mill::http::internal
