// Fuzz target: LineFramer and LengthPrefixFramer (net/framing.h) fed
// arbitrary bytes in arbitrary splits.
//
// Input: byte 0 picks the framer and its options (bit 0: lines or length
// prefix; lines: bits 1-2 the delimiter, bit 3 keep_delimiter; length
// prefix: bits 1-2 the width, bit 3 length_includes_header), byte 1 the
// limit (1..64, or 64 KiB for 255), bytes 2-5 seed the split, the rest is
// the stream. The stream is fed whole, in seeded random chunks and byte by
// byte, each into a fresh framer. Checked: every split yields the same
// frames and errors; lines equal a reference split of the whole stream;
// length-prefixed payloads re-encode to exactly the bytes consumed; no
// frame exceeds the limit; what stays buffered never exceeds it either.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "net/byte_buffer.h"
#include "net/framing.h"
#include "tools/fuzz/chunks.h"
#include "tools/fuzz/fuzz_check.h"

namespace {

using mill::ByteBuffer;
using mill::LineDelimiter;

// A frame, or nullopt for a refused one.
using Frame = std::optional<std::string>;

// The lines of `stream` by the rules of net/framing.h, computed in one pass
// over the whole stream, independently of the framer.
std::vector<Frame> ReferenceLines(std::string_view stream,
                                  const mill::LineFramerOptions& o) {
  std::vector<Frame> out;
  size_t start = 0;
  while (start < stream.size()) {
    size_t end = std::string_view::npos;  // first delimiter byte
    size_t delimiter = 0;
    for (size_t i = start; i < stream.size(); ++i) {
      if (o.delimiter == LineDelimiter::kCrlf) {
        if (stream[i] == '\r' && i + 1 < stream.size() &&
            stream[i + 1] == '\n') {
          end = i;
          delimiter = 2;
          break;
        }
      } else if (stream[i] == '\n') {
        const bool cr = o.delimiter == LineDelimiter::kLfOrCrlf && i > start &&
                        stream[i - 1] == '\r';
        end = cr ? i - 1 : i;
        delimiter = cr ? 2 : 1;
        break;
      }
    }
    if (end == std::string_view::npos) {
      // An unterminated tail is refused once it cannot end within the limit.
      const size_t tail = stream.size() - start;
      size_t least = tail + (o.delimiter == LineDelimiter::kCrlf ? 2 : 1);
      if (o.delimiter == LineDelimiter::kCrlf && stream.back() == '\r') {
        least = tail + 1;
      }
      if (least > o.max_line_bytes) out.push_back(std::nullopt);
      break;
    }
    const size_t frame = end - start + delimiter;
    if (frame > o.max_line_bytes) {
      out.push_back(std::nullopt);
    } else {
      out.emplace_back(
          stream.substr(start, o.keep_delimiter ? frame : end - start));
    }
    start += frame;
  }
  return out;
}

// Feeds `chunks` into `framer`; returns the frames (nullopt for an error,
// after which a length-prefix framer is done), checking the bounds.
template <typename Framer>
std::vector<Frame> Feed(Framer& framer,
                        const std::vector<std::string_view>& chunks,
                        size_t max_frame, size_t max_buffered,
                        std::string* consumed) {
  std::vector<Frame> out;
  ByteBuffer input;
  for (const std::string_view chunk : chunks) {
    input.Append(absl::string_view(chunk.data(), chunk.size()));
    while (true) {
      const size_t before = input.size();
      const std::string held(consumed != nullptr ? input.view() : "");
      auto frame = framer.Next(input);
      if (!frame.ok()) {
        mill::fuzz::Require(
            frame.status().code() == absl::StatusCode::kResourceExhausted ||
                    frame.status().code() == absl::StatusCode::kDataLoss
                ? absl::OkStatus()
                : frame.status());
        out.push_back(std::nullopt);
        if constexpr (std::is_same_v<Framer, mill::LengthPrefixFramer>) {
          return out;
        }
        continue;
      }
      if (!frame->has_value()) break;
      if ((*frame)->size() > max_frame) {
        mill::fuzz::Require(absl::InternalError(absl::StrCat(
            "frame of ", (*frame)->size(), " bytes above ", max_frame)));
      }
      if (consumed != nullptr) {
        consumed->append(held, 0, before - input.size());
      }
      out.emplace_back(std::string(**frame));
    }
    if (input.size() > max_buffered) {
      mill::fuzz::Require(absl::InternalError(absl::StrCat(
          input.size(), " bytes left buffered, above ", max_buffered)));
    }
  }
  return out;
}

void RequireSame(const std::vector<Frame>& a, const std::vector<Frame>& b,
                 const char* what) {
  if (a != b) {
    mill::fuzz::Require(absl::InternalError(absl::StrCat(
        what, ": ", a.size(), " frames vs ", b.size(), " frames")));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const uint8_t mode = mill::fuzz::TakeByte(&input);
  const uint8_t limit_byte = mill::fuzz::TakeByte(&input);
  const size_t limit =
      limit_byte == 255 ? size_t{64} << 10 : 1 + limit_byte % 64;
  const uint32_t seed = mill::fuzz::TakeU32(&input);
  std::vector<std::vector<std::string_view>> splits = {
      {input}, mill::fuzz::SplitIntoChunks(input, seed, 32), {}};
  for (size_t i = 0; i < input.size(); ++i) {
    splits[2].push_back(input.substr(i, 1));
  }

  if ((mode & 1) == 0) {
    mill::LineFramerOptions o;
    const LineDelimiter delimiters[] = {
        LineDelimiter::kLf, LineDelimiter::kCrlf, LineDelimiter::kLfOrCrlf,
        LineDelimiter::kLf};
    o.delimiter = delimiters[(mode >> 1) & 3];
    o.keep_delimiter = (mode >> 3) & 1;
    o.max_line_bytes = limit + 1;  // every limit is valid for every mode
    const std::vector<Frame> expected = ReferenceLines(input, o);
    for (const auto& chunks : splits) {
      auto framer = mill::LineFramer::Create(o);
      mill::fuzz::Require(framer.status());
      RequireSame(expected,
                  Feed(*framer, chunks, o.max_line_bytes, o.max_line_bytes - 1,
                       nullptr),
                  "lines differ from the reference");
    }
    return 0;
  }
  mill::LengthPrefixOptions o;
  const int widths[] = {1, 2, 4, 8};
  o.header_bytes = widths[(mode >> 1) & 3];
  o.length_includes_header = (mode >> 3) & 1;
  o.max_payload_bytes = limit;
  std::vector<Frame> first;
  for (size_t i = 0; i < splits.size(); ++i) {
    auto framer = mill::LengthPrefixFramer::Create(o);
    mill::fuzz::Require(framer.status());
    std::string consumed;
    std::vector<Frame> frames =
        Feed(*framer, splits[i], o.max_payload_bytes,
             o.header_bytes + o.max_payload_bytes, &consumed);
    std::string encoded;
    for (const Frame& frame : frames) {
      if (!frame.has_value()) continue;
      auto bytes = framer->Encode(*frame);
      mill::fuzz::Require(bytes.status());
      encoded += *bytes;
    }
    if (encoded != consumed) {
      mill::fuzz::Require(absl::InternalError(
          "payloads do not re-encode to the bytes consumed"));
    }
    if (i == 0) {
      first = std::move(frames);
    } else {
      RequireSame(first, frames, "splits disagree");
    }
  }
  return 0;
}
