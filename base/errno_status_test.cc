#include "base/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

TEST(ErrnoStatusTest, MapsBadFdToInvalidArgumentAndKeepsText) {
  absl::Status s = ErrnoStatus(EBADF, "epoll_ctl");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), std::string("epoll_ctl: ") + strerror(EBADF));
}

TEST(ErrnoStatusTest, OtherErrorsMapLikeAbsl) {
  for (int e : {EEXIST, ENOENT, EPERM, ECONNREFUSED, ETIMEDOUT, EAGAIN, EINVAL,
                ENOMEM, EMFILE}) {
    EXPECT_EQ(ErrnoStatus(e, "x").code(), absl::ErrnoToStatusCode(e)) << e;
  }
  EXPECT_EQ(ErrnoStatus(ECONNREFUSED, "connect").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoStatus(EMFILE, "accept").message(),
            std::string("accept: ") + strerror(EMFILE));
}

// Under ThreadSanitizer this is the point: concurrent first uses race in
// absl::ErrnoToStatus's cache, not here.
TEST(ErrnoStatusTest, SafeFromManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<std::string> messages(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&messages, i] {
      messages[i] = std::string(ErrnoStatus(ENOENT + i, "t").message());
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(messages[i], std::string("t: ") + strerror(ENOENT + i));
  }
}

}  // namespace
}  // namespace mill
