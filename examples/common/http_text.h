// Small text helpers for HTTP/1.1 header fields, shared by the static file
// server (//examples/http) and the reverse proxy (//examples/proxy):
// case-insensitive comparison of field names and tokens, and trimming of
// optional whitespace (OWS: spaces and horizontal tabs, RFC 9110 5.6.3).
//
// Thread-safety: pure functions. Ownership: the views returned point into
// the argument.
#ifndef MILL_IO_EXAMPLES_COMMON_HTTP_TEXT_H_
#define MILL_IO_EXAMPLES_COMMON_HTTP_TEXT_H_

#include <strings.h>

#include <string_view>

namespace mill {
namespace examples {

// ASCII case-insensitive equality (field names and tokens are ASCII).
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// `s` without leading and trailing spaces and tabs.
inline std::string_view TrimOptionalWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_HTTP_TEXT_H_
