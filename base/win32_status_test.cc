#include "base/win32_status.h"

#include <windows.h>
#include <winsock2.h>

#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

TEST(Win32StatusTest, MessageIsWhatSystemTextAndCode) {
  absl::Status s = Win32ErrorStatus(ERROR_FILE_NOT_FOUND, "CreateFileA");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  const std::string message(s.message());
  EXPECT_TRUE(absl::StartsWith(message, "CreateFileA: ")) << message;
  EXPECT_TRUE(absl::EndsWith(message, " (Win32 error 2)")) << message;
  EXPECT_EQ(message.find_first_of("\r\n"), std::string::npos) << message;

  // The text between is FormatMessage's, trailing line break trimmed.
  char buffer[512];
  DWORD n = FormatMessageA(
      FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
      ERROR_FILE_NOT_FOUND, 0, buffer, sizeof(buffer), nullptr);
  ASSERT_GT(n, 0u);
  std::string text(buffer, n);
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  EXPECT_EQ(message, absl::StrCat("CreateFileA: ", text, " (Win32 error 2)"));
}

TEST(Win32StatusTest, CodeWithoutSystemTextSaysUnknownError) {
  absl::Status s = Win32ErrorStatus(0x2000ABCDu, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(std::string(s.message()),
            "x: unknown error (Win32 error 536914893)");
}

TEST(Win32StatusTest, SuccessIsOk) {
  EXPECT_TRUE(Win32ErrorStatus(ERROR_SUCCESS, "x").ok());
}

TEST(Win32StatusTest, CodesMapLikeTheirErrnoCounterparts) {
  const std::vector<std::pair<uint32_t, absl::StatusCode>> cases = {
      {WSAEBADF, absl::StatusCode::kInvalidArgument},
      {WSAENOTSOCK, absl::StatusCode::kInvalidArgument},
      {ERROR_INVALID_HANDLE, absl::StatusCode::kInvalidArgument},
      {ERROR_INVALID_PARAMETER, absl::StatusCode::kInvalidArgument},
      {WSAEINVAL, absl::StatusCode::kInvalidArgument},
      {WSAEWOULDBLOCK, absl::StatusCode::kUnavailable},
      {WSAECONNREFUSED, absl::StatusCode::kUnavailable},
      {WSAECONNRESET, absl::StatusCode::kUnavailable},
      {WSAECONNABORTED, absl::StatusCode::kUnavailable},
      {WSAENETUNREACH, absl::StatusCode::kUnavailable},
      {WSAETIMEDOUT, absl::StatusCode::kDeadlineExceeded},
      {ERROR_ACCESS_DENIED, absl::StatusCode::kPermissionDenied},
      {WSAEACCES, absl::StatusCode::kPermissionDenied},
      {ERROR_FILE_NOT_FOUND, absl::StatusCode::kNotFound},
      {ERROR_PATH_NOT_FOUND, absl::StatusCode::kNotFound},
      {ERROR_ALREADY_EXISTS, absl::StatusCode::kAlreadyExists},
      {ERROR_FILE_EXISTS, absl::StatusCode::kAlreadyExists},
      {WSAEADDRINUSE, absl::StatusCode::kAlreadyExists},
      {ERROR_NOT_ENOUGH_MEMORY, absl::StatusCode::kResourceExhausted},
      {ERROR_OUTOFMEMORY, absl::StatusCode::kResourceExhausted},
      {WSAENOBUFS, absl::StatusCode::kResourceExhausted},
      {WSAEMFILE, absl::StatusCode::kResourceExhausted},
      {WSAENOTCONN, absl::StatusCode::kFailedPrecondition},
      {WSAEISCONN, absl::StatusCode::kFailedPrecondition},
      {ERROR_BROKEN_PIPE, absl::StatusCode::kFailedPrecondition},
      {ERROR_NOT_SUPPORTED, absl::StatusCode::kUnimplemented},
      {WSAEAFNOSUPPORT, absl::StatusCode::kUnimplemented},
      {ERROR_OPERATION_ABORTED, absl::StatusCode::kCancelled},
  };
  for (const auto& [win32, code] : cases) {
    EXPECT_EQ(Win32ErrorStatus(win32, "x").code(), code) << win32;
  }
}

TEST(Win32StatusTest, LastErrorReadsGetLastError) {
  SetLastError(ERROR_ACCESS_DENIED);
  absl::Status s = LastWin32ErrorStatus("OpenProcess");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::EndsWith(s.message(), "(Win32 error 5)")) << s;
}

TEST(Win32StatusTest, LastErrorOfARealFailedCall) {
  HANDLE h =
      CreateFileA("Z:\\no\\such\\dir\\mill-io-file", GENERIC_READ, 0, nullptr,
                  OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  ASSERT_EQ(h, INVALID_HANDLE_VALUE);
  absl::Status s = LastWin32ErrorStatus("CreateFileA");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
}

TEST(Win32StatusTest, LastSocketErrorReadsWSAGetLastError) {
  WSASetLastError(WSAECONNREFUSED);
  absl::Status s = LastSocketErrorStatus("connect");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StartsWith(s.message(), "connect: ")) << s;
  EXPECT_TRUE(absl::EndsWith(s.message(), "(Win32 error 10061)")) << s;
}

TEST(Win32StatusTest, LastSocketErrorOfARealFailedCall) {
  WSADATA data;
  ASSERT_EQ(WSAStartup(MAKEWORD(2, 2), &data), 0);
  char byte = 0;
  // Not a socket: a closed, never-opened handle value.
  ASSERT_EQ(send(static_cast<SOCKET>(12345), &byte, 1, 0), SOCKET_ERROR);
  absl::Status s = LastSocketErrorStatus("send");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  WSACleanup();
}

TEST(Win32StatusTest, SafeFromManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<std::string> messages(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&messages, i] {
      messages[i] =
          std::string(Win32ErrorStatus(ERROR_FILE_NOT_FOUND, "t").message());
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 1; i < 8; ++i) EXPECT_EQ(messages[i], messages[0]);
}

}  // namespace
}  // namespace mill
