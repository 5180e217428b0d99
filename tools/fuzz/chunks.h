// Deterministic "arbitrary splits" of a byte stream for fuzz targets that
// feed an incremental parser: the same (data, seed) always gives the same
// chunks, so a crash reproduces, and libFuzzer explores split patterns by
// mutating the seed bytes it is given.
//
// Thread-safety: pure functions. Ownership: chunks are views into `data`.
#ifndef MILL_IO_TOOLS_FUZZ_CHUNKS_H_
#define MILL_IO_TOOLS_FUZZ_CHUNKS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace mill::fuzz {

// Splits `data` into consecutive chunks of 0 to `max_chunk` bytes (empty
// chunks included: feeding nothing must be harmless) chosen by a PRNG seeded
// with `seed`. Concatenated, the chunks are `data`.
inline std::vector<std::string_view> SplitIntoChunks(std::string_view data,
                                                     uint32_t seed,
                                                     size_t max_chunk) {
  std::vector<std::string_view> chunks;
  uint32_t state = seed | 1;  // xorshift32 must not start at 0.
  while (!data.empty()) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const size_t size = state % (max_chunk + 1);
    chunks.push_back(data.substr(0, size));
    data.remove_prefix(chunks.back().size());
  }
  return chunks;
}

// Reads a little-endian uint32 from the front of `*data` (missing bytes are
// zero) and removes it.
inline uint32_t TakeU32(std::string_view* data) {
  uint32_t value = 0;
  for (int i = 0; i < 4 && !data->empty(); ++i) {
    value |= static_cast<uint32_t>(static_cast<uint8_t>(data->front()))
             << (8 * i);
    data->remove_prefix(1);
  }
  return value;
}

// Reads one byte from the front of `*data` (0 when empty) and removes it.
inline uint8_t TakeByte(std::string_view* data) {
  if (data->empty()) return 0;
  const uint8_t value = static_cast<uint8_t>(data->front());
  data->remove_prefix(1);
  return value;
}

}  // namespace mill::fuzz

#endif  // MILL_IO_TOOLS_FUZZ_CHUNKS_H_
