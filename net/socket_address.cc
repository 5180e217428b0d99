#include "net/socket_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mill {
namespace {

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
  SocketAddress result;
  if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    std::memcpy(&result.storage_, addr, sizeof(sockaddr_in));
    return result;
  }
  if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    std::memcpy(&result.storage_, addr, sizeof(sockaddr_in6));
    return result;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "SocketAddress::FromSockaddr: unsupported family ", addr->sa_family));
}

uint16_t SocketAddress::port() const {
  if (is_ipv6()) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

socklen_t SocketAddress::sockaddr_len() const {
  return is_ipv6() ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string SocketAddress::ToString() const {
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
  return std::memcmp(&a.storage_, &b.storage_, a.sockaddr_len()) == 0;
}

}  // namespace mill
