// file_io.h on Windows: the descriptor is a C runtime descriptor wrapping a
// file HANDLE; reads are ReadFile with an OVERLAPPED offset (a synchronous
// handle reads at that offset and returns when done).
#include <fcntl.h>
#include <io.h>
#include <windows.h>

#include <algorithm>
#include <string>

#include "base/win32_status.h"
#include "examples/http/file_io.h"

namespace mill::http::internal {
namespace {

HANDLE HandleOf(int fd) { return reinterpret_cast<HANDLE>(_get_osfhandle(fd)); }

// 100 ns ticks between 1601-01-01 (FILETIME) and 1970-01-01.
constexpr uint64_t kEpochDifferenceTicks = 116444736000000000ull;

}  // namespace

absl::StatusOr<size_t> ReadFileAt(int fd, uint64_t offset, char* buffer,
                                  size_t size) {
  const HANDLE handle = HandleOf(fd);
  if (handle == INVALID_HANDLE_VALUE) {
    return absl::InvalidArgumentError("ReadFile: not an open file");
  }
  OVERLAPPED overlapped{};
  overlapped.Offset = static_cast<DWORD>(offset & 0xffffffffu);
  overlapped.OffsetHigh = static_cast<DWORD>(offset >> 32);
  const DWORD want =
      static_cast<DWORD>(std::min<size_t>(size, 1u << 30));  // DWORD count
  DWORD got = 0;
  if (!ReadFile(handle, buffer, want, &got, &overlapped)) {
    const DWORD error = GetLastError();
    if (error == ERROR_HANDLE_EOF) return 0;  // At or past the end.
    return mill::Win32ErrorStatus(error, "ReadFile of a response file body");
  }
  return static_cast<size_t>(got);
}

absl::StatusOr<int> OpenFileForReading(const std::string& path) {
  const int n = MultiByteToWideChar(CP_UTF8, 0, path.data(),
                                    static_cast<int>(path.size()), nullptr, 0);
  std::wstring wide(static_cast<size_t>(n > 0 ? n : 0), L'\0');
  if (n > 0) {
    MultiByteToWideChar(CP_UTF8, 0, path.data(), static_cast<int>(path.size()),
                        wide.data(), n);
  }
  const HANDLE handle =
      CreateFileW(wide.c_str(), GENERIC_READ,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                  nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (handle == INVALID_HANDLE_VALUE) {
    return mill::LastWin32ErrorStatus("CreateFileW " + path);
  }
  const int fd = _open_osfhandle(reinterpret_cast<intptr_t>(handle),
                                 _O_RDONLY | _O_BINARY);
  if (fd < 0) {
    CloseHandle(handle);
    return absl::ResourceExhaustedError("_open_osfhandle: no descriptor");
  }
  return fd;
}

void CloseFile(int fd) {
  if (fd >= 0) _close(fd);  // Closes the HANDLE too.
}

absl::StatusOr<FileInfo> StatOpenFile(int fd) {
  const HANDLE handle = HandleOf(fd);
  BY_HANDLE_FILE_INFORMATION data;
  if (handle == INVALID_HANDLE_VALUE ||
      !GetFileInformationByHandle(handle, &data)) {
    return mill::LastWin32ErrorStatus("GetFileInformationByHandle");
  }
  FileInfo info;
  info.size =
      (static_cast<uint64_t>(data.nFileSizeHigh) << 32) | data.nFileSizeLow;
  const uint64_t ticks =
      (static_cast<uint64_t>(data.ftLastWriteTime.dwHighDateTime) << 32) |
      data.ftLastWriteTime.dwLowDateTime;
  // Files older than 1970 get the epoch (HTTP dates start there anyway).
  const uint64_t since_epoch =
      ticks > kEpochDifferenceTicks ? ticks - kEpochDifferenceTicks : 0;
  info.mtime_sec = static_cast<int64_t>(since_epoch / 10000000u);
  info.mtime_nsec = static_cast<int64_t>(since_epoch % 10000000u) * 100;
  info.id =
      (static_cast<uint64_t>(data.nFileIndexHigh) << 32) | data.nFileIndexLow;
  return info;
}

}  // namespace mill::http::internal
