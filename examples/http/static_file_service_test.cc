#include "examples/http/static_file_service.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
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
using testing::FeedToString;
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

// The service's pinned clock, and the mtime of a.txt and digits.txt (well
// before it, so that Last-Modified is a strong validator).
constexpr std::time_t kNow = 1800000000;    // Fri, 15 Jan 2027 08:00:00 GMT
constexpr std::time_t kMtime = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT
constexpr long kMtimeNanos = 123456789;
constexpr char kMtimeText[] = "Tue, 14 Nov 2023 22:13:20 GMT";

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
    WriteFile(root_ + "/digits.txt", "0123456789");
    WriteFile(root_ + "/empty.txt", "");
    SetMtime(root_ + "/a.txt", kMtime, kMtimeNanos);
    SetMtime(root_ + "/digits.txt", kMtime, kMtimeNanos);

    StaticFileService::Options options;
    options.root = root_;
    options.clock = [] { return kNow; };
    auto service = StaticFileService::Create(options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  void TearDown() override {
    // Best effort; TEST_TMPDIR is discarded by Bazel anyway.
    std::string cmd = "rm -rf '" + base_ + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  HttpResponse Get(
      const std::string& target, const std::string& method = "GET",
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest request;
    request.method = method;
    request.target = target;
    request.headers = std::move(headers);
    return service_->Handle(request);
  }

  // GET with one extra header.
  HttpResponse GetWith(const std::string& target, const std::string& name,
                       const std::string& value) {
    return Get(target, "GET", {{name, value}});
  }

  static void SetMtime(const std::string& path, std::time_t sec, long nsec) {
    const struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  }

  // The ETag the service should announce for `path` (inode, size and
  // nanosecond mtime in hex).
  static std::string ExpectedEtag(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    char buf[80];
    std::snprintf(
        buf, sizeof(buf), "\"%llx-%llx-%llx\"",
        static_cast<unsigned long long>(st.st_ino),
        static_cast<unsigned long long>(st.st_size),
        static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull +
            static_cast<unsigned long long>(st.st_mtim.tv_nsec));
    return buf;
  }

  // The body a transport would send: `body`, or the file range read back.
  static std::string Body(const HttpResponse& r) {
    if (r.file == nullptr) return r.body;
    EXPECT_EQ(r.body, "") << "a file response with bytes in body too";
    std::string out;
    const absl::Status status =
        ReadFileRange(*r.file, r.file_offset, r.file_length,
                      [&out](std::string_view b) { out.append(b); });
    EXPECT_TRUE(status.ok()) << status;
    return out;
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
    EXPECT_EQ(Body(r), name);
    EXPECT_EQ(Header(r, "Content-Type"), type) << name;
  }
  HttpResponse text = Get("/a.txt");
  EXPECT_EQ(Body(text), "plain text\n");
  EXPECT_EQ(Header(text, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(Body(Get("/binary.png")), std::string("\x89PNG\r\n\x1a\n\0\0", 10));
  EXPECT_EQ(Body(Get("/with%20space.txt")), "spaced\n");
  EXPECT_EQ(Body(Get("/a.txt?download=1#top")), "plain text\n");
  EXPECT_EQ(Body(Get("http://example.com/a.txt")), "plain text\n");
  EXPECT_EQ(Body(Get("//a.txt")), "plain text\n");
  EXPECT_EQ(Body(Get("/./a.txt")), "plain text\n");
}

TEST_F(StaticFileServiceTest, DirectoriesServeTheirIndex) {
  HttpResponse root = Get("/");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(Body(root), "<h1>home</h1>\n");
  EXPECT_EQ(Header(root, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(Body(Get("/sub/")), "<p>sub</p>\n");
  EXPECT_EQ(Body(Get("/sub")), "<p>sub</p>\n");
  EXPECT_EQ(Get("/empty/").status, 404);
  EXPECT_EQ(Body(Get("/index.html")), "<h1>home</h1>\n");
}

TEST_F(StaticFileServiceTest, RootWithoutIndexAnswersTheGreeting) {
  ASSERT_EQ(unlink((root_ + "/index.html").c_str()), 0);
  HttpResponse r = Get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), "Hello from Mill-IO!\n");
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
    EXPECT_EQ(Body(r).find("SECRET"), std::string::npos) << target;
  }
  // Symlinks that stay inside the root are fine.
  EXPECT_EQ(Body(Get("/link_in.txt")), "plain text\n");
}

TEST_F(StaticFileServiceTest, HeadReportsLengthWithoutReading) {
  HttpResponse r = Get("/a.txt", "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  ASSERT_TRUE(r.content_length.has_value());
  EXPECT_EQ(*r.content_length, 11u);
  EXPECT_EQ(r.file, nullptr);  // Opened (to answer as GET would), not kept.
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
      FeedToString(conn,
                   "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
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
    FeedToString(conn, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", &out);
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
        FeedToString(conn,
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

// ---- Files are handed over open, never read ----

TEST_F(StaticFileServiceTest, FileResponsesCarryTheOpenFileNotItsBytes) {
  HttpResponse r = Get("/a.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  ASSERT_NE(r.file, nullptr);
  EXPECT_EQ(r.file_offset, 0u);
  EXPECT_EQ(r.file_length, 11u);
  EXPECT_EQ(r.ContentLength(), 11u);
  EXPECT_EQ(r.file->size(), 11u);
  EXPECT_EQ(r.file->mtime_sec(), kMtime);
  EXPECT_EQ(r.file->mtime_nsec(), kMtimeNanos);
  // The descriptor is the file asked for.
  struct stat by_fd;
  struct stat by_path;
  ASSERT_EQ(fstat(r.file->fd(), &by_fd), 0);
  ASSERT_EQ(stat((root_ + "/a.txt").c_str(), &by_path), 0);
  EXPECT_EQ(by_fd.st_ino, by_path.st_ino);
  EXPECT_EQ(r.file->inode(), by_path.st_ino);
  EXPECT_EQ(Body(r), "plain text\n");
  // The last share closes it.
  const int fd = r.file->fd();
  r.file.reset();
  errno = 0;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(StaticFileServiceTest, FileResponsesHaveValidatorsAndAcceptRanges) {
  HttpResponse r = Get("/a.txt");
  EXPECT_EQ(Header(r, "Last-Modified"), kMtimeText);
  EXPECT_EQ(Header(r, "ETag"), ExpectedEtag(root_ + "/a.txt"));
  EXPECT_EQ(Header(r, "ETag").substr(0, 1), "\"");  // Strong: no W/.
  EXPECT_EQ(Header(r, "Accept-Ranges"), "bytes");
  // HEAD announces the same.
  HttpResponse head = Get("/a.txt", "HEAD");
  EXPECT_EQ(head.headers, r.headers);
  EXPECT_EQ(head.file, nullptr);
  // Touching the file changes the ETag; so does a change of size.
  const std::string before = Header(r, "ETag");
  SetMtime(root_ + "/a.txt", kMtime, kMtimeNanos + 1);
  const std::string touched = Header(Get("/a.txt"), "ETag");
  EXPECT_NE(touched, before);
  WriteFile(root_ + "/a.txt", "plain text!\n");
  SetMtime(root_ + "/a.txt", kMtime, kMtimeNanos + 1);
  EXPECT_NE(Header(Get("/a.txt"), "ETag"), touched);
  // The greeting is no file.
  ASSERT_EQ(unlink((root_ + "/index.html").c_str()), 0);
  HttpResponse greeting = Get("/");
  EXPECT_EQ(Header(greeting, "ETag"), "<absent>");
  EXPECT_EQ(Header(greeting, "Accept-Ranges"), "<absent>");
  EXPECT_EQ(GetWith("/", "Range", "bytes=0-1").status, 200);
}

TEST_F(StaticFileServiceTest, LastModifiedInTheFutureIsClampedToNow) {
  SetMtime(root_ + "/a.txt", kNow + 3600, 0);
  EXPECT_EQ(Header(Get("/a.txt"), "Last-Modified"), FormatHttpDate(kNow));
}

// ---- Range ----

TEST_F(StaticFileServiceTest, SingleRangesAre206WithContentRange) {
  struct Case {
    const char* range;
    const char* content_range;
    const char* body;
  };
  for (const Case& c : {
           Case{"bytes=0-3", "bytes 0-3/10", "0123"},
           Case{"bytes=2-", "bytes 2-9/10", "23456789"},
           Case{"bytes=-3", "bytes 7-9/10", "789"},
           Case{"bytes=-30", "bytes 0-9/10", "0123456789"},
           Case{"bytes=5-100", "bytes 5-9/10", "56789"},
           Case{"bytes=9-9", "bytes 9-9/10", "9"},
           Case{"bytes=0-", "bytes 0-9/10", "0123456789"},
           Case{"bytes=0-99999999999999999999999", "bytes 0-9/10",
                "0123456789"},
           Case{"BYTES=1-1", "bytes 1-1/10", "1"},
           Case{"bytes=1-2,", "bytes 1-2/10", "12"},
           Case{" bytes=, 1-2 ", "bytes 1-2/10", "12"},
       }) {
    HttpResponse r = GetWith("/digits.txt", "Range", c.range);
    EXPECT_EQ(r.status, 206) << c.range;
    EXPECT_EQ(Header(r, "Content-Range"), c.content_range) << c.range;
    EXPECT_EQ(r.ContentLength(), std::string(c.body).size()) << c.range;
    EXPECT_EQ(Body(r), c.body) << c.range;
    EXPECT_EQ(Header(r, "Content-Type"), "text/plain; charset=utf-8");
    EXPECT_EQ(Header(r, "Accept-Ranges"), "bytes");
    EXPECT_EQ(Header(r, "ETag"), ExpectedEtag(root_ + "/digits.txt"));
  }
}

TEST_F(StaticFileServiceTest, UnsatisfiableRangesAre416WithTheSize) {
  for (const char* range : {"bytes=10-", "bytes=10-20", "bytes=-0",
                            "bytes=99999999999999999999-"}) {
    HttpResponse r = GetWith("/digits.txt", "Range", range);
    EXPECT_EQ(r.status, 416) << range;
    EXPECT_EQ(Header(r, "Content-Range"), "bytes */10") << range;
    EXPECT_EQ(r.file, nullptr) << range;
    EXPECT_EQ(r.body, "Range Not Satisfiable\n");
  }
  EXPECT_EQ(Header(GetWith("/empty.txt", "Range", "bytes=0-"), "Content-Range"),
            "bytes */0");
}

TEST_F(StaticFileServiceTest, InvalidOrMultipleRangesGetTheWholeFile) {
  for (const char* range :
       {"bytes=3-1", "bytes=a-b", "bytes=", "bytes=-", "bytes=1-2-3",
        "items=0-1", "bytes 0-1", "bytes=0-1;", "bytes=--1", "=0-1",
        "bytes=+1-2", "bytes=1 -2", "", "bytes=0-1,3-4", "bytes=0-1, 20-30",
        "bytes=20-30,40-50"}) {
    HttpResponse r = GetWith("/digits.txt", "Range", range);
    EXPECT_EQ(r.status, 200) << range;
    EXPECT_EQ(Header(r, "Content-Range"), "<absent>") << range;
    EXPECT_EQ(Body(r), "0123456789") << range;
  }
  // Two Range lines are one list of two ranges.
  HttpResponse two = Get("/digits.txt", "GET",
                         {{"Range", "bytes=0-1"}, {"range", "bytes=3-4"}});
  EXPECT_EQ(two.status, 200);
  // A suffix of an empty file has no bytes to name: the whole (empty) file.
  HttpResponse empty = GetWith("/empty.txt", "Range", "bytes=-5");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.ContentLength(), 0u);
}

TEST_F(StaticFileServiceTest, RangeOnHeadGivesThe206Headers) {
  HttpResponse head = Get("/digits.txt", "HEAD", {{"Range", "bytes=2-5"}});
  EXPECT_EQ(head.status, 206);
  EXPECT_EQ(Header(head, "Content-Range"), "bytes 2-5/10");
  EXPECT_EQ(head.file, nullptr);
  ASSERT_TRUE(head.content_length.has_value());
  EXPECT_EQ(*head.content_length, 4u);
  EXPECT_EQ(head.headers, GetWith("/digits.txt", "Range", "bytes=2-5").headers);
  EXPECT_EQ(Get("/digits.txt", "HEAD", {{"Range", "bytes=20-"}}).status, 416);
}

TEST(SelectByteRangeTest, Rules) {
  using Kind = ByteRangeSelection::Kind;
  struct Case {
    const char* header;
    uint64_t size;
    Kind kind;
    uint64_t offset;
    uint64_t length;
  };
  for (const Case& c : {
           Case{"bytes=0-0", 1, Kind::kPartial, 0, 1},
           Case{"bytes=0-", 0, Kind::kUnsatisfiable, 0, 0},
           Case{"bytes=-1", 0, Kind::kWhole, 0, 0},
           Case{"bytes=-18446744073709551615", 5, Kind::kPartial, 0, 5},
           Case{"bytes=18446744073709551614-18446744073709551615",
                18446744073709551615ull, Kind::kPartial,
                18446744073709551614ull, 1},
           Case{"bytes=5-4", 10, Kind::kWhole, 0, 0},
           Case{"bytes=\t2-3\t", 10, Kind::kPartial, 2, 2},
       }) {
    const ByteRangeSelection s = SelectByteRange(c.header, c.size);
    EXPECT_EQ(s.kind, c.kind) << c.header;
    EXPECT_EQ(s.offset, c.offset) << c.header;
    EXPECT_EQ(s.length, c.length) << c.header;
  }
}

// ---- Conditional requests ----

TEST_F(StaticFileServiceTest, IfNoneMatchGives304) {
  const std::string etag = ExpectedEtag(root_ + "/a.txt");
  for (const std::string& value :
       {etag, "W/" + etag, "\"other\", " + etag, "\"other\"," + etag + ",",
        std::string("*")}) {
    HttpResponse r = GetWith("/a.txt", "If-None-Match", value);
    EXPECT_EQ(r.status, 304) << value;
    EXPECT_EQ(r.file, nullptr) << value;
    EXPECT_EQ(r.body, "") << value;
    EXPECT_EQ(Header(r, "ETag"), etag) << value;
    EXPECT_EQ(Header(r, "Last-Modified"), kMtimeText) << value;
    EXPECT_EQ(Header(r, "Content-Type"), "<absent>") << value;
  }
  for (const std::string& value :
       {std::string("\"other\""), std::string("abc"), etag.substr(1),
        std::string("\"a\" garbage ") + etag, std::string("")}) {
    HttpResponse r = GetWith("/a.txt", "If-None-Match", value);
    EXPECT_EQ(r.status, 200) << value;
    EXPECT_EQ(Body(r), "plain text\n") << value;
  }
  // Several lines form one list.
  EXPECT_EQ(Get("/a.txt", "GET",
                {{"If-None-Match", "\"x\""}, {"If-None-Match", etag}})
                .status,
            304);
  EXPECT_EQ(Get("/a.txt", "HEAD", {{"If-None-Match", etag}}).status, 304);
  // A file that does not exist matches nothing, not even "*".
  EXPECT_EQ(GetWith("/nope.txt", "If-None-Match", "*").status, 404);
}

TEST_F(StaticFileServiceTest, IfModifiedSinceGives304InAnyDateFormat) {
  for (const char* date :
       {kMtimeText, "Tuesday, 14-Nov-23 22:13:20 GMT",
        "Tue Nov 14 22:13:20 2023", "Tue, 14 Nov 2023 22:13:21 GMT",
        "Wed, 15 Nov 2023 00:00:00 GMT"}) {
    HttpResponse r = GetWith("/a.txt", "If-Modified-Since", date);
    EXPECT_EQ(r.status, 304) << date;
    EXPECT_EQ(r.file, nullptr) << date;
    EXPECT_EQ(Header(r, "Last-Modified"), kMtimeText) << date;
  }
  for (const char* date :
       {"Tue, 14 Nov 2023 22:13:19 GMT", "Tue Nov 14 22:13:19 2023",
        "yesterday", "Tue, 14 Nov 2023 22:13:20", "1700000000", ""}) {
    HttpResponse r = GetWith("/a.txt", "If-Modified-Since", date);
    EXPECT_EQ(r.status, 200) << date;
    EXPECT_EQ(Body(r), "plain text\n") << date;
  }
  // More than one line: ignored.
  EXPECT_EQ(Get("/a.txt", "GET",
                {{"If-Modified-Since", kMtimeText},
                 {"If-Modified-Since", kMtimeText}})
                .status,
            200);
}

TEST_F(StaticFileServiceTest, IfNoneMatchTakesPrecedenceOverIfModifiedSince) {
  const std::string etag = ExpectedEtag(root_ + "/a.txt");
  // The tag differs: 200 even though the date alone would give 304.
  EXPECT_EQ(Get("/a.txt", "GET",
                {{"If-None-Match", "\"other\""},
                 {"If-Modified-Since", "Wed, 15 Nov 2023 00:00:00 GMT"}})
                .status,
            200);
  // The tag matches: 304 even though the date alone would give 200.
  EXPECT_EQ(Get("/a.txt", "GET",
                {{"If-Modified-Since", "Mon, 01 Jan 1990 00:00:00 GMT"},
                 {"If-None-Match", etag}})
                .status,
            304);
}

TEST_F(StaticFileServiceTest, ConditionalsComeBeforeRanges) {
  HttpResponse r =
      Get("/digits.txt", "GET",
          {{"Range", "bytes=0-1"},
           {"If-None-Match", ExpectedEtag(root_ + "/digits.txt")}});
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(Header(r, "Content-Range"), "<absent>");
}

TEST_F(StaticFileServiceTest, IfRangeHonoursTheRangeOnlyWhenUnchanged) {
  const std::string etag = ExpectedEtag(root_ + "/digits.txt");
  const auto with_if_range = [&](const std::string& value) {
    return Get("/digits.txt", "GET",
               {{"Range", "bytes=0-1"}, {"If-Range", value}});
  };
  EXPECT_EQ(with_if_range(etag).status, 206);
  EXPECT_EQ(Body(with_if_range(etag)), "01");
  EXPECT_EQ(with_if_range(kMtimeText).status, 206);
  EXPECT_EQ(with_if_range("Tue Nov 14 22:13:20 2023").status, 206);
  for (const std::string& changed :
       {"W/" + etag, std::string("\"other\""), etag + " junk",
        std::string("Tue, 14 Nov 2023 22:13:21 GMT"),
        std::string("Tue, 14 Nov 2023 22:13:19 GMT"), std::string("garbage"),
        std::string("")}) {
    HttpResponse r = with_if_range(changed);
    EXPECT_EQ(r.status, 200) << changed;
    EXPECT_EQ(Body(r), "0123456789") << changed;
  }
  // A date in the second the file was modified is weak: it may have changed
  // again within that second.
  SetMtime(root_ + "/digits.txt", kNow, 0);
  EXPECT_EQ(with_if_range(FormatHttpDate(kNow)).status, 200);
  EXPECT_EQ(with_if_range(ExpectedEtag(root_ + "/digits.txt")).status, 206);
  // Without a Range, If-Range changes nothing.
  EXPECT_EQ(GetWith("/digits.txt", "If-Range", "\"other\"").status, 200);
}

// ---- Open errors ----

// Restores RLIMIT_NOFILE when it goes out of scope.
class NofileLimitRestorer {
 public:
  NofileLimitRestorer() { EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &saved_), 0); }
  ~NofileLimitRestorer() { EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &saved_), 0); }
  const struct rlimit& saved() const { return saved_; }

 private:
  struct rlimit saved_ {};
};

TEST_F(StaticFileServiceTest, DescriptorExhaustionIs503NotNotFound) {
  // The lowest free descriptor: with the soft limit there, open() fails
  // with EMFILE (the test is single-threaded: nobody else opens meanwhile).
  const int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(probe, 0);
  close(probe);
  HttpResponse get;
  HttpResponse head;
  HttpResponse ranged;
  HttpResponse missing;
  {
    NofileLimitRestorer restorer;
    struct rlimit low = restorer.saved();
    low.rlim_cur = static_cast<rlim_t>(probe);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    errno = 0;
    const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(fd, -1);
    EXPECT_EQ(errno, EMFILE);
    if (fd >= 0) close(fd);
    get = Get("/a.txt");
    head = Get("/a.txt", "HEAD");
    ranged = GetWith("/digits.txt", "Range", "bytes=0-1");
    missing = Get("/nope.txt");
  }
  for (const HttpResponse* r : {&get, &head, &ranged}) {
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(Header(*r, "Retry-After"), "1");
    EXPECT_EQ(r->body, "Service Unavailable\n");
    EXPECT_EQ(r->file, nullptr);
  }
  EXPECT_EQ(missing.status, 404);
  // With descriptors back, the same file is served.
  EXPECT_EQ(Body(Get("/a.txt")), "plain text\n");
}

// Unreadable files are 403 for GET and HEAD alike, while a readable file in
// the same directory is served. As root the check runs in a forked child
// that drops the capabilities that let root ignore file modes.
TEST(StaticFileServicePermissionTest, UnreadableFileIs403ForGetAndHead) {
  std::string templ = ::testing::TempDir() + "/eacces_XXXXXX";
  ASSERT_NE(mkdtemp(templ.data()), nullptr);
  const std::string dir = templ;
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  WriteFile(dir + "/locked.txt", "locked\n");
  WriteFile(dir + "/open.txt", "open\n");
  ASSERT_EQ(chmod((dir + "/locked.txt").c_str(), 0), 0);
  ASSERT_EQ(chmod((dir + "/open.txt").c_str(), 0644), 0);
  StaticFileService::Options options;
  options.root = dir;
  auto service = StaticFileService::Create(options);
  ASSERT_TRUE(service.ok()) << service.status();
  // Exit code: a bit per wrong answer.
  const auto check = [&service]() -> int {
    const auto status = [&service](const char* method, const char* target) {
      HttpRequest request;
      request.method = method;
      request.target = target;
      return (*service)->Handle(request).status;
    };
    int failures = 0;
    if (status("GET", "/locked.txt") != 403) failures |= 1;
    if (status("HEAD", "/locked.txt") != 403) failures |= 2;
    if (status("GET", "/open.txt") != 200) failures |= 4;
    if (status("HEAD", "/open.txt") != 200) failures |= 8;
    return failures;
  };
  if (geteuid() != 0) {
    EXPECT_EQ(check(), 0);
  } else {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Root ignores file modes through CAP_DAC_OVERRIDE and
      // CAP_DAC_READ_SEARCH: drop them (this works inside the user
      // namespace of a sandbox too, where switching uid may not).
      __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[2]{};
      if (syscall(SYS_capget, &header, data) != 0) _exit(64);
      const uint32_t dac =
          (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
      data[0].effective &= ~dac;
      data[0].permitted &= ~dac;
      data[0].inheritable &= ~dac;
      if (syscall(SYS_capset, &header, data) != 0) _exit(64);
      _exit(check());
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFEXITED(wstatus));
    EXPECT_EQ(WEXITSTATUS(wstatus), 0)
        << "1: GET locked, 2: HEAD locked, 4: GET open, 8: HEAD open, "
           "64: could not drop the DAC capabilities";
  }
  EXPECT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
}

// ---- Through a connection ----

TEST_F(StaticFileServiceTest, RangesAndConditionalsThroughAConnection) {
  HttpConnection::Options options;
  options.send_date = false;
  HttpConnection conn(service_->AsHandler(), options);
  const std::string etag = ExpectedEtag(root_ + "/digits.txt");
  std::string out;
  EXPECT_EQ(FeedToString(conn,
                         "GET /digits.txt HTTP/1.1\r\nHost: x\r\n"
                         "Range: bytes=2-5\r\n\r\n"
                         "GET /digits.txt HTTP/1.1\r\nHost: x\r\n"
                         "If-None-Match: " +
                             etag +
                             "\r\n\r\n"
                             "GET /digits.txt HTTP/1.1\r\nHost: x\r\n"
                             "Range: bytes=50-\r\n\r\n"
                             "HEAD /digits.txt HTTP/1.1\r\nHost: x\r\n"
                             "Range: bytes=-2\r\n\r\n"
                             "GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                         &out),
            HttpConnection::Action::kKeepOpen);
  auto responses = ParseResponses(out, {false, false, false, true, false});
  ASSERT_EQ(responses.size(), 5u);
  EXPECT_EQ(responses[0].status_line, "HTTP/1.1 206 Partial Content");
  EXPECT_EQ(responses[0].Header("Content-Range"), "bytes 2-5/10");
  EXPECT_EQ(responses[0].Header("Content-Length"), "4");
  EXPECT_EQ(responses[0].body, "2345");
  EXPECT_EQ(responses[1].status_line, "HTTP/1.1 304 Not Modified");
  EXPECT_EQ(responses[1].HeaderCount("Content-Length"), 0);
  EXPECT_EQ(responses[1].Header("ETag"), etag);
  EXPECT_EQ(responses[1].body, "");
  EXPECT_EQ(responses[2].status_line, "HTTP/1.1 416 Range Not Satisfiable");
  EXPECT_EQ(responses[2].Header("Content-Range"), "bytes */10");
  EXPECT_EQ(responses[2].body, "Range Not Satisfiable\n");
  EXPECT_EQ(responses[3].status, 206);
  EXPECT_EQ(responses[3].Header("Content-Range"), "bytes 8-9/10");
  EXPECT_EQ(responses[3].Header("Content-Length"), "2");
  EXPECT_EQ(responses[4].status, 200);
  EXPECT_EQ(responses[4].Header("Accept-Ranges"), "bytes");
  EXPECT_EQ(responses[4].body, "0123456789");
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
