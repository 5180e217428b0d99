#include "examples/file_watcher/inotify_decoder.h"

#include <sys/inotify.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace mill {

static_assert(sizeof(inotify_event) == kInotifyHeaderBytes,
              "struct inotify_event layout");

absl::Status DecodeInotifyRecords(std::string_view bytes,
                                  std::vector<InotifyRecord>* out) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    const size_t left = bytes.size() - offset;
    if (left < kInotifyHeaderBytes) {
      return absl::DataLossError(absl::StrCat("inotify record at offset ",
                                              offset, ": truncated header (",
                                              left, " bytes)"));
    }
    inotify_event header;
    std::memcpy(&header, bytes.data() + offset, sizeof(header));
    if (header.len > left - kInotifyHeaderBytes) {
      return absl::DataLossError(absl::StrCat(
          "inotify record at offset ", offset, ": name of ", header.len,
          " bytes runs past the end (", left - kInotifyHeaderBytes, " left)"));
    }
    const std::string_view field =
        bytes.substr(offset + kInotifyHeaderBytes, header.len);
    const std::string_view name = field.substr(0, field.find('\0'));
    if (name == "." || name == ".." ||
        name.find('/') != std::string_view::npos) {
      return absl::DataLossError(
          absl::StrCat("inotify record at offset ", offset, ": invalid name"));
    }
    out->push_back({header.wd, header.mask, header.cookie, std::string(name)});
    offset += kInotifyHeaderBytes + header.len;
  }
  return absl::OkStatus();
}

std::string EncodeInotifyRecord(const InotifyRecord& record,
                                size_t name_field_bytes) {
  size_t len = name_field_bytes;
  if (!record.name.empty()) {
    const size_t needed = record.name.size() + 1;
    if (len == 0) {
      len = (needed + kInotifyHeaderBytes - 1) / kInotifyHeaderBytes *
            kInotifyHeaderBytes;
    }
    if (len < needed) len = needed;
  }
  inotify_event header;
  header.wd = record.wd;
  header.mask = record.mask;
  header.cookie = record.cookie;
  header.len = static_cast<uint32_t>(len);
  std::string bytes(reinterpret_cast<const char*>(&header), sizeof(header));
  bytes.append(record.name);
  bytes.resize(sizeof(header) + len, '\0');
  return bytes;
}

}  // namespace mill
