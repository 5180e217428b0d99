// TempFile: a file with known contents for the SendFile tests, removed on
// destruction; its descriptor is what Connection::SendFile takes (a POSIX
// descriptor; a C runtime descriptor on Windows). Test-only.
//
// Thread-safety: thread-compatible. Ownership: owns the file and its
// descriptor.
#ifndef MILL_IO_NET_TESTING_TEMP_FILE_H_
#define MILL_IO_NET_TESTING_TEMP_FILE_H_

#include <string>

namespace mill {
namespace net_testing {

class TempFile {
 public:
  // Creates the file in $TEST_TMPDIR (else the system's temporary
  // directory) and writes `contents`; a failure is a test failure.
  explicit TempFile(const std::string& contents);
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_TEMP_FILE_H_
