#include "examples/http/static_file_service.h"

#include <http_parser.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "examples/common/http_text.h"
#include "examples/http/root_directory.h"

namespace mill::http {

using ::mill::examples::EqualsIgnoreCase;
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
  const uint64_t mtime_ns =
      static_cast<uint64_t>(file.mtime_sec()) * 1000000000u +
      static_cast<uint64_t>(file.mtime_nsec());
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
      if (EqualsIgnoreCase(ext, known)) {
        return type;
      }
    }
  }
  return "application/octet-stream";
}

absl::StatusOr<std::unique_ptr<StaticFileService>> StaticFileService::Create(
    Options options) {
  std::unique_ptr<internal::RootDirectory> root_directory;
  if (!options.root.empty()) {
    absl::StatusOr<std::unique_ptr<internal::RootDirectory>> opened =
        internal::RootDirectory::Open(options.root);
    if (!opened.ok()) return opened.status();
    root_directory = *std::move(opened);
  }
  return std::unique_ptr<StaticFileService>(
      new StaticFileService(std::move(options), std::move(root_directory)));
}

StaticFileService::StaticFileService(
    Options options, std::unique_ptr<internal::RootDirectory> root_directory)
    : options_(std::move(options)), root_directory_(std::move(root_directory)) {
  if (root_directory_ != nullptr) root_ = root_directory_->path();
}

StaticFileService::~StaticFileService() = default;

HttpHandler StaticFileService::AsHandler() const {
  return [this](const HttpRequest& request) { return Handle(request); };
}

std::time_t StaticFileService::Now() const {
  return options_.clock ? options_.clock() : std::time(nullptr);
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
  if (root_directory_ == nullptr) return is_root ? greeting() : not_found();
  internal::OpenedPath opened = root_directory_->OpenFile(decoded.segments);
  if (opened.directory_without_index) {
    return is_root ? greeting() : not_found();
  }
  if (opened.status != 0) return ErrorResponse(opened.status);
  return ServeOpenFile(opened.fd, opened.info,
                       ContentTypeForPath(opened.type_name), request);
}

HttpResponse StaticFileService::ServeOpenFile(
    int fd, const FileInfo& info, std::string_view content_type,
    const HttpRequest& request) const {
  // From here the descriptor is owned by `file`, closed with its last share
  // (at once for HEAD, 304 and 416; after sending otherwise).
  auto file = std::make_shared<const FileBody>(fd, info);
  const bool head = request.method == "HEAD";
  const std::time_t now = Now();
  // §8.8.2.1: never announce a modification in the future.
  const std::time_t last_modified =
      std::min<std::time_t>(static_cast<std::time_t>(file->mtime_sec()), now);
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
