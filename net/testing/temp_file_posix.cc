#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/testing/temp_file.h"

namespace mill {
namespace net_testing {

TempFile::TempFile(const std::string& contents) {
  const char* dir = std::getenv("TEST_TMPDIR");
  path_ = absl::StrCat(dir ? dir : "/tmp", "/conn_test_XXXXXX");
  fd_ = mkstemp(path_.data());
  EXPECT_GE(fd_, 0);
  size_t off = 0;
  while (off < contents.size()) {
    ssize_t n = write(fd_, contents.data() + off, contents.size() - off);
    if (n <= 0) {
      ADD_FAILURE() << "write failed";
      return;
    }
    off += n;
  }
}

TempFile::~TempFile() {
  if (fd_ >= 0) close(fd_);
  unlink(path_.c_str());
}

}  // namespace net_testing
}  // namespace mill
