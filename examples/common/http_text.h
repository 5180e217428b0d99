// Small text helpers for HTTP/1.1 header fields, shared by the static file
// server (//examples/http) and the reverse proxy (//examples/proxy):
// case-insensitive comparison of field names and tokens, trimming of
// optional whitespace (OWS: spaces and horizontal tabs, RFC 9110 5.6.3),
// and reading the Transfer-Encoding list that frames a message body.
//
// Thread-safety: pure functions. Ownership: the views returned point into
// the argument; the other results own their strings.
#ifndef MILL_IO_EXAMPLES_COMMON_HTTP_TEXT_H_
#define MILL_IO_EXAMPLES_COMMON_HTTP_TEXT_H_

#include <strings.h>

#include <string>
#include <string_view>
#include <vector>

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

// Whether `s` is a token (RFC 9110 5.6.2): one or more tchar.
inline bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                       (c >= 'A' && c <= 'Z');
    if (!alnum &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// A message's Transfer-Encoding fields, read as one list (RFC 9112 6.1).
struct TransferCodingList {
  bool present = false;  // some Transfer-Encoding field
  // Every coding is a token (parameters aside), the list is not empty, and
  // chunked comes at most once and last. A message whose list is not valid
  // cannot be framed reliably: no two recipients need agree on its end.
  bool valid = true;
  bool chunked = false;  // the final coding is chunked
  // The codings before a final chunked (all of them without one), in
  // order, as listed (parameters included).
  std::vector<std::string> others;
};

// Reads the Transfer-Encoding fields among `fields` (name-value pairs in
// arrival order; names case-insensitive). Empty list elements are skipped,
// as RFC 9110 5.6.1 asks.
template <typename Fields>
TransferCodingList ReadTransferCodings(const Fields& fields) {
  TransferCodingList list;
  for (const auto& [name, value] : fields) {
    if (!EqualsIgnoreCase(name, "Transfer-Encoding")) continue;
    list.present = true;
    std::string_view rest = value;
    for (;;) {
      const size_t comma = rest.find(',');
      const std::string_view element =
          TrimOptionalWhitespace(rest.substr(0, comma));
      if (!element.empty()) {
        const std::string_view coding =
            TrimOptionalWhitespace(element.substr(0, element.find(';')));
        // Nothing may follow chunked, a second chunked included.
        if (!IsToken(coding) || list.chunked) list.valid = false;
        if (EqualsIgnoreCase(coding, "chunked")) {
          list.chunked = true;
        } else {
          list.others.emplace_back(element);
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (list.present && !list.chunked && list.others.empty()) {
    list.valid = false;  // 1#transfer-coding: at least one
  }
  return list;
}

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_HTTP_TEXT_H_
