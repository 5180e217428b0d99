#include "examples/jsonrpc/line_framer.h"

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

using Kind = LineFramer::Frame::Kind;

// Renders frames as strings so whole sequences compare in one assertion.
std::vector<std::string> Render(const std::vector<LineFramer::Frame>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) {
    out.push_back(f.kind == Kind::kOversized ? "<oversized>" : f.line);
  }
  return out;
}

std::vector<std::string> FeedAll(LineFramer& framer, std::string_view bytes) {
  std::vector<LineFramer::Frame> frames;
  framer.Feed(bytes, &frames);
  return Render(frames);
}

using Lines = std::vector<std::string>;

TEST(LineFramerTest, SingleLine) {
  LineFramer framer;
  EXPECT_EQ(FeedAll(framer, "{\"a\":1}\n"), Lines{"{\"a\":1}"});
  EXPECT_EQ(framer.buffered_bytes(), 0u);
}

TEST(LineFramerTest, MultipleLinesInOneFeedKeepOrder) {
  LineFramer framer;
  EXPECT_EQ(FeedAll(framer, "one\ntwo\nthree\npart"),
            (Lines{"one", "two", "three"}));
  EXPECT_EQ(framer.buffered_bytes(), 4u);
  EXPECT_EQ(FeedAll(framer, "ial\n"), Lines{"partial"});
}

TEST(LineFramerTest, ByteByByteFeedsReassemble) {
  LineFramer framer;
  const std::string stream = "alpha\nbeta\r\ngamma\n";
  Lines got;
  for (char c : stream) {
    for (auto& line : FeedAll(framer, std::string_view(&c, 1))) {
      got.push_back(line);
    }
  }
  EXPECT_EQ(got, (Lines{"alpha", "beta", "gamma"}));
}

TEST(LineFramerTest, StripsOneTrailingCarriageReturn) {
  LineFramer framer;
  EXPECT_EQ(FeedAll(framer, "a\r\nb\r\r\n"), (Lines{"a", "b\r"}));
}

TEST(LineFramerTest, SkipsBlankLines) {
  LineFramer framer;
  EXPECT_EQ(FeedAll(framer, "\n\r\n  \t \nx\n\n"), Lines{"x"});
}

TEST(LineFramerTest, LineOfExactlyMaxBytesIsAccepted) {
  LineFramer framer(8);
  EXPECT_EQ(FeedAll(framer, "12345678\n"), Lines{"12345678"});
  EXPECT_EQ(FeedAll(framer, "1234"), Lines{});
  EXPECT_EQ(FeedAll(framer, "5678\n"), Lines{"12345678"});
}

TEST(LineFramerTest, CompleteOversizedLineYieldsOneOversizedFrame) {
  LineFramer framer(8);
  EXPECT_EQ(FeedAll(framer, "123456789\nok\n"), (Lines{"<oversized>", "ok"}));
  EXPECT_FALSE(framer.discarding());
}

TEST(LineFramerTest, OversizedPartialLineIsReportedBeforeItsNewline) {
  LineFramer framer(8);
  EXPECT_EQ(FeedAll(framer, "12345"), Lines{});
  // Crossing the limit reports at once, without waiting for '\n'.
  EXPECT_EQ(FeedAll(framer, "6789"), Lines{"<oversized>"});
  EXPECT_TRUE(framer.discarding());
  EXPECT_EQ(framer.buffered_bytes(), 0u);
  // The rest of the line is dropped, however long, and reported only once.
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(FeedAll(framer, "junkjunkjunk"), Lines{});
    EXPECT_EQ(framer.buffered_bytes(), 0u);
  }
  EXPECT_EQ(FeedAll(framer, "tail\nnext\n"), Lines{"next"});
  EXPECT_FALSE(framer.discarding());
}

TEST(LineFramerTest, BufferNeverExceedsLimit) {
  LineFramer framer(16);
  std::vector<LineFramer::Frame> frames;
  for (int i = 0; i < 1000; ++i) {
    framer.Feed("abc", &frames);
    EXPECT_LE(framer.buffered_bytes(), 16u);
  }
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].kind, Kind::kOversized);
}

TEST(LineFramerTest, DefaultLimitIsOneMebibyte) {
  LineFramer framer;
  EXPECT_EQ(framer.max_line_bytes(), size_t{1} << 20);
  std::string big(size_t{1} << 20, 'x');
  EXPECT_EQ(FeedAll(framer, big + "\n"), Lines{big});
  EXPECT_EQ(FeedAll(framer, big + "y\n"), Lines{"<oversized>"});
}

// Take frames lines in the caller's buffer: views into it, no copy, a
// partial line left in place, early stop on request.
TEST(LineFramerTakeTest, FramesInPlaceAndLeavesThePartialLine) {
  LineFramer framer(16);
  ByteBuffer input;
  input.Append("one\r\n  \ntwo\nthree\npart");
  std::vector<std::string> lines;
  framer.Take(input, [&](const LineFramer::FrameView& f) {
    EXPECT_EQ(f.kind, Kind::kLine);
    lines.emplace_back(f.line);
    return lines.size() < 2;  // stop after "two"
  });
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(input.view(), "three\npart");
  const char* storage = input.data();
  framer.Take(input, [&](const LineFramer::FrameView& f) {
    EXPECT_EQ(f.line.data(), storage);  // a view into the buffer
    lines.emplace_back(f.line);
    return true;
  });
  EXPECT_EQ(lines.back(), "three");
  EXPECT_EQ(input.view(), "part");
  // Over the limit without a '\n': one oversized frame at once, the bytes
  // dropped, then the rest of that line up to its '\n'.
  input.Append(std::string(20, 'x'));
  int oversized = 0;
  framer.Take(input, [&](const LineFramer::FrameView& f) {
    oversized += f.kind == Kind::kOversized;
    return true;
  });
  EXPECT_EQ(oversized, 1);
  EXPECT_TRUE(input.empty());
  EXPECT_TRUE(framer.discarding());
  input.Append("yyy\nok\n");
  lines.clear();
  framer.Take(input, [&](const LineFramer::FrameView& f) {
    lines.emplace_back(f.line);
    return true;
  });
  EXPECT_EQ(lines, (std::vector<std::string>{"ok"}));
  EXPECT_FALSE(framer.discarding());
}

}  // namespace
}  // namespace mill::jsonrpc
