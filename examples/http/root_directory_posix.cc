// root_directory.h on POSIX: openat2(RESOLVE_BENEATH) where the kernel has
// it, realpath(3) checks elsewhere.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "examples/http/root_directory.h"

namespace mill::http::internal {
namespace {

// The HTTP status for a failed realpath(), stat() or open() of a file under
// the root.
int StatusForErrno(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
      return 403;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN:  // Also EWOULDBLOCK (a lease or lock held elsewhere).
      return 503;
    case ENOENT:
    case ENOTDIR:
    case ELOOP:  // A symlink swapped in after realpath(); O_NOFOLLOW said no.
    case ENAMETOOLONG:
    case ENXIO:  // A socket or device node.
    case ENODEV:
      return 404;
    default:
      return 500;
  }
}

OpenedPath Failed(int status) {
  OpenedPath result;
  result.status = status;
  return result;
}

OpenedPath DirectoryWithoutIndex() {
  OpenedPath result = Failed(404);
  result.directory_without_index = true;
  return result;
}

FileInfo InfoOf(const struct stat& st) {
  FileInfo info;
  info.size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  info.mtime_sec = static_cast<int64_t>(st.st_mtim.tv_sec);
  info.mtime_nsec = static_cast<int64_t>(st.st_mtim.tv_nsec);
  info.id = static_cast<uint64_t>(st.st_ino);
  return info;
}

// Takes open regular file `fd` (stat `st`) into the result.
OpenedPath Opened(int fd, const struct stat& st, std::string type_name) {
  OpenedPath result;
  result.fd = fd;
  result.info = InfoOf(st);
  result.type_name = std::move(type_name);
  return result;
}

}  // namespace

struct RootDirectory::Platform {
  std::string root_prefix;  // The resolved root with a trailing '/'.
  int root_fd = -1;         // O_PATH descriptor of the root, for openat2

  ~Platform() {
    if (root_fd >= 0) close(root_fd);
  }

  // The kernel-checked path (Linux openat2 with RESOLVE_BENEATH): opens
  // `relative` under the root in one system call, refusing any escape
  // (symlinks included) with EXDEV. -1 and errno on failure; ENOSYS where
  // the kernel or a sandbox lacks openat2 (then realpath checks instead).
  int OpenBeneath(const std::string& relative) const {
#ifdef SYS_openat2
    if (root_fd < 0) {
      errno = ENOSYS;
      return -1;
    }
    struct OpenHow {  // struct open_how of <linux/openat2.h>
      uint64_t flags;
      uint64_t mode;
      uint64_t resolve;
    };
    constexpr uint64_t kResolveNoMagicLinks = 0x02;  // RESOLVE_NO_MAGICLINKS
    constexpr uint64_t kResolveBeneath = 0x08;       // RESOLVE_BENEATH
    // O_NONBLOCK: never hang on a FIFO.
    OpenHow how = {O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0,
                   kResolveBeneath | kResolveNoMagicLinks};
    long fd;
    do {
      fd = syscall(SYS_openat2, root_fd, relative.c_str(), &how, sizeof(how));
    } while (fd < 0 && errno == EINTR);
    return static_cast<int>(fd);
#else
    (void)relative;
    errno = ENOSYS;
    return -1;
#endif
  }

  // nullopt when openat2 is unavailable: the caller falls back.
  std::optional<OpenedPath> OpenWithOpenat2(
      const std::vector<std::string>& segments) const {
    std::string relative;
    for (const std::string& segment : segments) {
      if (!relative.empty()) relative.push_back('/');
      relative.append(segment);
    }
    if (relative.empty()) relative = ".";
    // EXDEV: the path (a symlink on it) leads out of the root.
    const auto status_for = [](int err) {
      if (err == EXDEV) return 403;
      const int status = StatusForErrno(err);
      return status == 500 ? 404 : status;
    };
    int fd = OpenBeneath(relative);
    if (fd < 0) {
      // Without openat2, or out of descriptors (whether the file exists can
      // still be told without one): the path-based checks.
      if (errno == ENOSYS || errno == EMFILE || errno == ENFILE) {
        return std::nullopt;
      }
      return Failed(status_for(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      close(fd);
      return Failed(StatusForErrno(err));
    }
    if (S_ISDIR(st.st_mode)) {
      close(fd);
      const std::string index =
          relative == "." ? "index.html" : relative + "/index.html";
      fd = OpenBeneath(index);
      if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        return Opened(fd, st, "index.html");
      }
      if (fd >= 0) close(fd);
      return DirectoryWithoutIndex();
    }
    if (!S_ISREG(st.st_mode)) {  // No devices, FIFOs, sockets.
      close(fd);
      return Failed(404);
    }
    // The type follows the name asked for, as with most servers.
    return Opened(fd, st, segments.back());
  }

  // realpath() of `path` when it stays under `root`; else an HTTP error
  // status.
  int Resolve(const std::string& root, const std::string& path,
              std::string* real_path) const {
    char resolved[PATH_MAX];
    if (realpath(path.c_str(), resolved) == nullptr) {
      const int status = StatusForErrno(errno);
      return status == 500 ? 404 : status;  // EIO, EINVAL...: nothing there.
    }
    real_path->assign(resolved);
    if (*real_path != root &&
        real_path->compare(0, root_prefix.size(), root_prefix) != 0) {
      return 403;  // A symlink led out of the root.
    }
    return 0;
  }

  // Opens `real_path` (already checked to be under the root).
  OpenedPath OpenChecked(const std::string& real_path,
                         std::string type_name) const {
    // O_NONBLOCK: never hang on a FIFO swapped in after the stat().
    int fd;
    do {
      fd = open(real_path.c_str(),
                O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return Failed(StatusForErrno(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      close(fd);
      return Failed(StatusForErrno(err));
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      return Failed(404);
    }
    return Opened(fd, st, std::move(type_name));
  }

  // The path-based checks: realpath() must stay under the root, then the
  // resolved path is opened without following a final symlink. The check
  // and the open are not atomic (see static_file_service.h).
  OpenedPath OpenWithRealpath(const std::string& root,
                              const std::vector<std::string>& segments) const {
    std::string path = root;
    for (const std::string& segment : segments) {
      path.push_back('/');
      path.append(segment);
    }
    std::string real_path;
    if (const int status = Resolve(root, path, &real_path); status != 0) {
      return Failed(status);
    }
    struct stat st;
    if (stat(real_path.c_str(), &st) != 0) {
      const int status = StatusForErrno(errno);
      return Failed(status == 500 ? 404 : status);
    }
    if (S_ISDIR(st.st_mode)) {
      std::string index;
      if (Resolve(root, real_path + "/index.html", &index) == 0 &&
          stat(index.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        return OpenChecked(index, "index.html");
      }
      return DirectoryWithoutIndex();
    }
    if (!S_ISREG(st.st_mode)) return Failed(404);  // No devices, FIFOs...
    // The type follows the name asked for, as with most servers.
    return OpenChecked(real_path, segments.back());
  }
};

absl::StatusOr<std::unique_ptr<RootDirectory>> RootDirectory::Open(
    const std::string& root) {
  char resolved[PATH_MAX];
  if (realpath(root.c_str(), resolved) == nullptr) {
    return absl::NotFoundError("root " + root + ": " + std::strerror(errno));
  }
  struct stat st;
  if (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError("root " + root + " is not a directory");
  }
  auto platform = std::make_unique<Platform>();
  platform->root_prefix = resolved;
  if (platform->root_prefix.back() != '/') platform->root_prefix.push_back('/');
#ifdef SYS_openat2
  platform->root_fd = open(resolved, O_PATH | O_DIRECTORY | O_CLOEXEC);
#endif
  return std::unique_ptr<RootDirectory>(
      new RootDirectory(resolved, std::move(platform)));
}

RootDirectory::RootDirectory(std::string path,
                             std::unique_ptr<Platform> platform)
    : path_(std::move(path)), platform_(std::move(platform)) {}

RootDirectory::~RootDirectory() = default;

OpenedPath RootDirectory::OpenFile(
    const std::vector<std::string>& segments) const {
  // One system call where the kernel can check the root for us.
  if (std::optional<OpenedPath> opened = platform_->OpenWithOpenat2(segments)) {
    return *std::move(opened);
  }
  return platform_->OpenWithRealpath(path_, segments);
}

}  // namespace mill::http::internal
