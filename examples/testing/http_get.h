// HttpGet: one HTTP/1.1 GET over a fresh connection ("Connection: close"),
// read to the end of the stream, for the portable black-box tests of the
// HTTP examples (http_server, proxy). No curl: the same test runs on Linux
// and on Windows. Test-only.
#ifndef MILL_IO_EXAMPLES_TESTING_HTTP_GET_H_
#define MILL_IO_EXAMPLES_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace mill {
namespace testing {

struct HttpReply {
  int status = 0;
  std::string head;  // Status line and header lines, CRLFs included.
  std::string body;
  // The value of header `name` (exact case as the servers send it), or
  // "<absent>".
  std::string Header(const std::string& name) const;
};

// GET `target` from 127.0.0.1:`port`. An error when it cannot connect or
// the reply is not a response whose body matches its Content-Length.
absl::StatusOr<HttpReply> HttpGet(int port, const std::string& target);

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_HTTP_GET_H_
