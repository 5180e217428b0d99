#include "bench/resp.h"

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mill {
namespace bench {
namespace {

// "-9223372036854775808" is 20 bytes: no valid number line is longer.
constexpr size_t kMaxNumberBytes = 20;

enum class Step { kDone, kIncomplete, kMalformed };

// A recursive-descent parser over one buffer. `pos_` is where the next
// element starts; `error_` says what went wrong for kMalformed.
class Parser {
 public:
  Parser(absl::string_view in, const RespLimits& limits)
      : in_(in), limits_(limits) {}

  Step Parse(RespReply* reply, int depth) {
    if (pos_ >= in_.size()) return Step::kIncomplete;
    const size_t start = pos_;
    const char marker = in_[pos_++];
    absl::string_view line;
    switch (marker) {
      case '+':
      case '-': {
        const Step step = Line(limits_.max_line_bytes, &line);
        if (step != Step::kDone) return step;
        reply->type =
            marker == '+' ? RespType::kSimpleString : RespType::kError;
        reply->text = line;
        if (marker == '-') ++reply->errors;
        return Step::kDone;
      }
      case ':': {
        int64_t value = 0;
        const Step step = Number(&value);
        if (step != Step::kDone) return step;
        reply->type = RespType::kInteger;
        reply->integer = value;
        return Step::kDone;
      }
      case '$':
        return Bulk(reply);
      case '*':
        return Array(reply, depth);
      default:
        return Fail(start, absl::StrCat("unknown reply type byte 0x",
                                        absl::Hex(static_cast<uint8_t>(marker),
                                                  absl::kZeroPad2)));
    }
  }

  size_t pos() const { return pos_; }
  const std::string& error() const { return error_; }

 private:
  Step Fail(size_t at, absl::string_view what) {
    error_ = absl::StrCat("malformed RESP at byte ", at, ": ", what);
    return Step::kMalformed;
  }

  // The bytes up to the next CRLF (which is consumed), at most `max` long.
  Step Line(size_t max, absl::string_view* line) {
    const size_t cr = in_.find('\r', pos_);
    if (cr == absl::string_view::npos) {
      return in_.size() - pos_ > max ? Fail(pos_, "line too long")
                                     : Step::kIncomplete;
    }
    if (cr - pos_ > max) return Fail(pos_, "line too long");
    if (cr + 1 >= in_.size()) return Step::kIncomplete;
    if (in_[cr + 1] != '\n') return Fail(cr, "CR not followed by LF");
    *line = in_.substr(pos_, cr - pos_);
    pos_ = cr + 2;
    return Step::kDone;
  }

  Step Number(int64_t* value) {
    const size_t start = pos_;
    absl::string_view line;
    const Step step = Line(kMaxNumberBytes, &line);
    if (step != Step::kDone) return step;
    size_t i = 0;
    const bool negative = !line.empty() && line[0] == '-';
    if (negative) ++i;
    if (i == line.size()) return Fail(start, "empty number");
    uint64_t magnitude = 0;
    // INT64_MAX + 1 is allowed only for a negative number (INT64_MIN).
    const uint64_t bound =
        negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    for (; i < line.size(); ++i) {
      const char c = line[i];
      if (c < '0' || c > '9') return Fail(start, "not a number");
      const uint64_t digit = static_cast<uint64_t>(c - '0');
      if (magnitude > (bound - digit) / 10) {
        return Fail(start, "number out of range");
      }
      magnitude = magnitude * 10 + digit;
    }
    *value = negative ? static_cast<int64_t>(0 - magnitude)
                      : static_cast<int64_t>(magnitude);
    return Step::kDone;
  }

  Step Bulk(RespReply* reply) {
    const size_t start = pos_ - 1;
    int64_t size = 0;
    const Step step = Number(&size);
    if (step != Step::kDone) return step;
    reply->type = RespType::kBulkString;
    if (size == -1) {
      reply->null = true;
      return Step::kDone;
    }
    if (size < 0) return Fail(start, "negative bulk length");
    if (static_cast<uint64_t>(size) > limits_.max_bulk_bytes) {
      return Fail(start, absl::StrCat("bulk length ", size, " above the limit ",
                                      limits_.max_bulk_bytes));
    }
    const size_t n = static_cast<size_t>(size);
    if (in_.size() - pos_ < n + 2) return Step::kIncomplete;
    if (in_[pos_ + n] != '\r' || in_[pos_ + n + 1] != '\n') {
      return Fail(pos_ + n, "bulk string not followed by CRLF");
    }
    reply->text = in_.substr(pos_, n);
    pos_ += n + 2;
    return Step::kDone;
  }

  Step Array(RespReply* reply, int depth) {
    const size_t start = pos_ - 1;
    if (depth >= limits_.max_depth) {
      return Fail(start, "arrays nested too deep");
    }
    int64_t count = 0;
    const Step step = Number(&count);
    if (step != Step::kDone) return step;
    reply->type = RespType::kArray;
    if (count == -1) {
      reply->null = true;
      return Step::kDone;
    }
    if (count < 0) return Fail(start, "negative array length");
    if (static_cast<uint64_t>(count) > limits_.max_array_elements) {
      return Fail(start,
                  absl::StrCat("array length ", count, " above the limit ",
                               limits_.max_array_elements));
    }
    reply->integer = count;
    for (int64_t i = 0; i < count; ++i) {
      RespReply element;
      const Step element_step = Parse(&element, depth + 1);
      if (element_step != Step::kDone) return element_step;
      reply->errors += element.errors;
    }
    return Step::kDone;
  }

  const absl::string_view in_;
  const RespLimits& limits_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

absl::StatusOr<bool> ParseRespReply(absl::string_view in, RespReply* reply,
                                    const RespLimits& limits) {
  Parser parser(in, limits);
  RespReply parsed;
  switch (parser.Parse(&parsed, 0)) {
    case Step::kIncomplete:
      return false;
    case Step::kMalformed:
      return absl::InvalidArgumentError(parser.error());
    case Step::kDone:
      break;
  }
  parsed.length = parser.pos();
  *reply = parsed;
  return true;
}

void AppendRespCommand(absl::Span<const absl::string_view> args,
                       std::string* out) {
  absl::StrAppend(out, "*", args.size(), "\r\n");
  for (absl::string_view arg : args) {
    absl::StrAppend(out, "$", arg.size(), "\r\n", arg, "\r\n");
  }
}

}  // namespace bench
}  // namespace mill
