#include "examples/http/windows_names.h"

#include <string>
#include <string_view>
#include <vector>

#include "examples/common/http_text.h"

namespace mill::http {

using ::mill::examples::EqualsIgnoreCase;

bool IsWindowsDeviceName(std::string_view segment) {
  std::string_view stem = segment.substr(0, segment.find('.'));
  while (!stem.empty() && stem.back() == ' ') stem.remove_suffix(1);
  for (const char* name : {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}) {
    if (EqualsIgnoreCase(stem, name)) return true;
  }
  if (stem.size() < 4) return false;
  const std::string_view prefix = stem.substr(0, 3);
  if (!EqualsIgnoreCase(prefix, "COM") && !EqualsIgnoreCase(prefix, "LPT")) {
    return false;
  }
  const std::string_view number = stem.substr(3);
  if (number.size() == 1) return number[0] >= '0' && number[0] <= '9';
  // Superscript one, two and three (UTF-8), which Windows also maps to
  // the ports.
  return number == "\xc2\xb9" || number == "\xc2\xb2" || number == "\xc2\xb3";
}

const char* WindowsNameProblem(std::string_view segment) {
  if (segment.empty() || segment == "." || segment == "..") {
    return "empty or dot segment";
  }
  for (const char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "control character";
    switch (c) {
      case ':':
        return "':' (a drive letter or an alternate data stream)";
      case '\\':
      case '/':
        return "path separator";
      case '*':
      case '?':
      case '"':
      case '<':
      case '>':
      case '|':
        return "character not allowed in Windows names";
      default:
        break;
    }
  }
  if (segment.back() == '.' || segment.back() == ' ') {
    return "trailing dot or space (Windows strips them)";
  }
  if (IsWindowsDeviceName(segment)) return "reserved device name";
  return nullptr;
}

const char* WindowsPathProblem(const std::vector<std::string>& segments) {
  for (const std::string& segment : segments) {
    if (const char* problem = WindowsNameProblem(segment)) return problem;
  }
  return nullptr;
}

}  // namespace mill::http
