// Black-box test of //examples/http:http_server that runs on every platform
// (Linux, and Windows under Wine): the real binary serving a --root over
// real sockets, every way out of the root refused, names Windows would read
// as devices, streams or aliases never serving a file, and a clean exit on
// SIGTERM (on Windows: the server's stop event). The full suite, with curl
// and wrk as clients, is http_server_test (Linux).
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/testing/http_get.h"
#include "examples/testing/server_process.h"
#include "gtest/gtest.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kServer[] = "examples/http/http_server";

class HttpServerBlackBoxTest : public ServerModeTest {
 protected:
  void SetUp() override {
    static int counter = 0;
    base_ = fs::path(::testing::TempDir()) /
            ("http_blackbox_" + std::to_string(counter++));
    fs::remove_all(base_);
    root_ = base_ / "www";
    fs::create_directories(root_ / "sub");
    fs::create_directories(base_ / "outside");
    WriteFile((base_ / "outside" / "secret.txt").string(), "TOP SECRET\n");
    WriteFile((root_ / "index.html").string(), "<h1>home</h1>\n");
    WriteFile((root_ / "a.txt").string(), "plain text\n");
    WriteFile((root_ / "sub" / "index.html").string(), "<p>sub</p>\n");
    big_.resize(3 << 20);
    for (size_t i = 0; i < big_.size(); ++i) {
      big_[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    }
    WriteFile((root_ / "big.bin").string(), big_);
    StartInMode(kServer, {"--workers=2", "--root=" + root_.string()});
  }

  void TearDown() override {
    ServerModeTest::TearDown();
    std::error_code ignored;
    fs::remove_all(base_, ignored);
  }

  HttpReply Get(const std::string& target) {
    absl::StatusOr<HttpReply> reply = HttpGet(server_.port, target);
    EXPECT_TRUE(reply.ok()) << target << ": " << reply.status();
    return reply.value_or(HttpReply());
  }

  fs::path base_;
  fs::path root_;
  std::string big_;
};

INSTANTIATE_TEST_SUITE_P(Modes, HttpServerBlackBoxTest, Modes(), ModeName);

TEST_P(HttpServerBlackBoxTest, ServesFilesAndIndexes) {
  HttpReply a = Get("/a.txt");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "plain text\n");
  EXPECT_EQ(a.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(Get("/").body, "<h1>home</h1>\n");
  EXPECT_EQ(Get("/sub/").body, "<p>sub</p>\n");
  EXPECT_EQ(Get("/nope.txt").status, 404);
}

TEST_P(HttpServerBlackBoxTest, LargeFileArrivesWhole) {
  // Over the small-body bound: sent by the connection's SendFile.
  HttpReply big = Get("/big.bin");
  EXPECT_EQ(big.status, 200);
  ASSERT_EQ(big.body.size(), big_.size());
  EXPECT_TRUE(big.body == big_);
}

TEST_P(HttpServerBlackBoxTest, EscapesAreRefused) {
  for (const char* target :
       {"/../outside/secret.txt", "/%2e%2e/outside/secret.txt",
        "/sub/../../outside/secret.txt", "/..%2foutside%2fsecret.txt",
        "/..%5coutside%5csecret.txt"}) {
    HttpReply r = Get(target);
    EXPECT_EQ(r.status, 403) << target;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << target;
  }
}

// On Windows these are refused (403) before the file system sees them; on
// Linux they are ordinary names of files that do not exist (404). Either
// way no file is served.
TEST_P(HttpServerBlackBoxTest, WindowsSpecialNamesNeverServeAFile) {
  for (const char* target :
       {"/CON", "/nul", "/con.txt", "/COM1", "/LPT1.log", "/a.txt::$DATA",
        "/a.txt%3A%3A%24DATA", "/a.txt.", "/a.txt%20", "/C:/Windows/win.ini",
        "/c%3A%5CWindows%5Cwin.ini", "/A.TXT.."}) {
    HttpReply r = Get(target);
    EXPECT_TRUE(r.status == 403 || r.status == 404)
        << target << ": " << r.status;
    EXPECT_NE(r.body, "plain text\n") << target;
  }
}

}  // namespace
}  // namespace mill::testing
