// RootDirectory: the static file service's confinement. Opens what a decoded
// request path names under the served root, refusing every way out of it.
// Internal to //examples/http; one implementation per platform:
//
//   root_directory_posix.cc: on Linux 5.6+ openat2(RESOLVE_BENEATH) from a
//     descriptor of the root, so the kernel refuses any escape (symlinks
//     included) in the system call that opens the file; elsewhere, or out of
//     descriptors, realpath(3) of the path must stay under the resolved root.
//   root_directory_win.cc: no openat2. Each segment must be a plain Windows
//     name (windows_names.h: no drive letters, no ':' streams, no device
//     names such as CON, no trailing dots or spaces); the file is opened
//     with CreateFileW under the root's final path (a "\\?\" path, which
//     Windows does not rewrite), and the opened file's own final path
//     (GetFinalPathNameByHandleW, links and junctions resolved) must lie
//     under the root's.
//
// Thread-safety: thread-safe (OpenFile is const and keeps no state).
#ifndef MILL_IO_EXAMPLES_HTTP_ROOT_DIRECTORY_H_
#define MILL_IO_EXAMPLES_HTTP_ROOT_DIRECTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/http/http_message.h"

namespace mill::http::internal {

// What a path opened to.
struct OpenedPath {
  // 0 when `fd` is an open regular file; otherwise the HTTP status to
  // answer: 403 (escapes the root, or not permitted), 404 (missing, not a
  // regular file, not a servable name), 503 (out of descriptors or memory),
  // 500.
  int status = 0;
  // The path names a directory without a servable index.html (status 404;
  // the service answers its greeting instead at "/").
  bool directory_without_index = false;
  // The open file (owned by the caller from here) and its metadata.
  int fd = -1;
  FileInfo info;
  // The name whose extension gives the Content-Type: the last segment, or
  // "index.html" for a directory's index.
  std::string type_name;
};

class RootDirectory {
 public:
  // The directory `root`: NotFound when it cannot be resolved,
  // InvalidArgument when it is not a directory.
  static absl::StatusOr<std::unique_ptr<RootDirectory>> Open(
      const std::string& root);

  ~RootDirectory();
  RootDirectory(const RootDirectory&) = delete;
  RootDirectory& operator=(const RootDirectory&) = delete;

  // The resolved root (UTF-8).
  const std::string& path() const { return path_; }

  // Opens the file `segments` (decoded, without empty, "." and ".."
  // segments; none for the root itself) name under the root; a directory
  // opens its index.html.
  OpenedPath OpenFile(const std::vector<std::string>& segments) const;

 private:
  struct Platform;  // Each platform's state, in its own file.

  RootDirectory(std::string path, std::unique_ptr<Platform> platform);

  std::string path_;
  std::unique_ptr<Platform> platform_;
};

}  // namespace mill::http::internal

#endif  // MILL_IO_EXAMPLES_HTTP_ROOT_DIRECTORY_H_
