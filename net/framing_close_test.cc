// AbortOnFramingError over a real connection: a line server answers its
// lines, and a peer sending a line above the limit is cut off at once with
// the error naming it. Both dispatch modes.
#include "net/framing_close.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "net/framing.h"
#include "net/testing/connection_fixture.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionTest, BothDispatchModes(),
                         DispatchModeName);

TEST_P(ConnectionTest, AnOversizedLineAbortsTheConnectionSayingWhy) {
  LineFramerOptions options;
  options.max_line_bytes = 16;
  // One framer per connection; the test has one connection.
  absl::StatusOr<LineFramer> framer = LineFramer::Create(options);
  ASSERT_TRUE(framer.ok());
  std::mutex error_mu;
  absl::Status error;
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& conn, ByteBuffer& input) {
    while (true) {
      absl::StatusOr<std::optional<absl::string_view>> line =
          framer->Next(input);
      if (!line.ok()) {
        absl::Status s = AbortOnFramingError(*conn, line.status());
        std::lock_guard<std::mutex> lock(error_mu);
        error = s;
        return;
      }
      if (!line->has_value()) return;
      (void)conn->Send(absl::StrCat("got ", **line, "\n"));
    }
  };
  Start(std::move(cb));
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("hello\nwor").ok());
  EXPECT_EQ(client.RecvExactly(10), "got hello\n");
  ASSERT_TRUE(client.SendAll("ld\n").ok());
  EXPECT_EQ(client.RecvExactly(10), "got world\n");
  // No newline ever: refused once 16 bytes cannot end within the limit.
  ASSERT_TRUE(client.SendAll(std::string(40, 'x')).ok());
  EXPECT_TRUE(client.WaitClosed(absl::Seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return Closes().size() == 1; }));
  EXPECT_EQ(Closes()[0], CloseReason::kProtocolError);
  std::lock_guard<std::mutex> lock(error_mu);
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(error.message(), "127.0.0.1:")) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), "limit of 16 bytes")) << error;
}

TEST_P(ConnectionTest, AnOkStatusLeavesTheConnectionOpen) {
  TcpServerCallbacks cb;
  cb.on_data = [](const ConnectionPtr& conn, ByteBuffer& input) {
    EXPECT_TRUE(AbortOnFramingError(*conn, absl::OkStatus()).ok());
    (void)conn->Send(input.view());
    input.Consume(input.size());
  };
  Start(std::move(cb));
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("ping").ok());
  EXPECT_EQ(client.RecvExactly(4), "ping");
  EXPECT_TRUE(Closes().empty());
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
