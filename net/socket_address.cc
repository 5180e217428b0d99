#include "net/socket_address.h"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mill {

// Shared by the copies of one Unix address; never modified after creation.
struct SocketAddress::UnixBlock {
  std::atomic<uint32_t> refs{1};
  socklen_t len = 0;
  sockaddr_un addr = {};
};

namespace {

constexpr socklen_t kUnixHeader = offsetof(sockaddr_un, sun_path);

// What an unnamed Unix address points at.
const sockaddr_un kUnnamedUnix = {AF_UNIX, {}};

SocketAddress MakeV4(uint32_t host_order_addr, uint16_t port) {
  sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(host_order_addr);
  return *SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin),
                                      sizeof(sin));
}

SocketAddress MakeV6(const in6_addr& addr, uint16_t port) {
  sockaddr_in6 sin6 = {};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_addr = addr;
  return *SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin6),
                                      sizeof(sin6));
}

}  // namespace

SocketAddress::SocketAddress() {
  std::memset(&storage_, 0, sizeof(storage_));
  auto* sin = reinterpret_cast<sockaddr_in*>(&storage_);
  sin->sin_family = AF_INET;
}

SocketAddress::SocketAddress(const SocketAddress& other)
    : storage_(other.storage_) {
  if (UnixBlock* b = block(); b != nullptr) {
    b->refs.fetch_add(1, std::memory_order_relaxed);
  }
}

SocketAddress::SocketAddress(SocketAddress&& other) noexcept
    : storage_(other.storage_) {
  if (is_unix()) other.SetBlock(nullptr);  // ours now
}

SocketAddress& SocketAddress::operator=(const SocketAddress& other) {
  if (this != &other) {
    if (UnixBlock* b = other.block(); b != nullptr) {
      b->refs.fetch_add(1, std::memory_order_relaxed);
    }
    Unref();
    storage_ = other.storage_;
  }
  return *this;
}

SocketAddress& SocketAddress::operator=(SocketAddress&& other) noexcept {
  if (this != &other) {
    Unref();
    storage_ = other.storage_;
    if (is_unix()) other.SetBlock(nullptr);
  }
  return *this;
}

SocketAddress::~SocketAddress() { Unref(); }

SocketAddress::UnixBlock* SocketAddress::block() const {
  if (!is_unix()) return nullptr;
  uintptr_t bits;
  std::memcpy(&bits, storage_.un.block, sizeof(bits));
  return reinterpret_cast<UnixBlock*>(bits);
}

void SocketAddress::SetBlock(UnixBlock* b) {
  const auto bits = reinterpret_cast<uintptr_t>(b);
  std::memcpy(storage_.un.block, &bits, sizeof(bits));
}

void SocketAddress::Unref() {
  UnixBlock* b = block();
  if (b != nullptr && b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete b;
  }
}

absl::StatusOr<SocketAddress> SocketAddress::MakeUnix(absl::string_view name,
                                                      bool abstract,
                                                      absl::string_view what) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SocketAddress::", what, ": empty name"));
  }
  if (name.size() > kMaxUnixPathLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SocketAddress::", what, ": '", name, "' is ", name.size(),
        " bytes; a Unix socket address holds at most ", kMaxUnixPathLength));
  }
  if (!abstract && name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SocketAddress::", what, ": a path cannot contain a NUL byte"));
  }
  auto* b = new UnixBlock;
  b->addr.sun_family = AF_UNIX;
  const size_t offset = abstract ? 1 : 0;  // abstract: a leading NUL
  std::memcpy(b->addr.sun_path + offset, name.data(), name.size());
  // A path's length counts its NUL (as the kernel reports it); an abstract
  // name's is exact: every byte is part of the name.
  b->len = static_cast<socklen_t>(kUnixHeader + offset + name.size() +
                                  (abstract ? 0 : 1));
  SocketAddress result;
  std::memset(&result.storage_, 0, sizeof(result.storage_));
  result.storage_.un.family = AF_UNIX;
  result.SetBlock(b);
  return result;
}

absl::StatusOr<SocketAddress> SocketAddress::Unix(absl::string_view path) {
  return MakeUnix(path, /*abstract=*/false, "Unix");
}

absl::StatusOr<SocketAddress> SocketAddress::AbstractUnix(
    absl::string_view name) {
  return MakeUnix(name, /*abstract=*/true, "AbstractUnix");
}

bool SocketAddress::is_abstract() const {
  const UnixBlock* b = block();
  return b != nullptr && b->addr.sun_path[0] == '\0';
}

std::string SocketAddress::unix_path() const {
  const UnixBlock* b = block();
  if (b == nullptr) return "";
  if (b->addr.sun_path[0] == '\0') {
    return std::string(b->addr.sun_path + 1, b->len - kUnixHeader - 1);
  }
  return std::string(b->addr.sun_path,
                     strnlen(b->addr.sun_path, b->len - kUnixHeader));
}

const sockaddr* SocketAddress::sockaddr_ptr() const {
  if (is_unix()) {
    const UnixBlock* b = block();
    return reinterpret_cast<const sockaddr*>(b != nullptr ? &b->addr
                                                          : &kUnnamedUnix);
  }
  return reinterpret_cast<const sockaddr*>(&storage_);
}

SocketAddress SocketAddress::LoopbackIPv4(uint16_t port) {
  return MakeV4(INADDR_LOOPBACK, port);
}
SocketAddress SocketAddress::AnyIPv4(uint16_t port) {
  return MakeV4(INADDR_ANY, port);
}
SocketAddress SocketAddress::LoopbackIPv6(uint16_t port) {
  return MakeV6(in6addr_loopback, port);
}
SocketAddress SocketAddress::AnyIPv6(uint16_t port) {
  return MakeV6(in6addr_any, port);
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text) {
  if (absl::ConsumePrefix(&text, "unix:")) {
    if (absl::ConsumePrefix(&text, "@")) return AbstractUnix(text);
    return Unix(text);
  }
  std::string host;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          "SocketAddress::Parse: expected [v6]:port, got '", text, "'"));
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SocketAddress::Parse: expected host:port, got '", text, "'"));
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("SocketAddress::Parse: bad port in '", text, "'"));
  }
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return MakeV4(ntohl(v4.s_addr), static_cast<uint16_t>(port));
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return MakeV6(v6, static_cast<uint16_t>(port));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("SocketAddress::Parse: bad numeric host in '", text, "'"));
}

absl::StatusOr<SocketAddress> SocketAddress::FromSockaddr(const sockaddr* addr,
                                                          socklen_t len) {
  if (addr == nullptr) {
    return absl::InvalidArgumentError("SocketAddress::FromSockaddr: null");
  }
  // socklen_t is unsigned on Linux, an int on Windows.
  const size_t size = static_cast<size_t>(len);
  SocketAddress result;
  if (addr->sa_family == AF_INET && size >= sizeof(sockaddr_in)) {
    std::memcpy(&result.storage_, addr, sizeof(sockaddr_in));
    return result;
  }
  if (addr->sa_family == AF_INET6 && size >= sizeof(sockaddr_in6)) {
    std::memcpy(&result.storage_, addr, sizeof(sockaddr_in6));
    return result;
  }
  if (addr->sa_family == AF_UNIX && size >= sizeof(addr->sa_family) &&
      size <= sizeof(sockaddr_un)) {
    if (len == kUnixHeader) {  // unnamed: nothing to hold
      std::memset(&result.storage_, 0, sizeof(result.storage_));
      result.storage_.un.family = AF_UNIX;
      result.SetBlock(nullptr);
      return result;
    }
    const auto* un = reinterpret_cast<const sockaddr_un*>(addr);
    const size_t room = len - kUnixHeader;
    if (un->sun_path[0] == '\0') {
      return AbstractUnix(absl::string_view(un->sun_path + 1, room - 1));
    }
    return Unix(absl::string_view(un->sun_path, strnlen(un->sun_path, room)));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "SocketAddress::FromSockaddr: unsupported family ", addr->sa_family));
}

uint16_t SocketAddress::port() const {
  if (is_unix()) return 0;
  if (is_ipv6()) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

socklen_t SocketAddress::sockaddr_len() const {
  if (is_unix()) {
    const UnixBlock* b = block();
    return b != nullptr ? b->len : kUnixHeader;
  }
  return is_ipv6() ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string SocketAddress::ToString() const {
  if (is_unix()) {
    return absl::StrCat(is_abstract() ? "unix:@" : "unix:", unix_path());
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_ipv6()) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", port());
  }
  const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage_);
  inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
  return absl::StrCat(buf, ":", port());
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() != b.family()) return false;
  if (a.is_unix()) {
    return a.sockaddr_len() == b.sockaddr_len() &&
           std::memcmp(a.sockaddr_ptr(), b.sockaddr_ptr(), a.sockaddr_len()) ==
               0;
  }
  return std::memcmp(&a.storage_, &b.storage_, a.sockaddr_len()) == 0;
}

}  // namespace mill
