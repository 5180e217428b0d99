// StaticFileService: the HTTP example's request handler: a greeting, or the
// files under a root directory.
//
// Behaviour:
//   * Only GET and HEAD; any other method gets 405 with "Allow: GET, HEAD".
//   * Without a root: "/" answers the greeting (text/plain); anything else
//     is 404.
//   * With a root: a path naming a regular file serves it, with a
//     Content-Type from its extension (ContentTypeForPath). A directory
//     serves its index.html; without one, "/" answers the greeting and any
//     other directory is 404 (no listings, no redirect to add a slash).
//   * Errors opening a file: missing (ENOENT, ENOTDIR, ...) is 404; not
//     permitted (EACCES, EPERM) is 403; out of descriptors or memory
//     (EMFILE, ENFILE, ENOMEM, EAGAIN; on Windows also a sharing violation)
//     is 503 Service Unavailable with "Retry-After: 1", since the file
//     exists and a retry may succeed; anything else is 500. HEAD opens the
//     file too, so it answers exactly what GET would.
//   * Escaping the root is refused with 403 Forbidden, whatever the spelling:
//     a ".." segment (raw or percent-encoded), an encoded "/" (%2F) or any
//     backslash (raw or %5C) inside a segment, NUL or other control bytes,
//     and symlinks (anywhere on the path) whose target lies outside the root:
//     on Linux 5.6+ the file is opened with openat2(RESOLVE_BENEATH) from a
//     descriptor of the root, so the kernel refuses any escape in the same
//     system call that opens it (no check-then-open window); elsewhere (or
//     out of descriptors) every path is resolved with realpath(3) and must
//     stay under the resolved root. Windows has no openat2: a segment that
//     Windows would read as more than a name is refused (403) — a drive
//     letter or alternate data stream (any ':'), a device name such as CON
//     or NUL.txt, a trailing dot or space, a wildcard (windows_names.h) —
//     and the opened file's final path, links and junctions resolved, must
//     lie under the root's (root_directory.h). Malformed percent-encoding
//     is 400. The
//     query string and fragment are ignored. Absolute-form targets
//     ("http://host/path") are served by their path.
//   * Files are never read into memory: the response carries the open file
//     (HttpResponse::file, a shared FileBody) and the range to send, for the
//     transport to stream (sendfile(2) or TransmitFile, or positional reads
//     in bounded chunks). HEAD
//     responses carry only the Content-Length.
//
// File responses carry validators and support ranges (RFC 9110):
//   * "Last-Modified" is the file's mtime (clamped to the current time when
//     it lies in the future, §8.8.2.1). "ETag" is a strong entity-tag made
//     of the inode (Windows: file index), size and nanosecond mtime:
//     "<inode>-<size>-<mtime ns>" in hex. Replacing, resizing or touching the
//     file changes it; a rewrite that keeps the size within one tick of the
//     file system's timestamp clock (a few ms) would not, the same trade-off
//     nginx and Apache make. "Accept-Ranges: bytes" is sent on 200 and 206 file
//     responses.
//   * Conditionals, evaluated in the order of §13.2.2: "If-None-Match"
//     (a list of entity-tags, weak comparison, or "*" for any existing file)
//     answers 304 Not Modified when it matches; only when it is absent,
//     "If-Modified-Since" answers 304 when the file is not newer than the
//     date (any of the three HTTP-date formats; an unparseable date, or
//     several header lines, are ignored). A 304 carries ETag and
//     Last-Modified, no body and no Content-Length.
//   * "Range" (GET and HEAD; HEAD gets the headers of the GET): one range,
//     "bytes=a-b", "bytes=a-" or "bytes=-n", answers 206 Partial Content
//     with "Content-Range: bytes first-last/size" and the range's length;
//     last-pos beyond the end is clamped and a suffix longer than the file
//     means the whole file. A range starting at or past the end (or
//     "bytes=-0") answers 416 with "Content-Range: bytes */size". Several
//     ranges are answered with the whole file (200), as RFC 9110 allows
//     (no multipart/byteranges). A syntactically invalid Range, or one in
//     another unit, is ignored (200, §14.2). A suffix range of an empty file
//     is answered with the whole (empty) file (200).
//   * "If-Range" (§13.1.5): with an entity-tag, the range is honoured only
//     if it matches the ETag by strong comparison (a weak tag never does);
//     with a date, only if it equals Last-Modified exactly and the file was
//     last modified at least one second ago (so that the date is a strong
//     validator). Otherwise the whole file is sent (200).
//   * The greeting is not a file: it has no validators and ignores Range.
//
// Symlinks inside the root that point inside it are followed. The check and
// the open are not atomic: a root whose contents an attacker can change while
// the server runs is out of scope.
//
// Thread-safety: thread-safe; Handle() is const and keeps no state, so one
// service serves all connections and worker threads. Ownership: the service
// owns its options; handlers made by AsHandler() point to the service, which
// must outlive them. Responses own (a share of) their open files.
#ifndef MILL_IO_EXAMPLES_HTTP_STATIC_FILE_SERVICE_H_
#define MILL_IO_EXAMPLES_HTTP_STATIC_FILE_SERVICE_H_

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/http/http_message.h"

namespace mill::http {

namespace internal {
class RootDirectory;  // root_directory.h
}  // namespace internal

// How a request-target's path decodes (see DecodeRequestPath).
struct DecodedPath {
  enum class Verdict { kOk, kBadRequest, kForbidden };
  Verdict verdict = Verdict::kOk;
  // The decoded segments, without empty and "." segments; "/" has none.
  std::vector<std::string> segments;
};

// Splits and percent-decodes the path of `target` (origin-form "/a/b?q" or
// absolute-form "http://h/a/b"), applying the refusal rules listed above.
DecodedPath DecodeRequestPath(std::string_view target);

// The Content-Type for a file name, by its extension (case-insensitive):
// html/htm, css, js/mjs, json, txt, png, jpg/jpeg, gif, svg, ico, wasm, pdf;
// anything else is application/octet-stream. Text types say charset=utf-8.
std::string_view ContentTypeForPath(std::string_view path);

// What a Range header asks of a representation of `size` bytes (see the
// file comment for the rules).
struct ByteRangeSelection {
  enum class Kind {
    kWhole,          // Ignore the header: send the whole representation.
    kPartial,        // 206: send [offset, offset + length).
    kUnsatisfiable,  // 416.
  };
  Kind kind = Kind::kWhole;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Evaluates the value of one Range header for a representation of `size`
// bytes.
ByteRangeSelection SelectByteRange(std::string_view range_header,
                                   uint64_t size);

// Serves a greeting and, optionally, a directory tree:
//
//   StaticFileService::Options options;
//   options.root = "/srv/www";
//   auto service = StaticFileService::Create(options);
//   if (!service.ok()) return service.status();
//   HttpConnection conn((*service)->AsHandler());
class StaticFileService {
 public:
  struct Options {
    // Directory to serve; empty serves only the greeting.
    std::string root;
    // Body of "/" when there is no index.html to serve.
    std::string greeting = "Hello from Mill-IO!\n";
    // The current time (seconds since the epoch), for Last-Modified clamping
    // and If-Range date strength; null means std::time. Called from every
    // thread serving requests, so it must be thread-safe. Tests pin it.
    std::function<std::time_t()> clock;
  };

  // Fails with NotFound / InvalidArgument when `root` is set but is not an
  // existing directory.
  static absl::StatusOr<std::unique_ptr<StaticFileService>> Create(
      Options options);

  ~StaticFileService();
  StaticFileService(const StaticFileService&) = delete;
  StaticFileService& operator=(const StaticFileService&) = delete;

  HttpResponse Handle(const HttpRequest& request) const;

  // A handler for HttpConnection that calls Handle() on this service.
  HttpHandler AsHandler() const;

  // The resolved (realpath) root, or empty when serving no files.
  const std::string& root() const { return root_; }

 private:
  StaticFileService(Options options,
                    std::unique_ptr<internal::RootDirectory> root_directory);

  // Serves open regular file `fd` (owned from here), described by `info`.
  HttpResponse ServeOpenFile(int fd, const FileInfo& info,
                             std::string_view content_type,
                             const HttpRequest& request) const;
  std::time_t Now() const;

  Options options_;
  // Null when serving no files. Opens files under the root, per platform.
  std::unique_ptr<internal::RootDirectory> root_directory_;
  std::string root_;  // Resolved; empty without a root.
};

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_STATIC_FILE_SERVICE_H_
