// root_directory.h on Windows: no openat2, so confinement is by name and by
// final path.
//
// 1. Names: every segment must pass WindowsNameProblem (windows_names.h):
//    no drive letters, ':' streams, device names (CON, NUL, COM1...),
//    trailing dots or spaces, separators or wildcards. Refused with 403.
// 2. The path is built under the root's final path, a "\\?\" path: Windows
//    passes it to the file system as is (no stripping of dots and spaces,
//    no device-name mapping, no length limit), so the name opened is the
//    name checked.
// 3. CreateFileW opens it (following links and junctions), and the opened
//    file's own final path (GetFinalPathNameByHandleW) must be the root or
//    lie under it: a link or junction that leads out of the root is 403.
//    The check is on the open handle, so swapping a link after the check
//    cannot redirect what is served.
#include <fcntl.h>
#include <io.h>
#include <windows.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/win32_status.h"
#include "examples/http/file_io.h"
#include "examples/http/root_directory.h"
#include "examples/http/windows_names.h"

namespace mill::http::internal {
namespace {

// UTF-8 to UTF-16; false for invalid UTF-8.
bool Widen(const std::string& utf8, std::wstring* wide) {
  wide->clear();
  if (utf8.empty()) return true;
  const int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(),
                                    static_cast<int>(utf8.size()), nullptr, 0);
  if (n <= 0) return false;
  wide->resize(static_cast<size_t>(n));
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(),
                             static_cast<int>(utf8.size()), wide->data(),
                             n) == n;
}

std::string Narrow(const std::wstring& wide) {
  if (wide.empty()) return {};
  const int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(),
                                    static_cast<int>(wide.size()), nullptr, 0,
                                    nullptr, nullptr);
  if (n <= 0) return {};
  std::string utf8(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()),
                      utf8.data(), n, nullptr, nullptr);
  return utf8;
}

// The final path of open `handle` ("\\?\C:\dir\file"), empty on failure.
std::wstring FinalPath(HANDLE handle) {
  std::wstring path(MAX_PATH, L'\0');
  while (true) {
    const DWORD n = GetFinalPathNameByHandleW(
        handle, path.data(), static_cast<DWORD>(path.size()),
        FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    if (n == 0) return {};
    if (n < path.size()) {
      path.resize(n);
      return path;
    }
    path.resize(n);  // n counts the terminating NUL when too small.
  }
}

// The HTTP status for a failed CreateFileW of a path under the root.
int StatusForWin32Error(DWORD error) {
  switch (error) {
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
      return 403;
    case ERROR_TOO_MANY_OPEN_FILES:
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_SHARING_VIOLATION:  // Held open exclusively elsewhere.
    case ERROR_LOCK_VIOLATION:
      return 503;
    default:  // Not found, bad name, link loop, ...: nothing to serve.
      return 404;
  }
}

OpenedPath Failed(int status) {
  OpenedPath result;
  result.status = status;
  return result;
}

OpenedPath DirectoryWithoutIndex() {
  OpenedPath result = Failed(404);
  result.directory_without_index = true;
  return result;
}

// "\\?\C:\www" as "C:\www", "\\?\UNC\host\share" as "\\host\share".
std::wstring WithoutVerbatimPrefix(const std::wstring& path) {
  if (path.rfind(L"\\\\?\\UNC\\", 0) == 0) return L"\\" + path.substr(7);
  if (path.rfind(L"\\\\?\\", 0) == 0) return path.substr(4);
  return path;
}

}  // namespace

struct RootDirectory::Platform {
  std::wstring final_root;   // "\\?\C:\www", no trailing backslash
  std::wstring root_prefix;  // final_root with a trailing backslash

  bool Under(const std::wstring& final_path) const {
    return final_path == final_root ||
           final_path.compare(0, root_prefix.size(), root_prefix) == 0;
  }

  // Opens `path` (under the root by construction) and checks where it led;
  // a directory opens its index.html unless `is_index`.
  OpenedPath OpenUnder(const std::wstring& path, std::string type_name,
                       bool is_index) const {
    const HANDLE handle = CreateFileW(
        path.c_str(), GENERIC_READ,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
        OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS,  // Directories open too.
        nullptr);
    if (handle == INVALID_HANDLE_VALUE) {
      return Failed(StatusForWin32Error(GetLastError()));
    }
    const std::wstring final_path = FinalPath(handle);
    if (final_path.empty()) {
      const DWORD error = GetLastError();
      CloseHandle(handle);
      return Failed(StatusForWin32Error(error));
    }
    if (!Under(final_path)) {  // A link or junction led out of the root.
      CloseHandle(handle);
      return Failed(403);
    }
    BY_HANDLE_FILE_INFORMATION data;
    if (!GetFileInformationByHandle(handle, &data)) {
      const DWORD error = GetLastError();
      CloseHandle(handle);
      return Failed(StatusForWin32Error(error));
    }
    if ((data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
      CloseHandle(handle);
      if (is_index) return Failed(404);
      const std::wstring separator = path.back() == L'\\' ? L"" : L"\\";
      OpenedPath index = OpenUnder(path + separator + L"index.html",
                                   "index.html", /*is_index=*/true);
      if (index.status == 0) return index;
      return DirectoryWithoutIndex();
    }
    if (GetFileType(handle) != FILE_TYPE_DISK) {  // No devices or pipes.
      CloseHandle(handle);
      return Failed(404);
    }
    const int fd = _open_osfhandle(reinterpret_cast<intptr_t>(handle),
                                   _O_RDONLY | _O_BINARY);
    if (fd < 0) {
      CloseHandle(handle);
      return Failed(503);  // Out of C runtime descriptors.
    }
    absl::StatusOr<FileInfo> info = StatOpenFile(fd);
    if (!info.ok()) {
      CloseFile(fd);
      return Failed(500);
    }
    OpenedPath result;
    result.fd = fd;
    result.info = *info;
    result.type_name = std::move(type_name);
    return result;
  }
};

absl::StatusOr<std::unique_ptr<RootDirectory>> RootDirectory::Open(
    const std::string& root) {
  std::wstring wide;
  if (!Widen(root, &wide) || wide.empty()) {
    return absl::NotFoundError("root " + root + ": not a valid UTF-8 path");
  }
  const HANDLE handle =
      CreateFileW(wide.c_str(), FILE_READ_ATTRIBUTES,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                  nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
  if (handle == INVALID_HANDLE_VALUE) {
    return absl::NotFoundError(LastWin32ErrorStatus("root " + root).message());
  }
  BY_HANDLE_FILE_INFORMATION data;
  const bool is_directory =
      GetFileInformationByHandle(handle, &data) &&
      (data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
  std::wstring final_root = FinalPath(handle);
  const DWORD final_error = GetLastError();
  CloseHandle(handle);
  if (!is_directory) {
    return absl::InvalidArgumentError("root " + root + " is not a directory");
  }
  if (final_root.empty()) {
    return absl::NotFoundError(
        Win32ErrorStatus(final_error, "root " + root).message());
  }
  auto platform = std::make_unique<Platform>();
  // A drive's root ("\\?\C:\") keeps its backslash in the prefix only.
  if (final_root.back() == L'\\') final_root.pop_back();
  platform->final_root = final_root;
  platform->root_prefix = final_root + L"\\";
  std::wstring shown = WithoutVerbatimPrefix(final_root);
  if (!shown.empty() && shown.back() == L':') shown.push_back(L'\\');
  return std::unique_ptr<RootDirectory>(
      new RootDirectory(Narrow(shown), std::move(platform)));
}

RootDirectory::RootDirectory(std::string path,
                             std::unique_ptr<Platform> platform)
    : path_(std::move(path)), platform_(std::move(platform)) {}

RootDirectory::~RootDirectory() = default;

OpenedPath RootDirectory::OpenFile(
    const std::vector<std::string>& segments) const {
  if (WindowsPathProblem(segments) != nullptr) return Failed(403);
  // A drive's root is opened as "\\?\C:\" ("\\?\C:" is the volume).
  const std::wstring& root = platform_->final_root;
  std::wstring path =
      segments.empty() && root.back() == L':' ? platform_->root_prefix : root;
  for (const std::string& segment : segments) {
    std::wstring wide;
    if (!Widen(segment, &wide)) return Failed(404);  // Not UTF-8: no name.
    path.push_back(L'\\');
    path.append(wide);
  }
  // The type follows the name asked for, as with most servers.
  return platform_->OpenUnder(path, segments.empty() ? "" : segments.back(),
                              /*is_index=*/false);
}

}  // namespace mill::http::internal
