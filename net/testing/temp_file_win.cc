// TempFile on Windows: a C runtime descriptor (_open), binary mode.
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <windows.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/testing/temp_file.h"

namespace mill {
namespace net_testing {

TempFile::TempFile(const std::string& contents) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string base;
  if (dir != nullptr) {
    base = dir;
  } else {
    char buffer[MAX_PATH + 1];
    const DWORD n = GetTempPathA(sizeof(buffer), buffer);
    base = n > 0 ? std::string(buffer, n) : std::string(".");
  }
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    path_ = absl::StrCat(base, "\\conn_test_", GetCurrentProcessId(), "_",
                         GetTickCount64(), "_", attempt);
    fd_ = _open(path_.c_str(), _O_CREAT | _O_EXCL | _O_RDWR | _O_BINARY,
                _S_IREAD | _S_IWRITE);
  }
  EXPECT_GE(fd_, 0) << path_;
  size_t off = 0;
  while (fd_ >= 0 && off < contents.size()) {
    const int n = _write(fd_, contents.data() + off,
                         static_cast<unsigned>(contents.size() - off));
    if (n <= 0) {
      ADD_FAILURE() << "write failed";
      return;
    }
    off += static_cast<size_t>(n);
  }
}

TempFile::~TempFile() {
  if (fd_ >= 0) _close(fd_);
  _unlink(path_.c_str());
}

}  // namespace net_testing
}  // namespace mill
