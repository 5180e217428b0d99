#include "examples/http/static_file_service.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "examples/http/http_connection.h"
#include "examples/http/test_util.h"
#include "gtest/gtest.h"

namespace mill::http {
namespace {

using Verdict = DecodedPath::Verdict;
using testing::ParseResponses;

// ---- DecodeRequestPath ----

TEST(DecodeRequestPathTest, SplitsDecodesAndDropsDotAndEmptySegments) {
  DecodedPath p = DecodeRequestPath("/a/./b//c%20d/%41?x=/../#frag");
  EXPECT_EQ(p.verdict, Verdict::kOk);
  EXPECT_EQ(p.segments, (std::vector<std::string>{"a", "b", "c d", "A"}));
  EXPECT_TRUE(DecodeRequestPath("/").segments.empty());
  EXPECT_EQ(DecodeRequestPath("/").verdict, Verdict::kOk);
  EXPECT_EQ(DecodeRequestPath("/%e2%9C%93").segments,
            std::vector<std::string>{"\xe2\x9c\x93"});
}

TEST(DecodeRequestPathTest, AbsoluteFormUsesItsPath) {
  EXPECT_EQ(DecodeRequestPath("http://example.com/x/y.txt?q").segments,
            (std::vector<std::string>{"x", "y.txt"}));
  DecodedPath bare = DecodeRequestPath("http://example.com");
  EXPECT_EQ(bare.verdict, Verdict::kOk);
  EXPECT_TRUE(bare.segments.empty());
}

TEST(DecodeRequestPathTest, RefusesTraversalSpellings) {
  for (const char* target :
       {"/..", "/../etc/passwd", "/a/../../etc/passwd", "/a/..",
        "/%2e%2e/etc/passwd", "/%2E%2E/%2e%2e/etc/passwd", "/.%2e/x", "/%2e./x",
        "/..%2f..%2fetc%2fpasswd", "/a%2fb", "/a%2Fb", "/..\\..\\etc\\passwd",
        "/a%5c..%5cb", "/a%00.txt", "/a%0a", "/a%7f", "/%2e%2e%2f",
        "http://h/../x"}) {
    const DecodedPath p = DecodeRequestPath(target);
    EXPECT_EQ(p.verdict, Verdict::kForbidden) << target;
    EXPECT_TRUE(p.segments.empty()) << target;
  }
}

TEST(DecodeRequestPathTest, MalformedTargetsAreBadRequests) {
  for (const char* target :
       {"", "a/b", "*", "%2f", "/%", "/%4", "/%zz", "/a%g0", "/%%32%65"}) {
    EXPECT_EQ(DecodeRequestPath(target).verdict, Verdict::kBadRequest)
        << target;
  }
}

// ---- ContentTypeForPath ----

TEST(ContentTypeForPathTest, CommonTypes) {
  const std::pair<const char*, const char*> cases[] = {
      {"index.html", "text/html; charset=utf-8"},
      {"a.htm", "text/html; charset=utf-8"},
      {"PAGE.HTML", "text/html; charset=utf-8"},
      {"s.css", "text/css; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"m.mjs", "text/javascript; charset=utf-8"},
      {"d.json", "application/json"},
      {"r.txt", "text/plain; charset=utf-8"},
      {"i.png", "image/png"},
      {"p.jpg", "image/jpeg"},
      {"p.JPEG", "image/jpeg"},
      {"g.gif", "image/gif"},
      {"v.svg", "image/svg+xml"},
      {"favicon.ico", "image/x-icon"},
      {"m.wasm", "application/wasm"},
      {"doc.pdf", "application/pdf"},
      {"blob.bin", "application/octet-stream"},
      {"noext", "application/octet-stream"},
      {"trailingdot.", "application/octet-stream"},
      {"dir.html/file", "application/octet-stream"},
      {"/x/y/archive.tar.gz", "application/octet-stream"},
      {".html", "text/html; charset=utf-8"},
  };
  for (const auto& [path, type] : cases) {
    EXPECT_EQ(ContentTypeForPath(path), type) << path;
  }
}

// ---- StaticFileService over a real directory tree ----

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

class StaticFileServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/static_XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    base_ = templ;
    root_ = base_ + "/www";
    outside_ = base_ + "/outside";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/sub").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/empty").c_str(), 0755), 0);
    WriteFile(outside_ + "/secret.txt", "TOP SECRET\n");
    WriteFile(root_ + "/index.html", "<h1>home</h1>\n");
    WriteFile(root_ + "/sub/index.html", "<p>sub</p>\n");
    WriteFile(root_ + "/a.txt", "plain text\n");
    WriteFile(root_ + "/with space.txt", "spaced\n");
    const char* files[] = {"style.css", "app.js",   "data.json", "img.png",
                           "photo.jpg", "anim.gif", "icon.svg",  "favicon.ico",
                           "mod.wasm",  "doc.pdf",  "blob.bin"};
    for (const char* f : files) WriteFile(root_ + "/" + f, std::string(f));
    WriteFile(root_ + "/binary.png", std::string("\x89PNG\r\n\x1a\n\0\0", 10));
    ASSERT_EQ(symlink((outside_ + "/secret.txt").c_str(),
                      (root_ + "/link_out.txt").c_str()),
              0);
    ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/dir_out").c_str()), 0);
    ASSERT_EQ(symlink("a.txt", (root_ + "/link_in.txt").c_str()), 0);
    ASSERT_EQ(symlink("../../outside/secret.txt",
                      (root_ + "/sub/relative_out.txt").c_str()),
              0);
    ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0644), 0);

    StaticFileService::Options options;
    options.root = root_;
    auto service = StaticFileService::Create(options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  void TearDown() override {
    // Best effort; TEST_TMPDIR is discarded by Bazel anyway.
    std::string cmd = "rm -rf '" + base_ + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  HttpResponse Get(const std::string& target,
                   const std::string& method = "GET") {
    HttpRequest request;
    request.method = method;
    request.target = target;
    return service_->Handle(request);
  }

  static std::string Header(const HttpResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "<absent>";
  }

  std::string base_;
  std::string root_;
  std::string outside_;
  std::unique_ptr<StaticFileService> service_;
};

TEST_F(StaticFileServiceTest, ServesFilesWithContentTypes) {
  const std::pair<const char*, const char*> cases[] = {
      {"style.css", "text/css; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"data.json", "application/json"},
      {"img.png", "image/png"},
      {"photo.jpg", "image/jpeg"},
      {"anim.gif", "image/gif"},
      {"icon.svg", "image/svg+xml"},
      {"favicon.ico", "image/x-icon"},
      {"mod.wasm", "application/wasm"},
      {"doc.pdf", "application/pdf"},
      {"blob.bin", "application/octet-stream"},
  };
  for (const auto& [name, type] : cases) {
    HttpResponse r = Get(std::string("/") + name);
    EXPECT_EQ(r.status, 200) << name;
    EXPECT_EQ(r.body, name);
    EXPECT_EQ(Header(r, "Content-Type"), type) << name;
  }
  HttpResponse text = Get("/a.txt");
  EXPECT_EQ(text.body, "plain text\n");
  EXPECT_EQ(Header(text, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(Get("/binary.png").body, std::string("\x89PNG\r\n\x1a\n\0\0", 10));
  EXPECT_EQ(Get("/with%20space.txt").body, "spaced\n");
  EXPECT_EQ(Get("/a.txt?download=1#top").body, "plain text\n");
  EXPECT_EQ(Get("http://example.com/a.txt").body, "plain text\n");
  EXPECT_EQ(Get("//a.txt").body, "plain text\n");
  EXPECT_EQ(Get("/./a.txt").body, "plain text\n");
}

TEST_F(StaticFileServiceTest, DirectoriesServeTheirIndex) {
  HttpResponse root = Get("/");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(root.body, "<h1>home</h1>\n");
  EXPECT_EQ(Header(root, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(Get("/sub/").body, "<p>sub</p>\n");
  EXPECT_EQ(Get("/sub").body, "<p>sub</p>\n");
  EXPECT_EQ(Get("/empty/").status, 404);
  EXPECT_EQ(Get("/index.html").body, "<h1>home</h1>\n");
}

TEST_F(StaticFileServiceTest, RootWithoutIndexAnswersTheGreeting) {
  ASSERT_EQ(unlink((root_ + "/index.html").c_str()), 0);
  HttpResponse r = Get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "Hello from Mill-IO!\n");
  EXPECT_EQ(Header(r, "Content-Type"), "text/plain; charset=utf-8");
}

TEST_F(StaticFileServiceTest, MissingAndSpecialFilesAre404) {
  EXPECT_EQ(Get("/nope.html").status, 404);
  EXPECT_EQ(Get("/a.txt/more").status, 404);
  EXPECT_EQ(Get("/sub/nope/").status, 404);
  EXPECT_EQ(Get("/fifo").status, 404);  // And no hang opening it.
}

TEST_F(StaticFileServiceTest, TraversalAttemptsAreRefused) {
  for (const char* target :
       {"/../outside/secret.txt", "/../etc/passwd", "/%2e%2e/etc/passwd",
        "/%2e%2e/outside/secret.txt", "/..%2f..%2fetc%2fpasswd",
        "/..%2foutside%2fsecret.txt", "/sub/../../outside/secret.txt",
        "/..\\outside\\secret.txt", "/%5c..%5coutside%5csecret.txt",
        "/a.txt%00.html", "/link_out.txt", "/dir_out/secret.txt", "/dir_out/",
        "/sub/relative_out.txt"}) {
    HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 403) << target;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << target;
  }
  // Symlinks that stay inside the root are fine.
  EXPECT_EQ(Get("/link_in.txt").body, "plain text\n");
}

TEST_F(StaticFileServiceTest, HeadReportsLengthWithoutReading) {
  HttpResponse r = Get("/a.txt", "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  ASSERT_TRUE(r.content_length.has_value());
  EXPECT_EQ(*r.content_length, 11u);
  EXPECT_EQ(Header(r, "Content-Type"), "text/plain; charset=utf-8");
}

TEST_F(StaticFileServiceTest, OtherMethodsAre405) {
  HttpResponse r = Get("/a.txt", "DELETE");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Header(r, "Allow"), "GET, HEAD");
}

TEST_F(StaticFileServiceTest, EndToEndThroughAConnection) {
  HttpConnection::Options options;
  options.send_date = false;
  HttpConnection conn(service_->AsHandler(), options);
  std::string out;
  EXPECT_EQ(
      conn.Feed("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                "HEAD /img.png HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /../outside/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /%2e%2e/outside/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /link_out.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                &out),
      HttpConnection::Action::kKeepOpen);
  auto responses = ParseResponses(out, {false, true});
  ASSERT_EQ(responses.size(), 6u);
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[0].body, "plain text\n");
  EXPECT_EQ(responses[0].Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(responses[1].status, 200);
  EXPECT_EQ(responses[1].Header("Content-Type"), "image/png");
  EXPECT_EQ(responses[1].Header("Content-Length"), "7");
  EXPECT_EQ(responses[1].body, "");
  EXPECT_EQ(responses[2].status, 403);
  EXPECT_EQ(responses[3].status, 403);
  EXPECT_EQ(responses[4].status, 403);
  EXPECT_EQ(responses[5].status, 404);
  EXPECT_EQ(out.find("SECRET"), std::string::npos);
}

TEST_F(StaticFileServiceTest, RawBackslashOrNulNeverServesAFile) {
  // http-parser may reject these bytes itself (400); either way, refused.
  for (const std::string& target : {std::string("/..\\outside\\secret.txt"),
                                    std::string("/a.txt\0.html", 12)}) {
    HttpConnection conn(service_->AsHandler());
    std::string out;
    conn.Feed("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", &out);
    auto responses = ParseResponses(out);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].status == 400 || responses[0].status == 403)
        << responses[0].status;
  }
}

// One service shared by several worker threads, each with its own
// connections, as the server runs it.
TEST_F(StaticFileServiceTest, ConcurrentConnectionsShareOneService) {
  constexpr int kThreads = 4;
  constexpr int kRequests = 50;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      HttpConnection conn(service_->AsHandler());
      for (int i = 0; i < kRequests; ++i) {
        std::string out;
        conn.Feed(
            "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /link_out.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            &out);
        auto responses = ParseResponses(out);
        if (responses.size() != 2 || responses[0].body != "plain text\n" ||
            responses[1].status != 403) {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(StaticFileServiceCreateTest, RejectsBadRoots) {
  StaticFileService::Options missing;
  missing.root = "/nonexistent/mill-io-test-root";
  EXPECT_EQ(StaticFileService::Create(missing).status().code(),
            absl::StatusCode::kNotFound);
  StaticFileService::Options file;
  file.root = "/etc/hostname";
  if (access(file.root.c_str(), F_OK) == 0) {
    EXPECT_EQ(StaticFileService::Create(file).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(StaticFileServiceCreateTest, RootDirectoryItselfWorksAsRoot) {
  StaticFileService::Options options;
  options.root = "/";
  auto service = StaticFileService::Create(options);
  ASSERT_TRUE(service.ok());
  EXPECT_EQ((*service)->root(), "/");
  HttpRequest request;
  request.method = "HEAD";
  request.target = "/etc/../etc/hostname";
  EXPECT_EQ((*service)->Handle(request).status, 403);
}

TEST(StaticFileServiceNoRootTest, GreetingOnlyAtSlash) {
  auto service = StaticFileService::Create({});
  ASSERT_TRUE(service.ok());
  HttpRequest request;
  request.method = "GET";
  request.target = "/";
  EXPECT_EQ((*service)->Handle(request).body, "Hello from Mill-IO!\n");
  request.target = "/index.html";
  EXPECT_EQ((*service)->Handle(request).status, 404);
  request.target = "/../etc/passwd";
  EXPECT_EQ((*service)->Handle(request).status, 403);
}

}  // namespace
}  // namespace mill::http
