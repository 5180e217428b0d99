// Tests of the fuzz targets' reference models: they accept what the
// specification allows and catch what it does not (a checker that accepts
// everything would make the fuzzers useless).
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "examples/jsonrpc/json_rpc_checker.h"
#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/key_value_store.h"
#include "examples/jsonrpc/line_framer_model.h"
#include "examples/jsonrpc/standard_methods.h"
#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

// ---- LineFramerModel ----

TEST(LineFramerModelTest, FramesAndWhenTheyAreDue) {
  //                      0         1         2
  //                      0123456789012345678901234
  const std::string stream = "12345678\n123456789\nab\r\n \nxyz";
  LineFramerModel model(stream, 8);
  ASSERT_EQ(model.frames().size(), 3u);
  EXPECT_EQ(model.frames()[0], (ModelFrame{false, "12345678"}));
  EXPECT_EQ(model.frames()[1], (ModelFrame{true, ""}));
  EXPECT_EQ(model.frames()[2], (ModelFrame{false, "ab"}));
  EXPECT_EQ(model.FramesDueAfter(8), 0u);  // "12345678" without its '\n'
  EXPECT_EQ(model.FramesDueAfter(9), 1u);
  EXPECT_EQ(model.FramesDueAfter(17), 1u);  // 8 bytes of the second line
  EXPECT_EQ(model.FramesDueAfter(18), 2u);  // its 9th byte crosses the limit
  EXPECT_TRUE(model.DiscardingAfter(18));
  EXPECT_EQ(model.BufferedBytesAfter(18), 0u);
  EXPECT_FALSE(model.DiscardingAfter(19));
  EXPECT_EQ(model.FramesDueAfter(23), 3u);  // "ab\r\n": the '\r' is removed
  EXPECT_EQ(model.FramesDueAfter(stream.size()), 3u);      // " \n" is blank
  EXPECT_EQ(model.BufferedBytesAfter(stream.size()), 3u);  // "xyz"
}

TEST(LineFramerModelTest, UnterminatedOversizedTailIsDue) {
  LineFramerModel model("abcdef", 4);
  ASSERT_EQ(model.frames().size(), 1u);
  EXPECT_TRUE(model.frames()[0].oversized);
  EXPECT_EQ(model.FramesDueAfter(4), 0u);
  EXPECT_EQ(model.BufferedBytesAfter(4), 4u);
  EXPECT_EQ(model.FramesDueAfter(5), 1u);
}

TEST(LineFramerModelTest, CheckerCatchesWrongLateAndEarlyFrames) {
  const std::string stream = "one\ntwo\nthr";
  LineFramerModel model(stream, 16);
  {
    FramerProgressChecker checker(&model);
    EXPECT_TRUE(checker.Check(4, {{false, "one"}}, 0, false).ok());
    EXPECT_TRUE(
        checker.Check(11, {{false, "one"}, {false, "two"}}, 3, false).ok());
  }
  {
    FramerProgressChecker checker(&model);
    EXPECT_FALSE(checker.Check(4, {}, 0, false).ok());  // late
  }
  {
    FramerProgressChecker checker(&model);
    EXPECT_FALSE(checker.Check(3, {{false, "one"}}, 0, false).ok());  // early
  }
  {
    FramerProgressChecker checker(&model);
    EXPECT_FALSE(checker.Check(4, {{false, "one\r"}}, 0, false).ok());
  }
  {
    FramerProgressChecker checker(&model);
    EXPECT_FALSE(checker.Check(6, {{false, "one"}}, 1, false).ok());
    EXPECT_FALSE(checker.Check(6, {{false, "one"}}, 2, true).ok());
  }
}

// ---- CheckJsonRpcReply ----

class JsonRpcCheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterStandardMethods(&service_, &store_).ok());
    expectations_.has_method = [this](const std::string& name) {
      return service_.HasMethod(name);
    };
  }

  absl::Status Check(const std::string& message,
                     const std::optional<std::string>& reply) {
    return CheckJsonRpcReply(message, reply, expectations_);
  }
  // The real service's reply passes.
  void ExpectServiceReplyPasses(const std::string& message) {
    const std::optional<std::string> reply = service_.HandleMessage(message);
    EXPECT_TRUE(Check(message, reply).ok())
        << Check(message, reply) << "\nmessage: " << message
        << "\nreply: " << reply.value_or("<none>");
  }

  KeyValueStore store_;
  JsonRpcService service_;
  ReplyExpectations expectations_;
};

TEST_F(JsonRpcCheckerTest, AcceptsTheServicesReplies) {
  for (
      const char* message : {
          R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})",
          R"({"jsonrpc":"2.0","method":"update","params":[1]})",
          R"({"jsonrpc":"2.0","method":"foobar","id":"1"})",
          R"({"jsonrpc":"2.0","method":"foobar,"params":"bar","baz])",
          R"({"jsonrpc":"2.0","method":1,"params":"bar"})",
          "[]",
          "[1,2,3]",
          R"([{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},
               {"jsonrpc":"2.0","method":"notify_hello","params":[7]},
               {"foo":"boo"},
               {"jsonrpc":"2.0","method":"get_data","id":1e2}])",
          R"([{"jsonrpc":"2.0","method":"notify_hello"}])",
          R"({"jsonrpc":"2.0","method":"echo","params":{"a":[1.5]},"id":null})",
          R"({"jsonrpc":"2.0","method":"get","params":["nope"],"id":-7})",
          R"({"jsonrpc":"2.0","method":"ping","id":true})",
      }) {
    ExpectServiceReplyPasses(message);
  }
}

TEST_F(JsonRpcCheckerTest, CatchesWrongIds) {
  const std::string request = R"({"jsonrpc":"2.0","method":"ping","id":1})";
  EXPECT_TRUE(
      Check(request, R"({"jsonrpc":"2.0","result":"pong","id":1})").ok());
  EXPECT_FALSE(
      Check(request, R"({"jsonrpc":"2.0","result":"pong","id":"1"})").ok());
  EXPECT_FALSE(
      Check(request, R"({"jsonrpc":"2.0","result":"pong","id":1.0})").ok());
  EXPECT_FALSE(
      Check(request, R"({"jsonrpc":"2.0","result":"pong","id":null})").ok());
  EXPECT_FALSE(Check(request, R"({"jsonrpc":"2.0","result":"pong"})").ok());
}

TEST_F(JsonRpcCheckerTest, CatchesMalformedResponses) {
  const std::string request = R"({"jsonrpc":"2.0","method":"ping","id":1})";
  for (
      const char* bad : {
          R"({"result":"pong","id":1})",
          R"({"jsonrpc":"1.0","result":"pong","id":1})",
          R"({"jsonrpc":"2.0","id":1})",
          R"({"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"},"id":1})",
          R"({"jsonrpc":"2.0","error":{"code":"1","message":"m"},"id":1})",
          R"({"jsonrpc":"2.0","error":{"code":1.5,"message":"m"},"id":1})",
          R"({"jsonrpc":"2.0","error":{"code":1},"id":1})",
          R"({"jsonrpc":"2.0","error":{"code":1,"message":"m","x":0},"id":1})",
          R"({"jsonrpc":"2.0","result":"pong","id":1,"extra":0})",
          R"([{"jsonrpc":"2.0","result":"pong","id":1}])",
          "not json",
      }) {
    EXPECT_FALSE(Check(request, std::string(bad)).ok()) << bad;
  }
  EXPECT_FALSE(Check(request, std::nullopt).ok());
  EXPECT_FALSE(Check(request, std::string("{\"jsonrpc\":\"2.0\",\n\"result\":1,"
                                          "\"id\":1}"))
                   .ok());
}

TEST_F(JsonRpcCheckerTest, CatchesWrongErrorCodes) {
  EXPECT_FALSE(
      Check(
          "{",
          std::string(
              R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"m"},"id":null})"))
          .ok());
  EXPECT_TRUE(
      Check(
          "{",
          std::string(
              R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"m"},"id":null})"))
          .ok());
  EXPECT_FALSE(Check(R"({"jsonrpc":"2.0","method":"nope","id":1})",
                     std::string(R"({"jsonrpc":"2.0","result":null,"id":1})"))
                   .ok());
  EXPECT_FALSE(
      Check(
          R"({"jsonrpc":"2.0","method":"ping","id":{}})",
          std::string(
              R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"m"},"id":{}})"))
          .ok());
  EXPECT_FALSE(Check(R"({"jsonrpc":"2.0","method":"echo","params":[1],"id":1})",
                     std::string(R"({"jsonrpc":"2.0","result":[2],"id":1})"))
                   .ok());
}

TEST_F(JsonRpcCheckerTest, CatchesAnsweredNotificationsAndBatchMistakes) {
  EXPECT_FALSE(
      Check(R"({"jsonrpc":"2.0","method":"update"})",
            std::string(R"({"jsonrpc":"2.0","result":null,"id":null})"))
          .ok());
  const std::string batch =
      R"([{"jsonrpc":"2.0","method":"ping","id":1},{"jsonrpc":"2.0","method":"update"},{"jsonrpc":"2.0","method":"ping","id":2}])";
  EXPECT_TRUE(
      Check(
          batch,
          std::string(
              R"([{"jsonrpc":"2.0","result":"pong","id":1},{"jsonrpc":"2.0","result":"pong","id":2}])"))
          .ok());
  // Out of order, one missing, one extra, not an array.
  EXPECT_FALSE(
      Check(
          batch,
          std::string(
              R"([{"jsonrpc":"2.0","result":"pong","id":2},{"jsonrpc":"2.0","result":"pong","id":1}])"))
          .ok());
  EXPECT_FALSE(
      Check(batch, std::string(R"([{"jsonrpc":"2.0","result":"pong","id":1}])"))
          .ok());
  EXPECT_FALSE(
      Check(
          batch,
          std::string(
              R"([{"jsonrpc":"2.0","result":"pong","id":1},{"jsonrpc":"2.0","result":null,"id":null},{"jsonrpc":"2.0","result":"pong","id":2}])"))
          .ok());
  EXPECT_FALSE(
      Check(batch, std::string(R"({"jsonrpc":"2.0","result":"pong","id":1})"))
          .ok());
  EXPECT_FALSE(Check("[1]", std::string("[]")).ok());
}

TEST_F(JsonRpcCheckerTest, BatchBounds) {
  expectations_.max_batch_elements = 2;
  expectations_.max_batch_response_bytes = 60;
  const std::string three = "[1,2,3]";
  EXPECT_FALSE(
      Check(
          three,
          std::string(
              R"([{"jsonrpc":"2.0","error":{"code":-32600,"message":"m"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"m"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"m"},"id":null}])"))
          .ok());
  EXPECT_TRUE(
      Check(
          three,
          std::string(
              R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"m","data":{"max_batch_elements":2}},"id":null})"))
          .ok());
  const std::string two =
      R"([{"jsonrpc":"2.0","method":"ping","id":1},{"jsonrpc":"2.0","method":"ping","id":2}])";
  const std::string full =
      R"([{"jsonrpc":"2.0","result":"pong","id":1},{"jsonrpc":"2.0","result":"pong","id":2}])";
  EXPECT_FALSE(Check(two, full).ok());  // 83 bytes > 60
  const std::string too_large =
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"max_batch_response_bytes":60}},"id":null})";
  EXPECT_TRUE(IsBatchResponseTooLarge(too_large));
  EXPECT_FALSE(IsBatchResponseTooLarge(full));
  EXPECT_TRUE(Check(two, too_large).ok());
  // Only a batch can be refused for its response size.
  EXPECT_FALSE(
      Check(R"({"jsonrpc":"2.0","method":"ping","id":1})", too_large).ok());
}

}  // namespace
}  // namespace mill::jsonrpc
