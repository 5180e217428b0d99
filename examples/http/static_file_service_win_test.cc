// The static file service on Windows: confinement without openat2 (names
// Windows would read as more than a file name are refused; links that lead
// out of the root are refused by the opened file's final path), and files
// served through C runtime descriptors. The POSIX suite
// (static_file_service_test.cc) covers the rest of the behaviour, which is
// platform-neutral code.
#include <windows.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/testing/wine.h"
#include "examples/http/http_message.h"
#include "examples/http/static_file_service.h"
#include "gtest/gtest.h"

namespace mill::http {
namespace {

namespace fs = std::filesystem;
using ::mill::testing::RunningUnderWine;

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

class StaticFileServiceWinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    base_ = fs::path(::testing::TempDir()) /
            ("static_win_" + std::to_string(GetCurrentProcessId()) + "_" +
             std::to_string(counter++));
    root_ = base_ / "www";
    outside_ = base_ / "outside";
    fs::create_directories(root_ / "sub");
    fs::create_directories(root_ / "empty");
    fs::create_directories(outside_);
    WriteFile(outside_ / "secret.txt", "TOP SECRET\n");
    WriteFile(root_ / "index.html", "<h1>home</h1>\n");
    WriteFile(root_ / "sub" / "index.html", "<p>sub</p>\n");
    WriteFile(root_ / "a.txt", "plain text\n");
    WriteFile(root_ / "digits.txt", "0123456789");
    StaticFileService::Options options;
    options.root = root_.string();
    auto service = StaticFileService::Create(options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(base_, ignored);
  }

  HttpResponse Get(const std::string& target) {
    HttpRequest request;
    request.method = "GET";
    request.target = target;
    return service_->Handle(request);
  }

  static std::string Body(const HttpResponse& r) {
    if (r.file == nullptr) return r.body;
    std::string out;
    const absl::Status status =
        ReadFileRange(*r.file, r.file_offset, r.file_length,
                      [&out](std::string_view b) { out.append(b); });
    EXPECT_TRUE(status.ok()) << status;
    return out;
  }

  fs::path base_;
  fs::path root_;
  fs::path outside_;
  std::unique_ptr<StaticFileService> service_;
};

TEST_F(StaticFileServiceWinTest, ServesFilesAndDirectoryIndexes) {
  HttpResponse a = Get("/a.txt");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(Body(a), "plain text\n");
  ASSERT_NE(a.file, nullptr);
  EXPECT_EQ(a.file->size(), 11u);
  EXPECT_GT(a.file->mtime_sec(), 1600000000);  // After 2020.
  EXPECT_EQ(Body(Get("/")), "<h1>home</h1>\n");
  EXPECT_EQ(Body(Get("/sub/")), "<p>sub</p>\n");
  EXPECT_EQ(Body(Get("/sub")), "<p>sub</p>\n");
  EXPECT_EQ(Get("/empty/").status, 404);
  EXPECT_EQ(Get("/nope.txt").status, 404);
  EXPECT_EQ(Get("/a.txt/more").status, 404);
}

TEST_F(StaticFileServiceWinTest, RangesReadAtTheirOffset) {
  HttpRequest request;
  request.method = "GET";
  request.target = "/digits.txt";
  request.headers = {{"Range", "bytes=3-6"}};
  HttpResponse r = service_->Handle(request);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(Body(r), "3456");
  // Two reads of one shared file at different offsets do not disturb each
  // other (positional reads).
  std::string first;
  std::string second;
  ASSERT_TRUE(ReadFileRange(*r.file, 8, 2, [&](std::string_view b) {
                first.append(b);
              }).ok());
  ASSERT_TRUE(ReadFileRange(*r.file, 0, 2, [&](std::string_view b) {
                second.append(b);
              }).ok());
  EXPECT_EQ(first, "89");
  EXPECT_EQ(second, "01");
  EXPECT_EQ(ReadFileRange(*r.file, 8, 5, [](std::string_view) {}).code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(StaticFileServiceWinTest, DeviceNamesAreRefused) {
  for (const char* target :
       {"/CON", "/con", "/NUL", "/nul.txt", "/AUX", "/PRN.html", "/COM1",
        "/com1.log", "/LPT1", "/lpt9.txt", "/CONIN$", "/CONOUT$", "/sub/CON",
        "/CON/a.txt", "/con%20.txt", "/COM%C2%B9"}) {
    EXPECT_EQ(Get(target).status, 403) << target;
  }
}

TEST_F(StaticFileServiceWinTest,
       DriveLettersStreamsAndAbsolutePathsAreRefused) {
  for (const char* target :
       {"/C:/Windows/win.ini", "/c:", "/C%3A%5CWindows%5Cwin.ini",
        "/a.txt::$DATA", "/a.txt%3A%3A%24DATA", "/a.txt:stream",
        "/%5C%5Cserver%5Cshare%5Cx", "/\\\\server\\share",
        "/..%5Coutside%5Csecret.txt", "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt", "/sub/../../outside/secret.txt"}) {
    const HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 403) << target;
    EXPECT_EQ(Body(r).find("SECRET"), std::string::npos) << target;
  }
}

TEST_F(StaticFileServiceWinTest, AliasesWindowsWouldStripAreRefused) {
  // Win32 would open a.txt for each of these.
  for (const char* target :
       {"/a.txt.", "/a.txt%20", "/a.txt..", "/a.txt.%20.", "/sub./index.html",
        "/a*.txt", "/a%3F.txt", "/%3Ca%3E", "/a%22.txt", "/a%7C.txt"}) {
    EXPECT_EQ(Get(target).status, 403) << target;
  }
}

TEST_F(StaticFileServiceWinTest, SymbolicLinksOutOfTheRootAreRefused) {
  const fs::path link = root_ / "link_out.txt";
  const fs::path target = outside_ / "secret.txt";
  if (!CreateSymbolicLinkW(link.c_str(), target.c_str(),
                           SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE)) {
    GTEST_SKIP() << "cannot create a symbolic link here (Win32 error "
                 << GetLastError()
                 << "): it needs SeCreateSymbolicLinkPrivilege or "
                    "developer mode";
  }
  if (GetFileAttributesW(link.c_str()) == INVALID_FILE_ATTRIBUTES &&
      RunningUnderWine()) {
    // (Links Wine sees as Unix symbolic links are resolved by its
    // GetFinalPathNameByHandleW, so the check itself works under Wine.)
    GTEST_SKIP() << "Wine: CreateSymbolicLinkW is a stub that returns TRUE "
                    "and creates no link";
  }
  const fs::path dir_link = root_ / "dir_out";
  const bool have_dir_link =
      CreateSymbolicLinkW(dir_link.c_str(), outside_.c_str(),
                          SYMBOLIC_LINK_FLAG_DIRECTORY |
                              SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE);
  const fs::path link_in = root_ / "link_in.txt";
  const bool have_link_in =
      CreateSymbolicLinkW(link_in.c_str(), (root_ / "a.txt").c_str(),
                          SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE);

  HttpResponse out = Get("/link_out.txt");
  EXPECT_EQ(out.status, 403);
  EXPECT_EQ(Body(out).find("SECRET"), std::string::npos);
  if (have_dir_link) {
    EXPECT_EQ(Get("/dir_out/secret.txt").status, 403);
  }
  if (have_link_in) {
    EXPECT_EQ(Body(Get("/link_in.txt")), "plain text\n");
  }
}

TEST(StaticFileServiceWinCreateTest, RejectsBadRoots) {
  StaticFileService::Options missing;
  missing.root = (fs::path(::testing::TempDir()) / "no_such_root_dir").string();
  EXPECT_EQ(StaticFileService::Create(missing).status().code(),
            absl::StatusCode::kNotFound);
  const fs::path file = fs::path(::testing::TempDir()) / "root_is_a_file.txt";
  WriteFile(file, "x");
  StaticFileService::Options not_dir;
  not_dir.root = file.string();
  EXPECT_EQ(StaticFileService::Create(not_dir).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::error_code ignored;
  fs::remove(file, ignored);
}

}  // namespace
}  // namespace mill::http
