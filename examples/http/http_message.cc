#include "examples/http/http_message.h"

#include <errno.h>
#include <http_parser.h>
#include <locale.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/errno_status.h"
#include "examples/common/http_text.h"

namespace mill::http {
namespace {

using ::mill::examples::EqualsIgnoreCase;
using ::mill::examples::TrimOptionalWhitespace;

// The "C" locale, so that day and month names parse whatever the process
// locale is. Created once, never freed (it lives as long as the process).
locale_t CLocale() {
  static const locale_t locale = newlocale(LC_ALL_MASK, "C", locale_t{});
  return locale;
}

}  // namespace

const std::string* HttpRequest::FindHeader(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (EqualsIgnoreCase(field, name)) return &value;
  }
  return nullptr;
}

std::vector<std::string_view> HttpRequest::FindHeaders(
    std::string_view name) const {
  std::vector<std::string_view> values;
  for (const auto& [field, value] : headers) {
    if (EqualsIgnoreCase(field, name)) values.emplace_back(value);
  }
  return values;
}

FileBody::FileBody(int fd, const struct stat& st)
    : fd_(fd),
      size_(st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0),
      mtime_(st.st_mtim),
      inode_(st.st_ino) {}

FileBody::~FileBody() {
  // Not retried on EINTR: on Linux the descriptor is released regardless.
  if (fd_ >= 0) close(fd_);
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  response.body = std::move(body);
  return response;
}

absl::Status ReadFileRange(const FileBody& file, uint64_t offset,
                           uint64_t length,
                           const std::function<void(std::string_view)>& consume,
                           size_t chunk_bytes) {
  if (length == 0) return absl::OkStatus();
  chunk_bytes = std::max<size_t>(chunk_bytes, 1);
  // One buffer per call, no larger than the range: small files cost a small
  // allocation, large ones at most one chunk.
  const size_t buffer_size =
      static_cast<size_t>(std::min<uint64_t>(chunk_bytes, length));
  std::unique_ptr<char[]> buffer(new char[buffer_size]);
  while (length > 0) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(buffer_size, length));
    const ssize_t n =
        pread(file.fd(), buffer.get(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return mill::ErrnoStatus(errno, "pread of a response file body");
    }
    if (n == 0) {
      return absl::DataLossError(
          "response file body ended " + std::to_string(length) +
          " bytes early (the file shrank after it was opened)");
    }
    consume(std::string_view(buffer.get(), static_cast<size_t>(n)));
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

void StringResponseSink::Write(std::string_view bytes) {
  if (status_.ok()) out_->append(bytes.data(), bytes.size());
}

void StringResponseSink::WriteFile(std::shared_ptr<const FileBody> file,
                                   uint64_t offset, uint64_t length) {
  if (!status_.ok()) return;
  status_ = ReadFileRange(*file, offset, length, [this](std::string_view b) {
    out_->append(b.data(), b.size());
  });
}

const char* StatusReason(int status) {
  // http_parser's table covers every status this server sends.
  const char* reason = http_status_str(static_cast<http_status>(status));
  return reason == nullptr || *reason == '<' ? "Unknown" : reason;
}

std::string FormatHttpDate(std::time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed",
                                          "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "Thu, 01 Jan 1970 00:00:00 GMT";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                kDays[tm.tm_wday % 7], tm.tm_mday, kMonths[tm.tm_mon % 12],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<std::time_t> ParseHttpDate(std::string_view text,
                                         std::time_t now) {
  text = TrimOptionalWhitespace(text);
  // The longest valid form ("Wednesday, 09-Nov-94 08:49:37 GMT") has 33
  // characters; anything much longer is not a date.
  if (text.empty() || text.size() > 64) return std::nullopt;
  const locale_t c_locale = CLocale();
  if (c_locale == locale_t{}) return std::nullopt;
  const std::string copy(text);  // strptime wants a NUL-terminated string.
  const char* const end = copy.c_str() + copy.size();
  struct Format {
    const char* pattern;
    bool two_digit_year;
  };
  // strptime's %a and %b accept abbreviated and full names; a space in the
  // pattern matches any run of whitespace (asctime pads the day: "Nov  6").
  static constexpr Format kFormats[] = {
      {"%a, %d %b %Y %H:%M:%S GMT", false},  // IMF-fixdate
      {"%a, %d-%b-%y %H:%M:%S GMT", true},   // RFC 850
      {"%a %b %d %H:%M:%S %Y", false},       // asctime
  };
  for (const Format& format : kFormats) {
    std::tm tm{};
    const char* parsed =
        strptime_l(copy.c_str(), format.pattern, &tm, c_locale);
    if (parsed != end) continue;
    if (format.two_digit_year) {
      std::tm now_tm{};
      if (gmtime_r(&now, &now_tm) == nullptr) return std::nullopt;
      const int now_year = now_tm.tm_year + 1900;
      int year = now_year - now_year % 100 + tm.tm_year % 100;
      // §5.6.7: more than 50 years ahead means the century before; and
      // symmetrically, 50 or more years back means the century after.
      if (year > now_year + 50) year -= 100;
      if (year <= now_year - 50) year += 100;
      tm.tm_year = year - 1900;
    }
    if (tm.tm_sec > 59) return std::nullopt;  // No leap seconds in HTTP.
    tm.tm_isdst = 0;
    return timegm(&tm);
  }
  return std::nullopt;
}

}  // namespace mill::http
