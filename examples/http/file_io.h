// The few file operations the HTTP example's neutral code needs, each
// implemented per platform (file_io_posix.cc, file_io_win.cc). Internal to
// //examples/http.
//
// A file is an int descriptor on both: a POSIX descriptor, or on Windows a C
// runtime descriptor wrapping the file HANDLE (_open_osfhandle), which
// _get_osfhandle gives back (for TransmitFile or ReadFile).
//
// Thread-safety: thread-safe (positional reads share no file offset).
#ifndef MILL_IO_EXAMPLES_HTTP_FILE_IO_H_
#define MILL_IO_EXAMPLES_HTTP_FILE_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "examples/http/http_message.h"

namespace mill::http::internal {

// Reads up to `size` bytes of open file `fd` at `offset` into `buffer`
// without moving a shared file offset (pread(), or ReadFile with an
// OVERLAPPED offset). The count read; 0 at or past the end of the file.
absl::StatusOr<size_t> ReadFileAt(int fd, uint64_t offset, char* buffer,
                                  size_t size);

// Opens the file at `path` for reading (O_RDONLY | O_CLOEXEC; Windows:
// CreateFileW shared for reading, writing and deletion, wrapped in a C
// runtime descriptor). For tests and tools: the service opens files through
// RootDirectory, confined to its root.
absl::StatusOr<int> OpenFileForReading(const std::string& path);

// Closes `fd` (and on Windows the HANDLE it wraps).
void CloseFile(int fd);

// The size, modification time and identity of open file `fd`.
absl::StatusOr<FileInfo> StatOpenFile(int fd);

}  // namespace mill::http::internal

#endif  // MILL_IO_EXAMPLES_HTTP_FILE_IO_H_
