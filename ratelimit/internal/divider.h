// Divider: exact unsigned 64-bit division by a divisor fixed at run time,
// with a multiply and shifts instead of a `div` instruction (which costs
// 10-40 cycles, more than the rest of TokenBucket's fast path together).
//
// The algorithm is Granlund-Montgomery's round-up method as laid out in
// libdivide (u64 "gen"/"do"): for every divisor d > 0 and every 64-bit n,
// Divide(n) == n / d exactly. Immutable value type; thread-compatible.
#ifndef MILL_IO_RATELIMIT_INTERNAL_DIVIDER_H_
#define MILL_IO_RATELIMIT_INTERNAL_DIVIDER_H_

#include <cstdint>

namespace mill {
namespace ratelimit_internal {

// Divides by a fixed `d` (> 0; d == 0 is treated as 1).
//
//   Divider by_3(3);
//   uint64_t q = by_3.Divide(n);  // == n / 3
class Divider {
 public:
  explicit Divider(uint64_t d = 1) {
    if (d == 0) d = 1;
    divisor_ = d;
    const int floor_log2 = 63 - __builtin_clzll(d);
    if ((d & (d - 1)) == 0) {
      // Power of two: a shift.
      magic_ = 0;
      shift_ = floor_log2;
      add_ = false;
      return;
    }
    // m = 2^(64 + floor_log2) / d fits in 64 bits because d > 2^floor_log2.
    const unsigned __int128 numerator = static_cast<unsigned __int128>(1)
                                        << (64 + floor_log2);
    uint64_t proposed = static_cast<uint64_t>(numerator / d);
    const uint64_t rem = static_cast<uint64_t>(numerator % d);
    const uint64_t e = d - rem;
    if (e < (uint64_t{1} << floor_log2)) {
      // The 64-bit magic is precise enough for every numerator.
      add_ = false;
    } else {
      // Needs a 65-bit magic: keep its low 64 bits and add n back in Divide.
      proposed += proposed;
      const uint64_t twice_rem = rem + rem;
      if (twice_rem >= d || twice_rem < rem) proposed += 1;
      add_ = true;
    }
    magic_ = 1 + proposed;
    shift_ = floor_log2;
  }

  uint64_t Divide(uint64_t n) const {
    if (magic_ == 0) return n >> shift_;
    const uint64_t q = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(magic_) * n) >> 64);
    if (add_) return (((n - q) >> 1) + q) >> shift_;
    return q >> shift_;
  }

  uint64_t divisor() const { return divisor_; }

 private:
  uint64_t divisor_;
  uint64_t magic_;
  int shift_;
  bool add_;
};

}  // namespace ratelimit_internal
}  // namespace mill

#endif  // MILL_IO_RATELIMIT_INTERNAL_DIVIDER_H_
