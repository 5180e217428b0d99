#include "examples/proxy/upstream.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "examples/proxy/resolve_host.h"

namespace mill::proxy {
namespace {

// "host:port" or "[v6]:port" to an address: numeric at once, names with a
// (blocking, startup-only) getaddrinfo.
absl::StatusOr<SocketAddress> Resolve(absl::string_view host_port) {
  absl::StatusOr<SocketAddress> numeric = SocketAddress::Parse(host_port);
  if (numeric.ok()) return numeric;
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream '", host_port, "' is not HOST:PORT"));
  }
  const std::string host(host_port.substr(0, colon));
  absl::StatusOr<SocketAddress> resolved =
      internal::ResolveHost(host, static_cast<uint16_t>(port));
  if (!resolved.ok()) {
    return absl::NotFoundError(absl::StrCat(
        "upstream '", host_port, "': ", resolved.status().message()));
  }
  return resolved;
}

// "https://HOST:PORT" -> (HOST:PORT, TLS); "http://HOST:PORT" and
// "HOST:PORT" -> plain. A trailing "/" is allowed; any other scheme or path
// is an error.
absl::StatusOr<std::pair<absl::string_view, bool>> SplitScheme(
    absl::string_view entry) {
  absl::string_view rest = entry;
  bool tls = false;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    rest.remove_prefix(8);
    tls = true;
  } else if (absl::StartsWithIgnoreCase(rest, "http://")) {
    rest.remove_prefix(7);
  }
  absl::ConsumeSuffix(&rest, "/");
  if (absl::StrContains(rest, "/")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upstream '", entry, "' is not [http://|https://]HOST:PORT"));
  }
  return std::make_pair(rest, tls);
}

}  // namespace

absl::StatusOr<std::unique_ptr<UpstreamSet>> UpstreamSet::Parse(
    absl::string_view list, Balance balance) {
  std::vector<std::unique_ptr<Upstream>> upstreams;
  for (absl::string_view entry : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    entry = absl::StripAsciiWhitespace(entry);
    absl::StatusOr<std::pair<absl::string_view, bool>> parsed =
        SplitScheme(entry);
    if (!parsed.ok()) return parsed.status();
    const auto [host_port, tls] = *parsed;
    absl::StatusOr<SocketAddress> address = Resolve(host_port);
    if (!address.ok()) return address.status();
    auto upstream = std::make_unique<Upstream>();
    upstream->host_port = std::string(host_port);
    upstream->tls = tls;
    upstream->address = *address;
    upstream->endpoint = tls ? upstream->host_port : address->ToString();
    upstreams.push_back(std::move(upstream));
  }
  if (upstreams.empty()) {
    return absl::InvalidArgumentError(
        "--upstream needs at least one [http://|https://]HOST:PORT");
  }
  return std::unique_ptr<UpstreamSet>(
      new UpstreamSet(std::move(upstreams), balance));
}

size_t UpstreamSet::Pick() {
  const size_t n = upstreams_.size();
  if (n == 1) return 0;
  const size_t start =
      static_cast<size_t>(next_.fetch_add(1, std::memory_order_relaxed) % n);
  if (balance_ == Balance::kRoundRobin) return start;
  // Least loaded; ties go to the round-robin choice, so equal loads still
  // spread.
  size_t best = start;
  int best_load = upstreams_[start]->in_flight.load(std::memory_order_relaxed);
  for (size_t k = 1; k < n; ++k) {
    const size_t i = (start + k) % n;
    const int load = upstreams_[i]->in_flight.load(std::memory_order_relaxed);
    if (load < best_load) {
      best = i;
      best_load = load;
    }
  }
  return best;
}

}  // namespace mill::proxy
