#include "net/framing.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mill {
namespace {

size_t MinDelimiterBytes(LineDelimiter delimiter) {
  return delimiter == LineDelimiter::kCrlf ? 2 : 1;
}

absl::string_view DelimiterName(LineDelimiter delimiter) {
  switch (delimiter) {
    case LineDelimiter::kLf:
      return "LF";
    case LineDelimiter::kCrlf:
      return "CRLF";
    case LineDelimiter::kLfOrCrlf:
      return "LF or CRLF";
  }
  return "?";
}

}  // namespace

absl::StatusOr<LineFramer> LineFramer::Create(LineFramerOptions options) {
  if (options.max_line_bytes < MinDelimiterBytes(options.delimiter)) {
    return absl::InvalidArgumentError(
        absl::StrCat("LineFramerOptions::max_line_bytes (",
                     options.max_line_bytes, ") cannot hold the delimiter (",
                     DelimiterName(options.delimiter), ")"));
  }
  return LineFramer(options);
}

size_t LineFramer::FindDelimiter(absl::string_view bytes, size_t from,
                                 size_t* delimiter_size) const {
  if (options_.delimiter == LineDelimiter::kCrlf) {
    // A '\r' at the end of the scanned part may start a "\r\n".
    const size_t at = bytes.find("\r\n", from > 0 ? from - 1 : 0);
    *delimiter_size = 2;
    return at;
  }
  const size_t lf = bytes.find('\n', from);
  if (lf == absl::string_view::npos) return lf;
  if (options_.delimiter == LineDelimiter::kLfOrCrlf && lf > 0 &&
      bytes[lf - 1] == '\r') {
    *delimiter_size = 2;
    return lf - 1;
  }
  *delimiter_size = 1;
  return lf;
}

bool LineFramer::SkipOversized(ByteBuffer& input) {
  absl::string_view bytes = input.view();
  if (bytes.empty()) return false;
  if (options_.delimiter == LineDelimiter::kCrlf) {
    if (pending_cr_ && bytes.front() == '\n') {
      input.Consume(1);
      return true;
    }
    const size_t at = bytes.find("\r\n");
    if (at != absl::string_view::npos) {
      input.Consume(at + 2);
      return true;
    }
    pending_cr_ = bytes.back() == '\r';
    input.Consume(bytes.size());
    return false;
  }
  const size_t lf = bytes.find('\n');
  if (lf != absl::string_view::npos) {
    input.Consume(lf + 1);
    return true;
  }
  input.Consume(bytes.size());
  return false;
}

absl::StatusOr<std::optional<absl::string_view>> LineFramer::Next(
    ByteBuffer& input) {
  if (discarding_) {
    if (!SkipOversized(input)) return std::nullopt;
    discarding_ = false;
    pending_cr_ = false;
    scanned_ = 0;
  }
  const absl::string_view bytes = input.view();
  if (scanned_ > bytes.size()) scanned_ = 0;  // consumed by someone else
  size_t delimiter_size = 0;
  const size_t at = FindDelimiter(bytes, scanned_, &delimiter_size);
  const size_t max = options_.max_line_bytes;
  if (at == absl::string_view::npos) {
    // The shortest this line can still turn out to be.
    size_t least = bytes.size() + MinDelimiterBytes(options_.delimiter);
    if (options_.delimiter == LineDelimiter::kCrlf && !bytes.empty() &&
        bytes.back() == '\r') {
      least = bytes.size() + 1;
    }
    if (least <= max) {
      scanned_ = bytes.size();
      return std::nullopt;
    }
    // Refuse now rather than buffer up to the end (if it ever comes).
    pending_cr_ =
        options_.delimiter == LineDelimiter::kCrlf && bytes.back() == '\r';
    input.Consume(bytes.size());
    discarding_ = true;
    scanned_ = 0;
    return absl::ResourceExhaustedError(
        absl::StrCat("line of at least ", least, " bytes (no ",
                     DelimiterName(options_.delimiter),
                     " yet) exceeds the limit of ", max, " bytes"));
  }
  const size_t frame_bytes = at + delimiter_size;
  scanned_ = 0;
  if (frame_bytes > max) {
    input.Consume(frame_bytes);
    return absl::ResourceExhaustedError(
        absl::StrCat("line of ", frame_bytes, " bytes exceeds the limit of ",
                     max, " bytes"));
  }
  const absl::string_view line =
      bytes.substr(0, options_.keep_delimiter ? frame_bytes : at);
  // Consume keeps the storage: `line` stays valid until the next append.
  input.Consume(frame_bytes);
  return line;
}

absl::StatusOr<LengthPrefixFramer> LengthPrefixFramer::Create(
    LengthPrefixOptions options) {
  switch (options.header_bytes) {
    case 1:
    case 2:
    case 4:
    case 8:
      return LengthPrefixFramer(options);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("LengthPrefixOptions::header_bytes must be 1, 2, 4 or "
                       "8, not ",
                       options.header_bytes));
  }
}

absl::StatusOr<std::optional<absl::string_view>> LengthPrefixFramer::Next(
    ByteBuffer& input) {
  if (!error_.ok()) return error_;
  const size_t header = static_cast<size_t>(options_.header_bytes);
  const absl::string_view bytes = input.view();
  if (bytes.size() < header) return std::nullopt;
  uint64_t length = 0;
  for (size_t i = 0; i < header; ++i) {
    length = (length << 8) | static_cast<uint8_t>(bytes[i]);
  }
  uint64_t payload = length;
  if (options_.length_includes_header) {
    if (length < header) {
      error_ = absl::DataLossError(absl::StrCat("frame length ", length,
                                                " is smaller than its ", header,
                                                "-byte header"));
      return error_;
    }
    payload = length - header;
  }
  // Checked at the header: nothing of an oversized payload is buffered.
  // max_payload_bytes is a size_t, so this also refuses what exceeds
  // SIZE_MAX (or, with the header, would overflow it).
  if (payload > options_.max_payload_bytes ||
      payload > std::numeric_limits<size_t>::max() - header) {
    error_ = absl::ResourceExhaustedError(absl::StrCat(
        "frame announces a payload of ", payload, " bytes, above the limit of ",
        options_.max_payload_bytes, " bytes"));
    return error_;
  }
  const size_t total = header + static_cast<size_t>(payload);
  if (bytes.size() < total) return std::nullopt;
  const absl::string_view frame =
      bytes.substr(header, static_cast<size_t>(payload));
  input.Consume(total);
  return frame;
}

absl::Status LengthPrefixFramer::AppendHeader(size_t payload_bytes,
                                              std::string* out) const {
  if (payload_bytes > options_.max_payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload of ", payload_bytes, " bytes is above the limit of ",
        options_.max_payload_bytes, " bytes"));
  }
  const int header = options_.header_bytes;
  uint64_t length = payload_bytes;
  if (options_.length_includes_header) {
    if (length > std::numeric_limits<uint64_t>::max() - header) {
      return absl::InvalidArgumentError(absl::StrCat(
          "payload of ", payload_bytes, " bytes overflows a length"));
    }
    length += header;
  }
  if (header < 8 && length >> (8 * header) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "length ", length, " does not fit a ", header, "-byte header"));
  }
  for (int i = header - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LengthPrefixFramer::Encode(
    absl::string_view payload) const {
  std::string out;
  out.reserve(options_.header_bytes + payload.size());
  if (absl::Status s = AppendHeader(payload.size(), &out); !s.ok()) return s;
  out.append(payload.data(), payload.size());
  return out;
}

}  // namespace mill
