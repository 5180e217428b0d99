#include "examples/http/http_message.h"

#include <http_parser.h>
#include <strings.h>

#include <cstdio>

namespace mill::http {

const std::string* HttpRequest::FindHeader(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (field.size() == name.size() &&
        strncasecmp(field.data(), name.data(), name.size()) == 0) {
      return &value;
    }
  }
  return nullptr;
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  response.body = std::move(body);
  return response;
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

}  // namespace mill::http
