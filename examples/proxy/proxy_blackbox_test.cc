// Black-box test of //examples/proxy:proxy that runs on every platform
// (Linux, and Windows under Wine): the real binary in front of the real
// http_server, over real sockets, in both dispatch modes, and a clean exit
// of both on SIGTERM (on Windows: their stop events). The full suites, with
// curl, wrk and Python upstreams, are proxy_test (Linux) and proxy_tls_test.
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "examples/testing/http_get.h"
#include "examples/testing/server_process.h"
#include "gtest/gtest.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kProxy[] = "examples/proxy/proxy";
constexpr char kHttpServer[] = "examples/http/http_server";

class ProxyBlackBoxTest : public ServerModeTest {
 protected:
  void SetUp() override {
    static int counter = 0;
    root_ = fs::path(::testing::TempDir()) /
            ("proxy_blackbox_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
    WriteFile((root_ / "index.html").string(), "<h1>upstream</h1>\n");
    WriteFile((root_ / "a.txt").string(), "plain text\n");
    big_.assign(2 << 20, 'x');
    for (size_t i = 0; i < big_.size(); i += 997) big_[i] = 'y';
    WriteFile((root_ / "big.bin").string(), big_);
    upstream_ = StartServer(kHttpServer, {"--root=" + root_.string()});
    ASSERT_NE(upstream_.port, 0);
    StartInMode(kProxy,
                {absl::StrCat("--upstream=127.0.0.1:", upstream_.port)});
  }

  void TearDown() override {
    ServerModeTest::TearDown();  // The proxy first.
    if (upstream_.process) ExpectCleanExit(*upstream_.process, SIGTERM);
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  HttpReply Get(const std::string& target) {
    absl::StatusOr<HttpReply> reply = HttpGet(server_.port, target);
    EXPECT_TRUE(reply.ok()) << target << ": " << reply.status();
    return reply.value_or(HttpReply());
  }

  fs::path root_;
  std::string big_;
  ServerProcess upstream_;
};

INSTANTIATE_TEST_SUITE_P(Modes, ProxyBlackBoxTest, Modes(), ModeName);

TEST_P(ProxyBlackBoxTest, ForwardsRequestsAndResponses) {
  HttpReply a = Get("/a.txt");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "plain text\n");
  EXPECT_EQ(a.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(Get("/").body, "<h1>upstream</h1>\n");
  EXPECT_EQ(Get("/nope").status, 404);
  EXPECT_EQ(Get("/../a.txt").status, 403);  // The upstream's answer.
}

TEST_P(ProxyBlackBoxTest, LargeResponsesArriveWhole) {
  HttpReply big = Get("/big.bin");
  EXPECT_EQ(big.status, 200);
  ASSERT_EQ(big.body.size(), big_.size());
  EXPECT_TRUE(big.body == big_);
}

TEST_P(ProxyBlackBoxTest, ConcurrentClients) {
  constexpr int kClients = 16;
  std::vector<int> statuses(kClients);
  std::vector<std::string> bodies(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<HttpReply> r = HttpGet(server_.port, "/a.txt");
      if (r.ok()) {
        statuses[i] = r->status;
        bodies[i] = r->body;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(statuses[i], 200) << i;
    EXPECT_EQ(bodies[i], "plain text\n") << i;
  }
}

}  // namespace
}  // namespace mill::testing
