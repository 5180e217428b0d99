#include "examples/http/http_message.h"

#include <http_parser.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "examples/common/http_text.h"
#include "examples/http/file_io.h"

namespace mill::http {
namespace {

using ::mill::examples::EqualsIgnoreCase;
using ::mill::examples::TrimOptionalWhitespace;

constexpr const char* kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                 "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[] = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};

// Days since 1970-01-01 of a proleptic Gregorian date (month 1-12; a day
// past the month's end runs into the next month, as timegm() does).
int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t yoe = year - era * 400;
  const int64_t mp = (month + 9) % 12;
  const int64_t doy = (153 * mp + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// The inverse: the date of `days` since 1970-01-01.
void CivilFromDays(int64_t days, int64_t* year, int* month, int* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

bool LowerEquals(char a, char b) {
  const auto lower = [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  };
  return lower(a) == lower(b);
}

// A strptime(3)-like reader for the three HTTP-date patterns, in the "C"
// locale whatever the process locale is: %a and %b take a full or
// abbreviated English name (any case); numbers skip leading whitespace and
// take at most `digits` digits (stopping early when one more would pass the
// maximum); a space in the pattern matches any run of whitespace, any other
// character itself.
class DateReader {
 public:
  explicit DateReader(std::string_view text) : s_(text) {}

  bool AtEnd() const { return pos_ == s_.size(); }

  void SkipSpace() {
    while (pos_ < s_.size() && IsSpace(s_[pos_])) ++pos_;
  }

  bool Literal(char c) {
    if (pos_ == s_.size() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // Index of the name (full first, then its 3-letter abbreviation).
  bool Name(const char* const* names, int count, int* index) {
    for (int i = 0; i < count; ++i) {
      const std::string_view full = names[i];
      for (const size_t length : {full.size(), size_t{3}}) {
        if (s_.size() - pos_ < length) continue;
        bool equal = true;
        for (size_t k = 0; k < length && equal; ++k) {
          equal = LowerEquals(s_[pos_ + k], full[k]);
        }
        if (equal) {
          pos_ += length;
          *index = i;
          return true;
        }
      }
    }
    return false;
  }

  bool Number(int digits, int min, int max, int* value) {
    SkipSpace();
    if (pos_ == s_.size() || s_[pos_] < '0' || s_[pos_] > '9') return false;
    int v = 0;
    int n = digits;
    do {
      v = v * 10 + (s_[pos_++] - '0');
    } while (--n > 0 && v * 10 <= max && pos_ < s_.size() && s_[pos_] >= '0' &&
             s_[pos_] <= '9');
    if (v < min || v > max) return false;
    *value = v;
    return true;
  }

  // Reads `pattern` (%a %b %d %H %M %S %Y %y, spaces, literals).
  bool Pattern(const char* pattern, int* year, int* month, int* day, int* hour,
               int* minute, int* second) {
    for (const char* p = pattern; *p != '\0'; ++p) {
      if (*p == ' ') {
        SkipSpace();
        continue;
      }
      if (*p != '%') {
        if (!Literal(*p)) return false;
        continue;
      }
      int ignored;
      bool ok = false;
      switch (*++p) {
        case 'a':
          ok = Name(kDays, 7, &ignored);
          break;
        case 'b':
          ok = Name(kMonths, 12, month);
          ++*month;
          break;
        case 'd':
          ok = Number(2, 1, 31, day);
          break;
        case 'H':
          ok = Number(2, 0, 23, hour);
          break;
        case 'M':
          ok = Number(2, 0, 59, minute);
          break;
        case 'S':
          ok = Number(2, 0, 61, second);
          break;
        case 'Y':
          ok = Number(4, 0, 9999, year);
          break;
        case 'y':
          ok = Number(2, 0, 99, year);
          break;
      }
      if (!ok) return false;
    }
    return true;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

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

FileBody::FileBody(int fd, const FileInfo& info) : fd_(fd), info_(info) {}

FileBody::~FileBody() { internal::CloseFile(fd_); }

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
    const absl::StatusOr<size_t> read =
        internal::ReadFileAt(file.fd(), offset, buffer.get(), want);
    if (!read.ok()) return read.status();
    const size_t n = *read;
    if (n == 0) {
      return absl::DataLossError(
          "response file body ended " + std::to_string(length) +
          " bytes early (the file shrank after it was opened)");
    }
    consume(std::string_view(buffer.get(), n));
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
  const int64_t seconds = static_cast<int64_t>(t);
  const int64_t days = FloorDiv(seconds, 86400);
  const int64_t second_of_day = seconds - days * 86400;
  int64_t year;
  int month;
  int day;
  CivilFromDays(days, &year, &month, &day);
  if (year < 0 || year > 9999) return "Thu, 01 Jan 1970 00:00:00 GMT";
  const int64_t weekday = ((days % 7) + 7 + 4) % 7;  // 1970-01-01: Thursday.
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
                kDays[weekday], day, kMonths[month - 1], static_cast<int>(year),
                static_cast<int>(second_of_day / 3600),
                static_cast<int>(second_of_day / 60 % 60),
                static_cast<int>(second_of_day % 60));
  return buf;
}

std::optional<std::time_t> ParseHttpDate(std::string_view text,
                                         std::time_t now) {
  text = TrimOptionalWhitespace(text);
  // The longest valid form ("Wednesday, 09-Nov-94 08:49:37 GMT") has 33
  // characters; anything much longer is not a date.
  if (text.empty() || text.size() > 64) return std::nullopt;
  struct Format {
    const char* pattern;
    bool two_digit_year;
  };
  // %a and %b accept abbreviated and full names; a space in the pattern
  // matches any run of whitespace (asctime pads the day: "Nov  6").
  static constexpr Format kFormats[] = {
      {"%a, %d %b %Y %H:%M:%S GMT", false},  // IMF-fixdate
      {"%a, %d-%b-%y %H:%M:%S GMT", true},   // RFC 850
      {"%a %b %d %H:%M:%S %Y", false},       // asctime
  };
  for (const Format& format : kFormats) {
    DateReader reader(text);
    int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
    if (!reader.Pattern(format.pattern, &year, &month, &day, &hour, &minute,
                        &second) ||
        !reader.AtEnd()) {
      continue;
    }
    if (format.two_digit_year) {
      const int64_t now_days = FloorDiv(static_cast<int64_t>(now), 86400);
      int64_t now_year;
      int now_month;
      int now_day;
      CivilFromDays(now_days, &now_year, &now_month, &now_day);
      int64_t full_year = now_year - now_year % 100 + year;
      // §5.6.7: more than 50 years ahead means the century before; and
      // symmetrically, 50 or more years back means the century after.
      if (full_year > now_year + 50) full_year -= 100;
      if (full_year <= now_year - 50) full_year += 100;
      year = static_cast<int>(full_year);
    }
    if (second > 59) return std::nullopt;  // No leap seconds in HTTP.
    return static_cast<std::time_t>(DaysFromCivil(year, month, day) * 86400 +
                                    hour * 3600 + minute * 60 + second);
  }
  return std::nullopt;
}

}  // namespace mill::http
