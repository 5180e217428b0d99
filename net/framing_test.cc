// Tests of the framers (net/framing.h): lines in each delimiter mode and
// length-prefixed frames in each width, fed whole and byte by byte; the
// limit refused before the oversized frame is buffered; the encoder.
#include "net/framing.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "net/byte_buffer.h"

namespace mill {
namespace {

using Frames = std::vector<std::string>;

// Feeds `stream` in chunks of `chunk` bytes (0: whole), taking every frame
// after each; an error is recorded as "!" + its code name and, for a line
// framer, the framer goes on.
template <typename Framer>
Frames FeedAll(Framer& framer, absl::string_view stream, size_t chunk,
               size_t* max_buffered = nullptr) {
  ByteBuffer input;
  Frames frames;
  if (chunk == 0) chunk = stream.size() + 1;
  for (size_t off = 0; off < stream.size(); off += chunk) {
    input.Append(stream.substr(off, chunk));
    while (true) {
      absl::StatusOr<std::optional<absl::string_view>> frame =
          framer.Next(input);
      if (!frame.ok()) {
        frames.push_back(
            "!" + std::string(absl::StatusCodeToString(frame.status().code())));
        if (frame.status().code() != absl::StatusCode::kResourceExhausted ||
            !std::is_same_v<Framer, LineFramer>) {
          return frames;
        }
        continue;
      }
      if (!frame->has_value()) break;
      frames.emplace_back(**frame);
    }
    if (max_buffered != nullptr && input.size() > *max_buffered) {
      *max_buffered = input.size();
    }
  }
  return frames;
}

LineFramer MakeLines(LineDelimiter delimiter, size_t max, bool keep = false) {
  LineFramerOptions options;
  options.delimiter = delimiter;
  options.max_line_bytes = max;
  options.keep_delimiter = keep;
  absl::StatusOr<LineFramer> framer = LineFramer::Create(options);
  EXPECT_TRUE(framer.ok()) << framer.status();
  return *std::move(framer);
}

TEST(LineFramer, LfModeSplitsOnLfAndKeepsACarriageReturn) {
  for (size_t chunk : {0, 1, 2, 3}) {
    LineFramer framer = MakeLines(LineDelimiter::kLf, 100);
    EXPECT_EQ(FeedAll(framer, "one\ntwo\r\n\nthree\npartial", chunk),
              (Frames{"one", "two\r", "", "three"}))
        << chunk;
  }
}

TEST(LineFramer, CrlfModeTreatsABareLfAsData) {
  for (size_t chunk : {0, 1, 2, 3}) {
    LineFramer framer = MakeLines(LineDelimiter::kCrlf, 100);
    EXPECT_EQ(FeedAll(framer, "a\nb\r\nc\rd\r\n\r\r\n", chunk),
              (Frames{"a\nb", "c\rd", "\r"}))
        << chunk;
  }
}

TEST(LineFramer, LfOrCrlfModeTakesEither) {
  for (size_t chunk : {0, 1, 2}) {
    LineFramer framer = MakeLines(LineDelimiter::kLfOrCrlf, 100);
    EXPECT_EQ(FeedAll(framer, "a\r\nb\nc\r\r\n\r\n", chunk),
              (Frames{"a", "b", "c\r", ""}))
        << chunk;
  }
}

TEST(LineFramer, KeepDelimiterReturnsItWithTheLine) {
  LineFramer crlf = MakeLines(LineDelimiter::kCrlf, 100, /*keep=*/true);
  EXPECT_EQ(FeedAll(crlf, "a\r\nb\nc\r\n", 1), (Frames{"a\r\n", "b\nc\r\n"}));
  LineFramer either = MakeLines(LineDelimiter::kLfOrCrlf, 100, true);
  EXPECT_EQ(FeedAll(either, "a\r\nb\n", 1), (Frames{"a\r\n", "b\n"}));
}

TEST(LineFramer, FramesAreViewsIntoTheInputBuffer) {
  LineFramer framer = MakeLines(LineDelimiter::kLf, 100);
  ByteBuffer input;
  input.Append("first\nsecond\n");
  const char* base = input.data();
  absl::StatusOr<std::optional<absl::string_view>> a = framer.Next(input);
  absl::StatusOr<std::optional<absl::string_view>> b = framer.Next(input);
  ASSERT_TRUE(a.ok() && a->has_value() && b.ok() && b->has_value());
  EXPECT_EQ((*a)->data(), base);  // no copy
  EXPECT_EQ((*b)->data(), base + 6);
  EXPECT_EQ(**a, "first");  // still valid after the second Next
  EXPECT_EQ(**b, "second");
  EXPECT_TRUE(input.empty());
}

// The limit counts the delimiter: with 4 bytes, "abc\n" fits, "abcd\n"
// does not, and "abc\r\n" does not in CRLF modes.
TEST(LineFramer, TheLimitCountsTheDelimiterAndIsExact) {
  for (size_t chunk : {0, 1}) {
    LineFramer lf = MakeLines(LineDelimiter::kLf, 4);
    EXPECT_EQ(FeedAll(lf, "abc\nabcd\nok\n", chunk),
              (Frames{"abc", "!RESOURCE_EXHAUSTED", "ok"}))
        << chunk;
    LineFramer crlf = MakeLines(LineDelimiter::kCrlf, 4);
    EXPECT_EQ(FeedAll(crlf, "ab\r\nabc\r\nok\r\n", chunk),
              (Frames{"ab", "!RESOURCE_EXHAUSTED", "ok"}))
        << chunk;
    LineFramer either = MakeLines(LineDelimiter::kLfOrCrlf, 4);
    EXPECT_EQ(FeedAll(either, "abc\nabc\r\nab\r\n", chunk),
              (Frames{"abc", "!RESOURCE_EXHAUSTED", "ab"}))
        << chunk;
  }
}

// An endless line is refused once it cannot fit, and its bytes are dropped
// as they come: the buffer never holds more than the limit.
TEST(LineFramer, AnEndlessLineIsRefusedEarlyAndNeverBuffered) {
  for (LineDelimiter d :
       {LineDelimiter::kLf, LineDelimiter::kCrlf, LineDelimiter::kLfOrCrlf}) {
    LineFramer framer = MakeLines(d, 64);
    const std::string stream = std::string(100000, 'x') + "\r\nnext\r\n";
    size_t max_buffered = 0;
    const Frames frames = FeedAll(framer, stream, 1000, &max_buffered);
    const std::string next =
        d == LineDelimiter::kLf ? std::string("next\r") : std::string("next");
    EXPECT_EQ(frames, (Frames{"!RESOURCE_EXHAUSTED", next}))
        << static_cast<int>(d);
    EXPECT_LE(max_buffered, 64u);
  }
}

TEST(LineFramer, RefusesEarlyByteByByteAndSaysWhy) {
  LineFramer framer = MakeLines(LineDelimiter::kLf, 8);
  ByteBuffer input;
  absl::Status error;
  size_t fed = 0;
  while (error.ok() && fed < 100) {
    input.Append("y");
    ++fed;
    absl::StatusOr<std::optional<absl::string_view>> frame = framer.Next(input);
    if (!frame.ok()) {
      error = frame.status();
    } else {
      EXPECT_FALSE(frame->has_value());
    }
  }
  // 8 bytes without a '\n' make a line of at least 9.
  EXPECT_EQ(fed, 8u);
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(error.message(),
            "line of at least 9 bytes (no LF yet) exceeds the limit of 8 "
            "bytes");
  EXPECT_TRUE(input.empty());
  EXPECT_TRUE(framer.discarding());
}

// CRLF split across the skip: the '\r' is the last byte dropped, the '\n'
// comes next.
TEST(LineFramer, CrlfEndingAnOversizedLineMaySplitAcrossReads) {
  LineFramer framer = MakeLines(LineDelimiter::kCrlf, 4);
  EXPECT_EQ(FeedAll(framer, "abcdefg\r\nhi\r\n", 1),
            (Frames{"!RESOURCE_EXHAUSTED", "hi"}));
  LineFramer chunked = MakeLines(LineDelimiter::kCrlf, 4);
  EXPECT_EQ(FeedAll(chunked, "abcdefg\r\nhi\r\n", 8),
            (Frames{"!RESOURCE_EXHAUSTED", "hi"}));
}

TEST(LineFramer, RejectsALimitThatCannotHoldTheDelimiter) {
  LineFramerOptions options;
  options.max_line_bytes = 0;
  EXPECT_EQ(LineFramer::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.max_line_bytes = 1;
  EXPECT_TRUE(LineFramer::Create(options).ok());
  options.delimiter = LineDelimiter::kCrlf;
  EXPECT_EQ(LineFramer::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

LengthPrefixFramer MakePrefix(int width, bool includes, size_t max) {
  LengthPrefixOptions options;
  options.header_bytes = width;
  options.length_includes_header = includes;
  options.max_payload_bytes = max;
  absl::StatusOr<LengthPrefixFramer> framer =
      LengthPrefixFramer::Create(options);
  EXPECT_TRUE(framer.ok()) << framer.status();
  return *std::move(framer);
}

TEST(LengthPrefixFramer, RoundTripsEveryWidthWholeAndByteByByte) {
  for (int width : {1, 2, 4, 8}) {
    for (bool includes : {false, true}) {
      LengthPrefixFramer framer = MakePrefix(width, includes, 200);
      std::string stream;
      const Frames payloads = {"hello", "", std::string(200, 'z'), "x"};
      for (const std::string& p : payloads) {
        absl::StatusOr<std::string> encoded = framer.Encode(p);
        ASSERT_TRUE(encoded.ok()) << encoded.status();
        EXPECT_EQ(encoded->size(), width + p.size());
        stream += *encoded;
      }
      for (size_t chunk : {0, 1, 3}) {
        LengthPrefixFramer reader = MakePrefix(width, includes, 200);
        EXPECT_EQ(FeedAll(reader, stream, chunk), payloads)
            << width << " " << includes << " " << chunk;
      }
    }
  }
}

TEST(LengthPrefixFramer, HeaderIsBigEndianAndMayCountItself) {
  LengthPrefixFramer plain = MakePrefix(4, false, 1 << 30);
  EXPECT_EQ(*plain.Encode("ab"), std::string("\0\0\0\2ab", 6));
  LengthPrefixFramer with_header = MakePrefix(2, true, 1000);
  EXPECT_EQ(*with_header.Encode("ab"), std::string("\0\4ab", 4));
  std::string header;
  ASSERT_TRUE(plain.AppendHeader(0x010203, &header).ok());
  EXPECT_EQ(header, std::string("\0\1\2\3", 4));
}

// A peer announcing 4 GiB is refused at the header, with nothing buffered
// or consumed, and the refusal is final.
TEST(LengthPrefixFramer, RefusesAnOversizedLengthAtTheHeader) {
  LengthPrefixFramer framer = MakePrefix(4, false, 1 << 20);
  ByteBuffer input;
  input.Append(std::string("\xff\xff\xff\xff", 4));
  absl::StatusOr<std::optional<absl::string_view>> frame = framer.Next(input);
  EXPECT_EQ(frame.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(frame.status().message(),
            "frame announces a payload of 4294967295 bytes, above the limit "
            "of 1048576 bytes");
  EXPECT_EQ(input.size(), 4u);
  input.Append("more");
  EXPECT_EQ(framer.Next(input).status(), frame.status());
}

TEST(LengthPrefixFramer, RefusesEightByteLengthsAboveTheLimitOrSizeMax) {
  // Even with no limit, header + payload must fit in a size_t.
  LengthPrefixFramer unlimited =
      MakePrefix(8, false, std::numeric_limits<size_t>::max());
  ByteBuffer huge;
  huge.Append(std::string(8, '\xff'));
  EXPECT_EQ(unlimited.Next(huge).status().code(),
            absl::StatusCode::kResourceExhausted);
  LengthPrefixFramer limited = MakePrefix(8, false, 10);
  ByteBuffer input;
  input.Append(std::string("\0\0\0\0\0\0\0\x0b", 8));
  EXPECT_EQ(limited.Next(input).status().code(),
            absl::StatusCode::kResourceExhausted);
  LengthPrefixFramer exact = MakePrefix(8, false, 10);
  EXPECT_EQ(
      FeedAll(exact, std::string("\0\0\0\0\0\0\0\x0a", 8) + "0123456789", 1),
      (Frames{"0123456789"}));
}

TEST(LengthPrefixFramer, ALengthSmallerThanItsHeaderIsDataLoss) {
  LengthPrefixFramer framer = MakePrefix(2, true, 100);
  EXPECT_EQ(FeedAll(framer, std::string("\0\1", 2), 1), (Frames{"!DATA_LOSS"}));
}

TEST(LengthPrefixFramer, EncoderRefusesWhatTheWidthOrLimitCannotCarry) {
  LengthPrefixFramer one = MakePrefix(1, false, 1000);
  EXPECT_TRUE(one.Encode(std::string(255, 'a')).ok());
  EXPECT_EQ(one.Encode(std::string(256, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  LengthPrefixFramer one_with_header = MakePrefix(1, true, 1000);
  EXPECT_TRUE(one_with_header.Encode(std::string(254, 'a')).ok());
  EXPECT_EQ(one_with_header.Encode(std::string(255, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  LengthPrefixFramer limited = MakePrefix(4, false, 3);
  EXPECT_EQ(limited.Encode("abcd").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LengthPrefixFramer, RejectsAnUnsupportedWidth) {
  for (int width : {0, 3, 5, 16, -1}) {
    LengthPrefixOptions options;
    options.header_bytes = width;
    EXPECT_EQ(LengthPrefixFramer::Create(options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << width;
  }
}

}  // namespace
}  // namespace mill
