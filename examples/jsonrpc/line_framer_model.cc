#include "examples/jsonrpc/line_framer_model.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace mill::jsonrpc {
namespace {

bool OnlyBlanks(std::string_view line) {
  for (const char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

std::string Describe(const ModelFrame& frame) {
  if (frame.oversized) return "<oversized>";
  return absl::StrCat("\"", absl::CHexEscape(frame.line), "\"");
}

}  // namespace

LineFramerModel::LineFramerModel(std::string_view stream, size_t max_line_bytes)
    : max_line_bytes_(std::max<size_t>(max_line_bytes, 1)) {
  line_length_.reserve(stream.size() + 1);
  line_length_.push_back(0);
  size_t start = 0;  // First byte of the current line.
  for (size_t i = 0; i < stream.size(); ++i) {
    if (stream[i] != '\n') {
      line_length_.push_back(i + 1 - start);
      continue;
    }
    line_length_.push_back(0);
    std::string_view line = stream.substr(start, i - start);
    if (line.size() > max_line_bytes_) {
      frames_.push_back({true, ""});
      due_.push_back(start + max_line_bytes_ + 1);
    } else {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!OnlyBlanks(line)) {
        frames_.push_back({false, std::string(line)});
        due_.push_back(i + 1);
      }
    }
    start = i + 1;
  }
  // An unterminated tail over the limit is reported without its '\n'.
  if (stream.size() - start > max_line_bytes_) {
    frames_.push_back({true, ""});
    due_.push_back(start + max_line_bytes_ + 1);
  }
}

size_t LineFramerModel::FramesDueAfter(size_t fed) const {
  // due_ is sorted: frames complete in stream order.
  return std::upper_bound(due_.begin(), due_.end(), fed) - due_.begin();
}

size_t LineFramerModel::BufferedBytesAfter(size_t fed) const {
  const size_t length = line_length_[fed];
  return length > max_line_bytes_ ? 0 : length;
}

bool LineFramerModel::DiscardingAfter(size_t fed) const {
  return line_length_[fed] > max_line_bytes_;
}

absl::Status FramerProgressChecker::Check(size_t fed,
                                          const std::vector<ModelFrame>& frames,
                                          size_t buffered_bytes,
                                          bool discarding) {
  const LineFramerModel& model = *model_;
  const size_t due = model.FramesDueAfter(fed);
  const size_t common = std::min(due, frames.size());
  for (size_t i = std::min(verified_, common); i < common; ++i) {
    if (!(frames[i] == model.frames()[i])) {
      return absl::InternalError(absl::StrCat(
          "after ", fed, " bytes: frame ", i, " is ", Describe(frames[i]),
          ", expected ", Describe(model.frames()[i])));
    }
  }
  verified_ = common;
  if (frames.size() != due) {
    return absl::InternalError(absl::StrCat(
        "after ", fed, " bytes: ", frames.size(), " frames, expected ", due,
        frames.size() > due
            ? absl::StrCat(" (unexpected ", Describe(frames[due]), ")")
            : absl::StrCat(" (missing ",
                           Describe(model.frames()[frames.size()]), ")")));
  }
  if (buffered_bytes != model.BufferedBytesAfter(fed)) {
    return absl::InternalError(absl::StrCat("after ", fed, " bytes: buffers ",
                                            buffered_bytes, " bytes, expected ",
                                            model.BufferedBytesAfter(fed)));
  }
  if (discarding != model.DiscardingAfter(fed)) {
    return absl::InternalError(
        absl::StrCat("after ", fed, " bytes: discarding() is ", discarding,
                     ", expected ", model.DiscardingAfter(fed)));
  }
  return absl::OkStatus();
}

}  // namespace mill::jsonrpc
