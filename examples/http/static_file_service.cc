#include "examples/http/static_file_service.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"

namespace mill::http {
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

}  // namespace

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
}

HttpHandler StaticFileService::AsHandler() const {
  return [this](const HttpRequest& request) { return Handle(request); };
}

int StaticFileService::Resolve(const std::string& path,
                               std::string* real_path) const {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return errno == EACCES ? 403 : 404;
  }
  real_path->assign(resolved);
  if (*real_path != root_ &&
      real_path->compare(0, root_prefix_.size(), root_prefix_) != 0) {
    return 403;  // A symlink led out of the root.
  }
  return 0;
}

HttpResponse StaticFileService::Handle(const HttpRequest& request) const {
  const bool head = request.method == "HEAD";
  if (request.method != "GET" && !head) {
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
  const HttpResponse greeting = HttpResponse::Text(200, options_.greeting);
  const HttpResponse not_found = HttpResponse::Text(404, "Not Found\n");
  if (root_.empty()) return is_root ? greeting : not_found;

  std::string path = root_;
  for (const std::string& segment : decoded.segments) {
    path.push_back('/');
    path.append(segment);
  }
  std::string real_path;
  if (const int status = Resolve(path, &real_path); status != 0) {
    return HttpResponse::Text(status, StatusReason(status) + std::string("\n"));
  }
  struct stat st;
  if (stat(real_path.c_str(), &st) != 0) return not_found;
  if (S_ISDIR(st.st_mode)) {
    std::string index;
    if (Resolve(real_path + "/index.html", &index) == 0 &&
        stat(index.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      return ServeFile(index, ContentTypeForPath("index.html"), head);
    }
    return is_root ? greeting : not_found;
  }
  if (!S_ISREG(st.st_mode)) return not_found;  // No devices, FIFOs, sockets.
  // The type follows the name asked for, as with most servers.
  return ServeFile(real_path, ContentTypeForPath(decoded.segments.back()),
                   head);
}

HttpResponse StaticFileService::ServeFile(const std::string& real_path,
                                          std::string_view content_type,
                                          bool head) const {
  // O_NONBLOCK: never hang on a FIFO swapped in after the stat().
  const int fd =
      open(real_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return errno == EACCES ? HttpResponse::Text(403, "Forbidden\n")
                           : HttpResponse::Text(404, "Not Found\n");
  }
  HttpResponse response;
  response.headers.emplace_back("Content-Type", std::string(content_type));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return HttpResponse::Text(404, "Not Found\n");
  }
  if (head) {
    response.content_length = static_cast<uint64_t>(st.st_size);
    close(fd);
    return response;
  }
  response.body.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < response.body.size()) {
    const ssize_t n =
        read(fd, response.body.data() + done, response.body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return HttpResponse::Text(500, "Internal Server Error\n");
    }
    if (n == 0) break;  // Shrank meanwhile: send what is there.
    done += static_cast<size_t>(n);
  }
  response.body.resize(done);
  close(fd);
  return response;
}

}  // namespace mill::http
