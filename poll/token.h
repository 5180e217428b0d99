// Token: the caller-chosen 64-bit identity of a registered I/O source.
//
// A Token is what the poller hands back in every Event so the caller can tell
// which source became ready without a lookup by file descriptor. Tokens are
// opaque to Mill-IO: any value is valid, and the caller keeps them unique
// among live registrations. Plain value type; thread-compatible.
#ifndef MILL_IO_POLL_TOKEN_H_
#define MILL_IO_POLL_TOKEN_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <utility>

namespace mill {

class Token {
 public:
  constexpr Token() = default;
  constexpr explicit Token(uint64_t value) : value_(value) {}

  constexpr uint64_t value() const { return value_; }

  friend constexpr bool operator==(Token a, Token b) {
    return a.value_ == b.value_;
  }
  friend constexpr bool operator!=(Token a, Token b) {
    return a.value_ != b.value_;
  }
  friend constexpr bool operator<(Token a, Token b) {
    return a.value_ < b.value_;
  }

  // Lets absl::flat_hash_map and friends hash a Token directly.
  template <typename H>
  friend H AbslHashValue(H state, Token token) {
    return H::combine(std::move(state), token.value_);
  }

  friend std::ostream& operator<<(std::ostream& os, Token token) {
    return os << "Token(" << token.value_ << ")";
  }

 private:
  uint64_t value_ = 0;
};

}  // namespace mill

template <>
struct std::hash<mill::Token> {
  size_t operator()(mill::Token token) const noexcept {
    return std::hash<uint64_t>()(token.value());
  }
};

#endif  // MILL_IO_POLL_TOKEN_H_
