// Fuzz target: the inotify record decoder over arbitrary bytes.
//
// Checked, besides memory safety (ASan) whatever the header fields say:
//   * the decoded records account for a prefix of the input: their encoded
//     sizes (header + the name field length the input gave) add up to where
//     decoding stopped, and decoding succeeds exactly when that is the end;
//   * every name is a plain directory entry name: no NUL, no '/', not "."
//     or "..", and no longer than its field;
//   * re-encoding the records and decoding again gives the same records
//     (the kernel's padding is irrelevant to the result).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "examples/file_watcher/inotify_decoder.h"
#include "tools/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<mill::InotifyRecord> records;
  const absl::Status status = mill::DecodeInotifyRecords(bytes, &records);

  // Walk the input along the decoded records, reading each header's len.
  size_t offset = 0;
  for (const mill::InotifyRecord& record : records) {
    if (bytes.size() - offset < mill::kInotifyHeaderBytes) {
      mill::fuzz::Require(absl::InternalError("a record beyond the input"));
    }
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + offset + 12, sizeof(len));
    if (len > bytes.size() - offset - mill::kInotifyHeaderBytes) {
      mill::fuzz::Require(absl::InternalError("a name beyond the input"));
    }
    if (record.name.size() > len ||
        record.name.find('\0') != std::string::npos ||
        record.name.find('/') != std::string::npos || record.name == "." ||
        record.name == "..") {
      mill::fuzz::Require(absl::InternalError(
          absl::StrCat("bad name of ", record.name.size(), " bytes")));
    }
    offset += mill::kInotifyHeaderBytes + len;
  }
  if (status.ok() != (offset == bytes.size())) {
    mill::fuzz::Require(absl::InternalError(
        absl::StrCat("status ", status.ToString(), " but records end at ",
                     offset, " of ", bytes.size())));
  }
  if (!status.ok() && status.code() != absl::StatusCode::kDataLoss) {
    mill::fuzz::Require(status);
  }

  std::string encoded;
  for (const mill::InotifyRecord& record : records) {
    encoded += mill::EncodeInotifyRecord(record);
  }
  std::vector<mill::InotifyRecord> again;
  mill::fuzz::Require(mill::DecodeInotifyRecords(encoded, &again));
  if (again != records) {
    mill::fuzz::Require(
        absl::InternalError("re-encoded records decode differently"));
  }
  return 0;
}
