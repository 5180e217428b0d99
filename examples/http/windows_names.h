// Which decoded request-path segments the static file service hands to the
// Windows file system. Windows has no openat2: a name is refused unless it
// can only mean a plain file or directory under the root. Pure functions of
// bytes with no platform header, so the rules are tested on every platform
// (windows_names_test); the Windows opener (root_directory_win.cc) applies
// them before CreateFileW.
//
// A segment is refused when it
//   * is empty, "." or ".." (DecodeRequestPath removes or refuses these
//     already; refused again here so the rule stands alone);
//   * holds a control byte (0x00-0x1f, 0x7f) or any of \ / : * ? " < > |
//     (':' is how a drive letter "C:" or an alternate data stream
//     "a.txt::$DATA" is spelled; '\' and '/' separate components; the rest
//     are wildcards or invalid in Windows names);
//   * ends with '.' or ' ' (Win32 strips them: "a.txt." would open "a.txt");
//   * is a reserved device name, in any case, with or without an extension
//     and with spaces before it: CON, PRN, AUX, NUL, CONIN$, CONOUT$,
//     COM0-COM9, LPT0-LPT9 and COM/LPT with a superscript digit ¹ ² ³
//     ("con", "Nul.txt", "COM1.tar.gz", "lpt¹").
// Absolute paths, drive letters and UNC names ("\\server\share") need ':' or
// a backslash, so no single segment can spell them.
//
// Thread-safety: thread-safe (no state).
#ifndef MILL_IO_EXAMPLES_HTTP_WINDOWS_NAMES_H_
#define MILL_IO_EXAMPLES_HTTP_WINDOWS_NAMES_H_

#include <string>
#include <string_view>
#include <vector>

namespace mill::http {

// Why `segment` must not reach the Windows file system (a short reason for
// tests and logs), or nullptr when it names a plain file or directory.
const char* WindowsNameProblem(std::string_view segment);

// The first problem of any of `segments`, or nullptr.
const char* WindowsPathProblem(const std::vector<std::string>& segments);

// Whether `segment`'s stem (before the first '.', trailing spaces removed)
// is a reserved device name, in any case.
bool IsWindowsDeviceName(std::string_view segment);

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_WINDOWS_NAMES_H_
