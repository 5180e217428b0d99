#include "examples/jsonrpc/json_rpc_connection.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/jsonrpc/key_value_store.h"
#include "examples/jsonrpc/standard_methods.h"
#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

class JsonRpcConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterStandardMethods(&service_, &store_).ok());
  }

  // Splits output into its response lines, checking each ends with '\n'.
  static std::vector<Json> Responses(const std::string& output) {
    std::vector<Json> out;
    if (output.empty()) return out;
    EXPECT_EQ(output.back(), '\n');
    for (absl::string_view line :
         absl::StrSplit(output.substr(0, output.size() - 1), '\n')) {
      out.push_back(Json::parse(line));
    }
    return out;
  }

  KeyValueStore store_;
  JsonRpcService service_;
};

TEST_F(JsonRpcConnectionTest, SeveralMessagesInOneFeedAreAnsweredInOrder) {
  JsonRpcConnection conn(&service_);
  std::string out;
  conn.Feed(
      "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}\n"
      "{\"jsonrpc\":\"2.0\",\"method\":\"update\",\"params\":[1]}\n"  // silent
      "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":[2,3],\"id\":2}\r\n"
      "not json\n",
      &out);
  const std::vector<Json> got = Responses(out);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], Json::parse(R"({"jsonrpc":"2.0","result":"pong","id":1})"));
  EXPECT_EQ(got[1], Json::parse(R"({"jsonrpc":"2.0","result":5,"id":2})"));
  EXPECT_EQ(got[2]["error"]["code"], kParseError);
  EXPECT_EQ(conn.messages_handled(), 4u);
}

// Serving straight from a connection's input buffer: complete lines are
// consumed, a partial one stays, and an output limit stops early with the
// remaining messages left in the buffer.
TEST_F(JsonRpcConnectionTest, ServeConsumesFromTheInputBufferUpToALimit) {
  JsonRpcConnection conn(&service_);
  ByteBuffer input;
  for (int id = 1; id <= 5; ++id) {
    input.Append(absl::StrCat(
        "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":", id, "}\n"));
  }
  input.Append("{\"jsonrpc\":\"2.0\",\"method\":\"pi");  // partial
  std::string out;
  conn.Serve(input, &out, /*output_limit=*/1);  // one response, then stop
  ASSERT_EQ(Responses(out).size(), 1u);
  EXPECT_EQ(Responses(out)[0]["id"], 1);
  out.clear();
  conn.Serve(input, &out);
  const std::vector<Json> rest = Responses(out);
  ASSERT_EQ(rest.size(), 4u);
  EXPECT_EQ(rest[3]["id"], 5);
  EXPECT_EQ(input.view(), "{\"jsonrpc\":\"2.0\",\"method\":\"pi");
  input.Append("ng\",\"id\":6}\n");
  out.clear();
  conn.Serve(input, &out);
  ASSERT_EQ(Responses(out).size(), 1u);
  EXPECT_EQ(Responses(out)[0]["id"], 6);
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(conn.messages_handled(), 6u);
}

TEST_F(JsonRpcConnectionTest, MessageSplitAcrossFeedsIsAnsweredOnce) {
  JsonRpcConnection conn(&service_);
  const std::string message =
      "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"a\\nb\"],"
      "\"id\":\"x\"}\n";
  std::string out;
  for (size_t i = 0; i + 1 < message.size(); ++i) {
    conn.Feed(message.substr(i, 1), &out);
    EXPECT_TRUE(out.empty()) << "answered early at byte " << i;
  }
  conn.Feed(message.substr(message.size() - 1), &out);
  const std::vector<Json> got = Responses(out);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0],
            Json::parse(R"({"jsonrpc":"2.0","result":["a\nb"],"id":"x"})"));
}

TEST_F(JsonRpcConnectionTest, OversizedLineIsAnsweredAndTheStreamRecovers) {
  JsonRpcConnection conn(&service_, /*max_line_bytes=*/64);
  std::string out;
  const std::string big_params(100, '1');
  conn.Feed("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[" +
                big_params.substr(0, 10),
            &out);
  EXPECT_TRUE(out.empty());
  // 51 bytes so far; crossing 64 is answered at once, before any '\n'.
  conn.Feed(big_params.substr(10), &out);
  std::vector<Json> got = Responses(out);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], Json::parse(JsonRpcService::OversizedMessageResponse(64)));
  EXPECT_EQ(got[0]["id"], nullptr);
  out.clear();
  conn.Feed("],\"id\":1}\n{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2}\n",
            &out);
  got = Responses(out);
  ASSERT_EQ(got.size(), 1u);  // The tail of the long line is dropped.
  EXPECT_EQ(got[0], Json::parse(R"({"jsonrpc":"2.0","result":"pong","id":2})"));
}

TEST_F(JsonRpcConnectionTest, NotificationsAndBlankLinesProduceNoOutput) {
  JsonRpcConnection conn(&service_);
  std::string out;
  conn.Feed(
      "\n\r\n"
      "[{\"jsonrpc\":\"2.0\",\"method\":\"notify_sum\",\"params\":[1,2,4]},"
      "{\"jsonrpc\":\"2.0\",\"method\":\"notify_hello\",\"params\":[7]}]\n"
      "{\"jsonrpc\":\"2.0\",\"method\":\"foobar\"}\n",
      &out);
  EXPECT_EQ(out, "");
  EXPECT_EQ(conn.messages_handled(), 2u);
}

}  // namespace
}  // namespace mill::jsonrpc
