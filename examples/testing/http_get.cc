#include "examples/testing/http_get.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "net/testing/echo_clients.h"

namespace mill {
namespace testing {

std::string HttpReply::Header(const std::string& name) const {
  const std::string key = "\r\n" + name + ": ";
  const size_t at = head.find(key);
  if (at == std::string::npos) return "<absent>";
  const size_t value = at + key.size();
  return head.substr(value, head.find("\r\n", value) - value);
}

absl::StatusOr<HttpReply> HttpGet(int port, const std::string& target) {
  absl::StatusOr<net_testing::TestClient> client =
      net_testing::TestClient::Connect(static_cast<uint16_t>(port));
  if (!client.ok()) return client.status();
  const absl::Status sent = client->SendAll(absl::StrCat(
      "GET ", target, " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
  if (!sent.ok()) return sent;
  const std::string raw = client->RecvUntilEof();
  const size_t end = raw.find("\r\n\r\n");
  HttpReply reply;
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || end == std::string::npos ||
      !absl::SimpleAtoi(raw.substr(9, 3), &reply.status)) {
    return absl::DataLossError(absl::StrCat("not a response: '", raw, "'"));
  }
  reply.head = raw.substr(0, end + 2);
  reply.body = raw.substr(end + 4);
  const std::string length = reply.Header("Content-Length");
  if (length != "<absent>" &&
      std::strtoull(length.c_str(), nullptr, 10) != reply.body.size()) {
    return absl::DataLossError(absl::StrCat("Content-Length ", length, ", got ",
                                            reply.body.size(), " bytes"));
  }
  return reply;
}

}  // namespace testing
}  // namespace mill
