// HTTP/1.1 request and response values shared by the HTTP example's
// connection (protocol) and handler (content) layers, and the output side
// between the connection and the transport.
//
// HttpConnection parses bytes into an HttpRequest, calls an HttpHandler, and
// writes the returned HttpResponse into a ResponseSink as ordered pieces:
// bytes (status line, headers, small bodies) and ranges of open files. The
// handler never sees framing, keep-alive or HEAD body suppression; the sink
// decides how pieces reach the socket (Connection::Send for bytes,
// sendfile(2) for file ranges, or StringResponseSink, which reads the file
// ranges into a string in bounded chunks).
//
// Files are never read whole into memory: a file body is a FileBody, an open
// descriptor shared by the response and whoever sends it, closed when the
// last reference goes away.
//
// Thread-safety: HttpRequest, HttpResponse and StringResponseSink are plain
// values, thread-compatible. A FileBody is immutable and thread-safe (reads
// name their offset: pread(), or ReadFile with an OVERLAPPED offset). The free
// functions are thread-safe. Ownership: values own their strings; file bodies
// are shared through std::shared_ptr<const FileBody>.
#ifndef MILL_IO_EXAMPLES_HTTP_HTTP_MESSAGE_H_
#define MILL_IO_EXAMPLES_HTTP_HTTP_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace mill::http {

// One parsed request. The body, if any, is not kept: the example serves
// only GET and HEAD, whose bodies carry no meaning.
struct HttpRequest {
  std::string method;  // "GET", "HEAD", "POST", ...
  std::string target;  // The request-target exactly as sent ("/a%20b?q=1").
  int version_major = 1;
  int version_minor = 1;
  // Header fields in arrival order, names as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Whether the client lets the connection stay open after this request
  // (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive).
  bool keep_alive = true;

  // The first value of header `name` (case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
  // Every value of header `name` (case-insensitive), in arrival order.
  std::vector<std::string_view> FindHeaders(std::string_view name) const;
};

// What a FileBody announces of its file: taken when the file was opened
// (fstat() on POSIX, GetFileInformationByHandle on Windows).
struct FileInfo {
  uint64_t size = 0;
  // Modification time since the epoch, to the nanosecond when the file
  // system keeps it (Windows: 100 ns ticks).
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  // Identifies the file on its device: the inode (POSIX) or the file index
  // (Windows).
  uint64_t id = 0;
};

// An open regular file, sent in whole or in part as a response body. Owns
// the descriptor and closes it when destroyed; shared (as
// std::shared_ptr<const FileBody>) by the response and whoever sends it, so
// the descriptor stays open until the last piece referring to it is sent.
// The metadata is the FileInfo taken when the file was opened, which is what
// the response headers (Content-Length, Last-Modified, ETag) announce.
//
//   auto info = internal::StatOpenFile(fd);  // examples/http/file_io.h
//   auto file = std::make_shared<const FileBody>(fd, *info);
class FileBody {
 public:
  // Takes ownership of `fd`, an open regular file described by `info`. On
  // Windows `fd` is a C runtime descriptor (_open_osfhandle).
  FileBody(int fd, const FileInfo& info);
  ~FileBody();

  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;

  // The descriptor, for positional reads or sendfile(2) (which take an
  // explicit offset). Do not close it, and do not use read()/lseek(): the
  // file offset is shared by every sender.
  int fd() const { return fd_; }
  uint64_t size() const { return info_.size; }
  // Modification time: seconds and nanoseconds since the epoch.
  int64_t mtime_sec() const { return info_.mtime_sec; }
  int64_t mtime_nsec() const { return info_.mtime_nsec; }
  // The inode (POSIX) or file index (Windows).
  uint64_t inode() const { return info_.id; }

 private:
  const int fd_;
  const FileInfo info_;
};

// What a handler answers. HttpConnection adds Server, Date, Content-Length
// and Connection itself, so `headers` must not contain those.
//
// The body is either `body` (bytes) or, when `file` is set, `file_length`
// bytes of `file` from `file_offset` (then `body` must be empty). Responses
// with status 1xx, 204 or 304 carry neither a body nor a Content-Length.
struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A file body: sent after the headers in place of `body`.
  std::shared_ptr<const FileBody> file;
  uint64_t file_offset = 0;
  uint64_t file_length = 0;
  // Content-Length to announce when the body was deliberately left out (a
  // handler answering HEAD need not attach the file); nullopt means the
  // length of the body (file_length with a file, else body.size()).
  std::optional<uint64_t> content_length;
  // Asks the connection to close after this response.
  bool close = false;

  // A response with a text/plain body.
  static HttpResponse Text(int status, std::string body);

  // The Content-Length this response announces (see content_length).
  uint64_t ContentLength() const {
    return content_length.value_or(file != nullptr ? file_length : body.size());
  }
};

// Maps a request to a response. Called on the connection's thread; one
// handler object is typically shared by all connections, so it must be
// thread-safe. Exceptions become 500 Internal Server Error.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Where HttpConnection writes its responses: an ordered stream of pieces,
// each either bytes or a range of an open file. An implementation sends
// them in the order received; a server would queue bytes with
// Connection::Send and file ranges with a sendfile-based
// Connection::SendFile, both under the connection's backpressure.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;

  // `bytes` come next. They are valid only during the call: copy them.
  virtual void Write(std::string_view bytes) = 0;

  // `length` (> 0) bytes of `file` from `offset` come next. The range lies
  // within file->size(). Keep `file` until the range is sent: it owns the
  // descriptor.
  virtual void WriteFile(std::shared_ptr<const FileBody> file, uint64_t offset,
                         uint64_t length) = 0;
};

// Reads `length` bytes of `file` from `offset` with positional reads, passing
// them to `consume` in order, in chunks of at most `chunk_bytes` (so memory
// stays bounded whatever the length). Fails with DataLoss when the file ends
// early (it shrank after it was opened), or with the error of a failed read;
// `consume` then has received only part of the range.
absl::Status ReadFileRange(const FileBody& file, uint64_t offset,
                           uint64_t length,
                           const std::function<void(std::string_view)>& consume,
                           size_t chunk_bytes = 64 * 1024);

// A ResponseSink that flattens the pieces into a string, reading file ranges
// with ReadFileRange (bounded chunks). For tests, and for a transport
// without SendFile:
//
//   std::string out;
//   StringResponseSink sink(&out);
//   conn.Feed(bytes, &sink);
//   if (!sink.status().ok()) { /* a file shrank: close the connection */ }
//
// After a failed read the stream can no longer be framed (a Content-Length
// was promised and not delivered), so status() keeps the error and later
// pieces are dropped. The sink does not own `*out`, which must outlive it.
class StringResponseSink : public ResponseSink {
 public:
  explicit StringResponseSink(std::string* out) : out_(out) {}

  void Write(std::string_view bytes) override;
  void WriteFile(std::shared_ptr<const FileBody> file, uint64_t offset,
                 uint64_t length) override;

  // OK, or the first read error.
  const absl::Status& status() const { return status_; }

 private:
  std::string* out_;
  absl::Status status_;
};

// The reason phrase for `status` ("Not Found"), or "Unknown".
const char* StatusReason(int status);

// `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), independent of the
// process locale.
std::string FormatHttpDate(std::time_t t);

// Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7:
// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), obsolete RFC 850
// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37
// 1994"), independent of the process locale; surrounding whitespace is
// allowed. A two-digit RFC 850 year is the one with those digits in the
// window (now - 50 years, now + 50 years] (§5.6.7: "more than 50 years in the
// future" means the century before).
// Returns nullopt for anything else.
std::optional<std::time_t> ParseHttpDate(std::string_view text,
                                         std::time_t now = std::time(nullptr));

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_HTTP_MESSAGE_H_
