#include "examples/http/static_file_service.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "examples/common/http_text.h"

namespace mill::http {

using ::mill::examples::TrimOptionalWhitespace;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path part of an absolute-form target, or the target itself.
std::string_view PathOf(std::string_view target) {
  if (target.empty() || target.front() == '/') return target;
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(target.data(), target.size(), /*is_connect=*/0,
                            &url) != 0 ||
      (url.field_set & (1 << UF_SCHEMA)) == 0) {
    return {};  // Neither origin- nor absolute-form.
  }
  if ((url.field_set & (1 << UF_PATH)) == 0) return "/";
  return target.substr(url.field_data[UF_PATH].off,
                       url.field_data[UF_PATH].len);
}

std::string ErrnoText(int err) { return std::strerror(err); }

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

HttpResponse ErrorResponse(int status) {
  HttpResponse response =
      HttpResponse::Text(status, StatusReason(status) + std::string("\n"));
  // Descriptor or memory exhaustion passes: tell clients when to retry.
  if (status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Consumes 1*DIGIT from the front of `*s`, saturating at UINT64_MAX (any
// position that large lies past the end of every file). False without a
// digit.
bool ConsumeNumber(std::string_view* s, uint64_t* value) {
  if (s->empty() || !IsDigit(s->front())) return false;
  uint64_t v = 0;
  while (!s->empty() && IsDigit(s->front())) {
    const uint64_t digit = static_cast<uint64_t>(s->front() - '0');
    v = v > (UINT64_MAX - digit) / 10 ? UINT64_MAX : v * 10 + digit;
    s->remove_prefix(1);
  }
  *value = v;
  return true;
}

// Parses one entity-tag (RFC 9110 §8.8.3: [ "W/" ] DQUOTE *etagc DQUOTE)
// from the front of `*s`. `*opaque` receives the quoted part.
bool ConsumeEntityTag(std::string_view* s, std::string_view* opaque,
                      bool* weak) {
  *weak = s->size() >= 2 && (*s)[0] == 'W' && (*s)[1] == '/';
  if (*weak) s->remove_prefix(2);
  if (s->empty() || s->front() != '"') return false;
  size_t i = 1;
  for (; i < s->size() && (*s)[i] != '"'; ++i) {
    const auto c = static_cast<unsigned char>((*s)[i]);
    if (c < 0x21 || c == 0x7f) return false;  // etagc excludes these.
  }
  if (i == s->size()) return false;  // No closing quote.
  *opaque = s->substr(0, i + 1);
  s->remove_prefix(i + 1);
  return true;
}

// Whether If-None-Match `values` (each "*" or a list of entity-tags) match
// the current `etag` by weak comparison (§13.1.2). A malformed list matches
// nothing from the malformed element on.
bool IfNoneMatchMatches(const std::vector<std::string_view>& values,
                        std::string_view etag) {
  for (std::string_view list : values) {
    while (true) {
      while (!list.empty() && (list.front() == ' ' || list.front() == '\t' ||
                               list.front() == ',')) {
        list.remove_prefix(1);
      }
      if (list.empty()) break;
      if (list.front() == '*') return true;  // Any current representation.
      std::string_view opaque;
      bool weak;
      if (!ConsumeEntityTag(&list, &opaque, &weak)) break;
      if (opaque == etag) return true;
    }
  }
  return false;
}

// The strong entity-tag of `file` (see the header for why it is strong).
std::string EntityTag(const FileBody& file) {
  const struct timespec& m = file.mtime();
  const uint64_t mtime_ns = static_cast<uint64_t>(m.tv_sec) * 1000000000u +
                            static_cast<uint64_t>(m.tv_nsec);
  char buf[80];
  std::snprintf(buf, sizeof(buf), "\"%llx-%llx-%llx\"",
                static_cast<unsigned long long>(file.inode()),
                static_cast<unsigned long long>(file.size()),
                static_cast<unsigned long long>(mtime_ns));
  return buf;
}

// Whether the If-Range condition (§13.1.5) lets a Range header apply; true
// when there is no If-Range. An entity-tag must match by strong comparison;
// a date must equal Last-Modified and be a strong validator, i.e. lie at
// least one second in the past (§8.8.2.2).
bool IfRangeHolds(const HttpRequest& request, std::string_view etag,
                  std::time_t last_modified, std::time_t now) {
  const std::vector<std::string_view> values = request.FindHeaders("If-Range");
  if (values.empty()) return true;
  if (values.size() > 1) return false;
  std::string_view value = TrimOptionalWhitespace(values.front());
  if (!value.empty() && (value.front() == '"' || value.rfind("W/", 0) == 0)) {
    std::string_view opaque;
    bool weak;
    if (!ConsumeEntityTag(&value, &opaque, &weak) || !value.empty()) {
      return false;
    }
    return !weak && opaque == etag;
  }
  const std::optional<std::time_t> date = ParseHttpDate(value, now);
  return date.has_value() && *date == last_modified && last_modified < now;
}

}  // namespace

ByteRangeSelection SelectByteRange(std::string_view range_header,
                                   uint64_t size) {
  using Kind = ByteRangeSelection::Kind;
  ByteRangeSelection whole;  // kWhole: what to do with anything we ignore.
  std::string_view s = TrimOptionalWhitespace(range_header);
  // ranges-specifier = range-unit "=" range-set; units are case-insensitive.
  constexpr std::string_view kUnit = "bytes=";
  if (s.size() < kUnit.size() ||
      strncasecmp(s.data(), kUnit.data(), kUnit.size()) != 0) {
    return whole;
  }
  s.remove_prefix(kUnit.size());
  // range-set = 1#range-spec: empty list elements are allowed and skipped.
  struct Spec {
    bool suffix;
    uint64_t first;
    uint64_t last;  // UINT64_MAX: open-ended.
  };
  std::vector<Spec> specs;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    std::string_view element = TrimOptionalWhitespace(s.substr(0, comma));
    s = comma == std::string_view::npos ? std::string_view()
                                        : s.substr(comma + 1);
    if (element.empty()) continue;
    Spec spec{false, 0, UINT64_MAX};
    if (element.front() == '-') {
      element.remove_prefix(1);
      spec.suffix = true;
      if (!ConsumeNumber(&element, &spec.first)) return whole;
    } else {
      if (!ConsumeNumber(&element, &spec.first)) return whole;
      if (element.empty() || element.front() != '-') return whole;
      element.remove_prefix(1);
      if (!element.empty() && !ConsumeNumber(&element, &spec.last)) {
        return whole;
      }
      if (spec.last < spec.first) return whole;  // Invalid (§14.1.1).
    }
    if (!element.empty()) return whole;
    specs.push_back(spec);
  }
  if (specs.size() != 1) return whole;  // None (invalid), or several.
  const Spec& spec = specs.front();
  ByteRangeSelection result;
  if (spec.suffix) {
    if (spec.first == 0) {
      result.kind = Kind::kUnsatisfiable;
      return result;
    }
    // A suffix of an empty file has no bytes to describe in Content-Range.
    if (size == 0) return whole;
    result.kind = Kind::kPartial;
    result.length = std::min(spec.first, size);
    result.offset = size - result.length;
    return result;
  }
  if (spec.first >= size) {
    result.kind = Kind::kUnsatisfiable;
    return result;
  }
  result.kind = Kind::kPartial;
  result.offset = spec.first;
  result.length = std::min(spec.last, size - 1) - spec.first + 1;
  return result;
}

DecodedPath DecodeRequestPath(std::string_view target) {
  using Verdict = DecodedPath::Verdict;
  DecodedPath result;
  std::string_view path = PathOf(target);
  if (path.empty() || path.front() != '/') {
    result.verdict = Verdict::kBadRequest;
    return result;
  }
  path = path.substr(0, path.find_first_of("?#"));
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view raw = path.substr(pos, end - pos);
    pos = end + 1;
    std::string segment;
    segment.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c == '%') {
        const int hi = i + 2 < raw.size() ? HexValue(raw[i + 1]) : -1;
        const int lo = i + 2 < raw.size() ? HexValue(raw[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          result.verdict = Verdict::kBadRequest;
          result.segments.clear();
          return result;
        }
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
      }
      segment.push_back(c);
    }
    for (const char c : segment) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '/' || c == '\\' || u < 0x20 || u == 0x7f) {
        result.verdict = Verdict::kForbidden;
      }
    }
    if (segment == "..") result.verdict = Verdict::kForbidden;
    if (result.verdict != Verdict::kOk) {
      result.segments.clear();
      return result;
    }
    if (segment.empty() || segment == ".") continue;
    result.segments.push_back(std::move(segment));
  }
  return result;
}

std::string_view ContentTypeForPath(std::string_view path) {
  static constexpr std::pair<const char*, const char*> kTypes[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
  };
  const size_t slash = path.rfind('/');
  const std::string_view name =
      slash == std::string_view::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot != std::string_view::npos && dot + 1 < name.size()) {
    const std::string_view ext = name.substr(dot + 1);
    for (const auto& [known, type] : kTypes) {
      if (ext.size() == std::strlen(known) &&
          strncasecmp(ext.data(), known, ext.size()) == 0) {
        return type;
      }
    }
  }
  return "application/octet-stream";
}

absl::StatusOr<std::unique_ptr<StaticFileService>> StaticFileService::Create(
    Options options) {
  std::string root;
  if (!options.root.empty()) {
    char resolved[PATH_MAX];
    if (realpath(options.root.c_str(), resolved) == nullptr) {
      return absl::NotFoundError("root " + options.root + ": " +
                                 ErrnoText(errno));
    }
    struct stat st;
    if (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError("root " + options.root +
                                        " is not a directory");
    }
    root = resolved;
  }
  return std::unique_ptr<StaticFileService>(
      new StaticFileService(std::move(options), std::move(root)));
}

StaticFileService::StaticFileService(Options options, std::string root)
    : options_(std::move(options)), root_(std::move(root)) {
  root_prefix_ = root_;
  if (root_prefix_.empty() || root_prefix_.back() != '/') {
    root_prefix_.push_back('/');
  }
#ifdef SYS_openat2
  if (!root_.empty()) {
    root_fd_ = open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
#endif
}

StaticFileService::~StaticFileService() {
  if (root_fd_ >= 0) close(root_fd_);
}

int StaticFileService::OpenBeneath(const std::string& relative) const {
#ifdef SYS_openat2
  if (root_fd_ < 0) {
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
    fd = syscall(SYS_openat2, root_fd_, relative.c_str(), &how, sizeof(how));
  } while (fd < 0 && errno == EINTR);
  return static_cast<int>(fd);
#else
  errno = ENOSYS;
  return -1;
#endif
}

std::optional<HttpResponse> StaticFileService::HandleBeneath(
    const std::vector<std::string>& segments,
    const HttpRequest& request) const {
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
    return ErrorResponse(status_for(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrorResponse(StatusForErrno(err));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    const std::string index =
        relative == "." ? "index.html" : relative + "/index.html";
    fd = OpenBeneath(index);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      return ServeOpenFile(fd, st, ContentTypeForPath("index.html"), request);
    }
    if (fd >= 0) close(fd);
    if (segments.empty()) return HttpResponse::Text(200, options_.greeting);
    return ErrorResponse(404);
  }
  if (!S_ISREG(st.st_mode)) {  // No devices, FIFOs, sockets.
    close(fd);
    return ErrorResponse(404);
  }
  // The type follows the name asked for, as with most servers.
  return ServeOpenFile(fd, st, ContentTypeForPath(segments.back()), request);
}

HttpHandler StaticFileService::AsHandler() const {
  return [this](const HttpRequest& request) { return Handle(request); };
}

std::time_t StaticFileService::Now() const {
  return options_.clock ? options_.clock() : std::time(nullptr);
}

int StaticFileService::Resolve(const std::string& path,
                               std::string* real_path) const {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    const int status = StatusForErrno(errno);
    return status == 500 ? 404 : status;  // EIO, EINVAL...: nothing to serve.
  }
  real_path->assign(resolved);
  if (*real_path != root_ &&
      real_path->compare(0, root_prefix_.size(), root_prefix_) != 0) {
    return 403;  // A symlink led out of the root.
  }
  return 0;
}

HttpResponse StaticFileService::Handle(const HttpRequest& request) const {
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse response = HttpResponse::Text(405, "Method Not Allowed\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
    return response;
  }
  const DecodedPath decoded = DecodeRequestPath(request.target);
  switch (decoded.verdict) {
    case DecodedPath::Verdict::kBadRequest:
      return HttpResponse::Text(400, "Bad Request\n");
    case DecodedPath::Verdict::kForbidden:
      return HttpResponse::Text(403, "Forbidden\n");
    case DecodedPath::Verdict::kOk:
      break;
  }
  const bool is_root = decoded.segments.empty();
  // Built only when answered (a file request never copies the greeting).
  const auto greeting = [this] {
    return HttpResponse::Text(200, options_.greeting);
  };
  const auto not_found = [] { return ErrorResponse(404); };
  if (root_.empty()) return is_root ? greeting() : not_found();
  // One system call where the kernel can check the root for us.
  if (std::optional<HttpResponse> served =
          HandleBeneath(decoded.segments, request)) {
    return *std::move(served);
  }

  std::string path = root_;
  for (const std::string& segment : decoded.segments) {
    path.push_back('/');
    path.append(segment);
  }
  std::string real_path;
  if (const int status = Resolve(path, &real_path); status != 0) {
    return ErrorResponse(status);
  }
  struct stat st;
  if (stat(real_path.c_str(), &st) != 0) {
    const int status = StatusForErrno(errno);
    return ErrorResponse(status == 500 ? 404 : status);
  }
  if (S_ISDIR(st.st_mode)) {
    std::string index;
    if (Resolve(real_path + "/index.html", &index) == 0 &&
        stat(index.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      return ServeFile(index, ContentTypeForPath("index.html"), request);
    }
    return is_root ? greeting() : not_found();
  }
  if (!S_ISREG(st.st_mode)) return not_found();  // No devices, FIFOs, sockets.
  // The type follows the name asked for, as with most servers.
  return ServeFile(real_path, ContentTypeForPath(decoded.segments.back()),
                   request);
}

HttpResponse StaticFileService::ServeFile(const std::string& real_path,
                                          std::string_view content_type,
                                          const HttpRequest& request) const {
  // O_NONBLOCK: never hang on a FIFO swapped in after the stat().
  int fd;
  do {
    fd =
        open(real_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrorResponse(StatusForErrno(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrorResponse(StatusForErrno(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return ErrorResponse(404);
  }
  return ServeOpenFile(fd, st, content_type, request);
}

HttpResponse StaticFileService::ServeOpenFile(
    int fd, const struct stat& st, std::string_view content_type,
    const HttpRequest& request) const {
  // From here the descriptor is owned by `file`, closed with its last share
  // (at once for HEAD, 304 and 416; after sending otherwise).
  auto file = std::make_shared<const FileBody>(fd, st);
  const bool head = request.method == "HEAD";
  const std::time_t now = Now();
  // §8.8.2.1: never announce a modification in the future.
  const std::time_t last_modified =
      std::min<std::time_t>(file->mtime().tv_sec, now);
  const std::string last_modified_text = FormatHttpDate(last_modified);
  const std::string etag = EntityTag(*file);

  // Conditionals, in the order of RFC 9110 §13.2.2 (GET and HEAD only).
  bool not_modified = false;
  if (const std::vector<std::string_view> if_none_match =
          request.FindHeaders("If-None-Match");
      !if_none_match.empty()) {
    not_modified = IfNoneMatchMatches(if_none_match, etag);
  } else if (const std::vector<std::string_view> if_modified_since =
                 request.FindHeaders("If-Modified-Since");
             if_modified_since.size() == 1) {
    const std::optional<std::time_t> since =
        ParseHttpDate(if_modified_since.front(), now);
    not_modified = since.has_value() && last_modified <= *since;
  }
  if (not_modified) {
    HttpResponse response;
    response.status = 304;
    response.headers.emplace_back("ETag", etag);
    response.headers.emplace_back("Last-Modified", last_modified_text);
    return response;
  }

  ByteRangeSelection selection;  // Whole file unless a Range applies.
  if (const std::vector<std::string_view> ranges = request.FindHeaders("Range");
      !ranges.empty() && IfRangeHolds(request, etag, last_modified, now)) {
    // Several Range lines form one list of several ranges: whole file.
    if (ranges.size() == 1) {
      selection = SelectByteRange(ranges.front(), file->size());
    }
  }
  if (selection.kind == ByteRangeSelection::Kind::kUnsatisfiable) {
    HttpResponse response = ErrorResponse(416);
    response.headers.emplace_back("Content-Range",
                                  "bytes */" + std::to_string(file->size()));
    return response;
  }

  HttpResponse response;
  response.headers.emplace_back("Content-Type", std::string(content_type));
  response.headers.emplace_back("Last-Modified", last_modified_text);
  response.headers.emplace_back("ETag", etag);
  response.headers.emplace_back("Accept-Ranges", "bytes");
  uint64_t offset = 0;
  uint64_t length = file->size();
  if (selection.kind == ByteRangeSelection::Kind::kPartial) {
    offset = selection.offset;
    length = selection.length;
    response.status = 206;
    response.headers.emplace_back(
        "Content-Range", "bytes " + std::to_string(offset) + "-" +
                             std::to_string(offset + length - 1) + "/" +
                             std::to_string(file->size()));
  }
  if (head) {
    response.content_length = length;  // The file closes now, unread.
    return response;
  }
  response.file = std::move(file);
  response.file_offset = offset;
  response.file_length = length;
  return response;
}

}  // namespace mill::http
