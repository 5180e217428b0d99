#include "examples/jsonrpc/json_rpc_service.h"

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "examples/jsonrpc/key_value_store.h"
#include "examples/jsonrpc/standard_methods.h"
#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

// Service with the standard methods, as the example server has it.
class JsonRpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterStandardMethods(&service_, &store_).ok());
  }

  // The parsed response, or nullopt when the service answered nothing.
  std::optional<Json> Call(std::string_view message) {
    std::optional<std::string> response = service_.HandleMessage(message);
    if (!response.has_value()) return std::nullopt;
    EXPECT_EQ(response->find('\n'), std::string::npos) << *response;
    Json parsed = Json::parse(*response, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << *response;
    return parsed;
  }

  // Asserts the response equals `expected` as JSON (member order and
  // whitespace do not matter).
  void ExpectResponse(std::string_view message, std::string_view expected) {
    std::optional<Json> got = Call(message);
    ASSERT_TRUE(got.has_value()) << "no response to " << message;
    EXPECT_EQ(*got, Json::parse(expected)) << "request: " << message;
  }

  void ExpectNoResponse(std::string_view message) {
    std::optional<std::string> got = service_.HandleMessage(message);
    EXPECT_FALSE(got.has_value()) << "unexpected response: " << *got;
  }

  KeyValueStore store_;
  JsonRpcService service_;
};

// ---- The specification's "Examples" section, one test each. ----

TEST_F(JsonRpcServiceTest, SpecRpcCallWithPositionalParameters) {
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})",
      R"({"jsonrpc": "2.0", "result": 19, "id": 1})");
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2})",
      R"({"jsonrpc": "2.0", "result": -19, "id": 2})");
}

TEST_F(JsonRpcServiceTest, SpecRpcCallWithNamedParameters) {
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3})",
      R"({"jsonrpc": "2.0", "result": 19, "id": 3})");
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4})",
      R"({"jsonrpc": "2.0", "result": 19, "id": 4})");
}

TEST_F(JsonRpcServiceTest, SpecNotification) {
  ExpectNoResponse(
      R"({"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]})");
  ExpectNoResponse(R"({"jsonrpc": "2.0", "method": "foobar"})");
}

TEST_F(JsonRpcServiceTest, SpecRpcCallOfNonExistentMethod) {
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": "foobar", "id": "1"})",
      R"({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"})");
}

TEST_F(JsonRpcServiceTest, SpecRpcCallWithInvalidJson) {
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz])",
      R"({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})");
}

TEST_F(JsonRpcServiceTest, SpecRpcCallWithInvalidRequestObject) {
  ExpectResponse(
      R"({"jsonrpc": "2.0", "method": 1, "params": "bar"})",
      R"({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null})");
}

TEST_F(JsonRpcServiceTest, SpecBatchWithInvalidJson) {
  ExpectResponse(
      R"([
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
])",
      R"({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})");
}

TEST_F(JsonRpcServiceTest, SpecBatchWithEmptyArray) {
  ExpectResponse(
      "[]",
      R"({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null})");
}

TEST_F(JsonRpcServiceTest, SpecInvalidBatchButNotEmpty) {
  ExpectResponse(
      "[1]",
      R"([{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}])");
}

TEST_F(JsonRpcServiceTest, SpecInvalidBatch) {
  ExpectResponse("[1,2,3]", R"([
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
])");
}

TEST_F(JsonRpcServiceTest, SpecBatch) {
  ExpectResponse(R"([
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
  {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
  {"foo": "boo"},
  {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
  {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
])",
                 R"([
  {"jsonrpc": "2.0", "result": 7, "id": "1"},
  {"jsonrpc": "2.0", "result": 19, "id": "2"},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
  {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
])");
}

TEST_F(JsonRpcServiceTest, SpecBatchAllNotifications) {
  ExpectNoResponse(R"([
  {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
  {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
])");
}

// ---- Request validation. ----

TEST_F(JsonRpcServiceTest, InvalidRequestsAreRejected) {
  constexpr const char* kInvalidNullId =
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null})";
  const char* const invalid[] = {
      R"("just a string")",
      R"(42)",
      R"(null)",
      R"({})",
      R"({"method":"ping"})",                               // no "jsonrpc"
      R"({"jsonrpc":"1.0","method":"ping"})",               // wrong version
      R"({"jsonrpc":2.0,"method":"ping"})",                 // not a string
      R"({"jsonrpc":"2.0"})",                               // no method
      R"({"jsonrpc":"2.0","method":null})",                 // method not string
      R"({"jsonrpc":"2.0","method":["ping"]})",             //
      R"({"jsonrpc":"2.0","method":"ping","params":5})",    // params scalar
      R"({"jsonrpc":"2.0","method":"ping","params":"x"})",  //
      R"({"jsonrpc":"2.0","method":"ping","params":null})",  //
      R"({"jsonrpc":"2.0","method":"ping","id":true})",      // id of wrong type
      R"({"jsonrpc":"2.0","method":"ping","id":{}})",        //
      R"({"jsonrpc":"2.0","method":"ping","id":[1]})",       //
  };
  for (const char* request : invalid) {
    ExpectResponse(request, kInvalidNullId);
  }
}

TEST_F(JsonRpcServiceTest, InvalidRequestWithValidIdEchoesTheId) {
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":7,"id":"abc"})",
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":"abc"})");
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":"ping","params":1,"id":5})",
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":5})");
}

TEST_F(JsonRpcServiceTest, ParseErrors) {
  constexpr const char* kParseError =
      R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})";
  for (const char* bad : {"{", "[", "{\"jsonrpc\":\"2.0\",}", "nul", "{} {}",
                          "\"\xff\"", "'single'"}) {
    ExpectResponse(bad, kParseError);
  }
}

// Regression (found by json_rpc_service_fuzz): nlohmann's lexer stops at a
// NUL byte, so a request followed by NUL and stray brackets parsed as the
// request alone, and the depth check, scanning past the NUL, underflowed on
// the stray closers and refused it as too deep.
TEST_F(JsonRpcServiceTest, RawNulByteIsAParseError) {
  constexpr const char* kParseError =
      R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})";
  using std::string_literals::operator""s;
  for (const std::string& bad :
       {"{\"id\":0}\0]}["s,
        "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}\0"s,
        "[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}]\0{}"s,
        "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"a\0b\"],"
        "\"id\":1}"s}) {
    ExpectResponse(bad, kParseError);
  }
}

// Stray closers after a complete text are a parse error, never a depth
// error (the depth scan must not wrap below zero).
TEST_F(JsonRpcServiceTest, StrayClosersAreAParseError) {
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":"ping","id":1}]]]][[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[)",
      R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})");
}

TEST_F(JsonRpcServiceTest, NullIdIsARequestNotANotification) {
  ExpectResponse(R"({"jsonrpc":"2.0","method":"ping","id":null})",
                 R"({"jsonrpc":"2.0","result":"pong","id":null})");
}

TEST_F(JsonRpcServiceTest, NotificationsAreNeverAnswered) {
  // Unknown method, invalid params, a throwing method: all silent.
  ExpectNoResponse(R"({"jsonrpc":"2.0","method":"nope","params":[1]})");
  ExpectNoResponse(R"({"jsonrpc":"2.0","method":"subtract","params":["x",1]})");
  ASSERT_TRUE(service_
                  .RegisterMethod("boom",
                                  [](const Json&) -> Json {
                                    throw std::runtime_error("kaboom");
                                  })
                  .ok());
  ExpectNoResponse(R"({"jsonrpc":"2.0","method":"boom"})");
}

TEST_F(JsonRpcServiceTest, NotificationsRunTheirMethod) {
  ExpectNoResponse(
      R"({"jsonrpc":"2.0","method":"set","params":["from_notification",1]})");
  EXPECT_EQ(store_.Get("from_notification"), Json(1));
}

TEST_F(JsonRpcServiceTest, BatchMixesErrorsResultsAndNotificationsInOrder) {
  ExpectResponse(
      R"([{"jsonrpc":"2.0","method":"ping","id":1},
          [],
          {"jsonrpc":"2.0","method":"ping"},
          {"jsonrpc":"2.0","method":"add","params":[1],"id":2},
          {"jsonrpc":"2.0","method":"echo","params":{"x":[1]},"id":3}])",
      R"([{"jsonrpc":"2.0","result":"pong","id":1},
          {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},
          {"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params",
           "data":"expected exactly 2 positional params"},"id":2},
          {"jsonrpc":"2.0","result":{"x":[1]},"id":3}])");
}

TEST_F(JsonRpcServiceTest, NestedBatchElementIsInvalid) {
  ExpectResponse(
      R"([[{"jsonrpc":"2.0","method":"ping","id":1}]])",
      R"([{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}])");
}

// ---- Ids. ----

TEST_F(JsonRpcServiceTest, IdsAreEchoedByValue) {
  for (const char* id :
       {R"("1")", R"("")", R"("héllo \"quoted\" \\ \u0001")", "0", "-7",
        "9223372036854775807", "-9223372036854775808", "18446744073709551615",
        "null"}) {
    const std::string request =
        std::string(R"({"jsonrpc":"2.0","method":"ping","id":)") + id + "}";
    const std::string expected =
        std::string(R"({"jsonrpc":"2.0","result":"pong","id":)") + id + "}";
    ExpectResponse(request, expected);
  }
}

TEST_F(JsonRpcServiceTest, NonIntegerIdsAreEchoedWithTheirOriginalText) {
  for (const char* id :
       {"1.5", "1.50", "-0.0", "1e2", "2.5E-3",
        "123456789012345678901234567890", "-98765432109876543210"}) {
    const std::string request =
        std::string(R"({"jsonrpc":"2.0","method":"ping","id":)") + id + "}";
    std::optional<std::string> response = service_.HandleMessage(request);
    ASSERT_TRUE(response.has_value());
    EXPECT_NE(response->find(std::string("\"id\":") + id + "}"),
              std::string::npos)
        << "id " << id << " came back as " << *response;
  }
}

// Regression (found by json_rpc_service_fuzz): an id of -0 came back as 0.
TEST_F(JsonRpcServiceTest, MinusZeroIdIsEchoedAsSent) {
  std::optional<std::string> response =
      service_.HandleMessage(R"({"jsonrpc":"2.0","method":"ping","id":-0})");
  ASSERT_TRUE(response.has_value());
  EXPECT_NE(response->find(R"("id":-0})"), std::string::npos) << *response;
  response =
      service_.HandleMessage(R"([{"jsonrpc":"2.0","method":"ping","id":0},)"
                             R"({"jsonrpc":"2.0","method":"ping","id":-0},)"
                             R"({"jsonrpc":"2.0","method":"ping","id":-0.0}])");
  ASSERT_TRUE(response.has_value());
  EXPECT_NE(response->find(R"("id":0})"), std::string::npos) << *response;
  EXPECT_NE(response->find(R"("id":-0})"), std::string::npos) << *response;
  EXPECT_NE(response->find(R"("id":-0.0})"), std::string::npos) << *response;
}

TEST_F(JsonRpcServiceTest, NumberOutsideDoubleRangeIsAParseError) {
  // nlohmann rejects numbers a double cannot hold; nothing to echo then.
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":"ping","id":1e400})",
      R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})");
}

TEST_F(JsonRpcServiceTest, RawIdsInBatchMatchTheirElements) {
  std::optional<std::string> response = service_.HandleMessage(
      R"([{"jsonrpc":"2.0","method":"ping","id":1.0},
          {"jsonrpc":"2.0","method":"ping","id":7,"params":{"id":2.0}},
          {"jsonrpc":"2.0","method":"ping"},
          {"jsonrpc":"2.0","method":"ping","id":3.00},
          {"jsonrpc":"2.0","method":"ping","id":4.0,"id":"dup"}])");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(
      *response,
      R"([{"jsonrpc":"2.0","result":"pong","id":1.0},)"
      R"({"jsonrpc":"2.0","error":{"code":-32602,"data":"takes no params","message":"Invalid params"},"id":7},)"
      R"({"jsonrpc":"2.0","result":"pong","id":3.00},)"
      R"({"jsonrpc":"2.0","result":"pong","id":"dup"}])");
}

// ---- Method errors. ----

TEST_F(JsonRpcServiceTest, ThrowingMethodIsInternalError) {
  ASSERT_TRUE(service_
                  .RegisterMethod("boom",
                                  [](const Json&) -> Json {
                                    throw std::runtime_error("kaboom");
                                  })
                  .ok());
  ASSERT_TRUE(
      service_.RegisterMethod("boom_int", [](const Json&) -> Json { throw 42; })
          .ok());
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":"boom","id":1})",
      R"({"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error","data":"kaboom"},"id":1})");
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":"boom_int","id":2})",
      R"({"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":2})");
}

TEST_F(JsonRpcServiceTest, RpcErrorIsPassedThrough) {
  ASSERT_TRUE(service_
                  .RegisterMethod("teapot",
                                  [](const Json& params) -> Json {
                                    throw RpcError{418, "I'm a teapot", params};
                                  })
                  .ok());
  ExpectResponse(
      R"({"jsonrpc":"2.0","method":"teapot","params":{"tea":"earl grey"},"id":"t"})",
      R"({"jsonrpc":"2.0","error":{"code":418,"message":"I'm a teapot","data":{"tea":"earl grey"}},"id":"t"})");
}

TEST_F(JsonRpcServiceTest, MethodWithoutParamsReceivesNull) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(service_
                  .RegisterMethod("is_null",
                                  [&calls](const Json& params) {
                                    ++calls;
                                    return Json(params.is_null());
                                  })
                  .ok());
  ExpectResponse(R"({"jsonrpc":"2.0","method":"is_null","id":1})",
                 R"({"jsonrpc":"2.0","result":true,"id":1})");
  ExpectResponse(R"({"jsonrpc":"2.0","method":"is_null","params":[],"id":1})",
                 R"({"jsonrpc":"2.0","result":false,"id":1})");
  EXPECT_EQ(calls.load(), 2);
}

// ---- Registration and limits. ----

TEST(JsonRpcServiceRegistrationTest, RejectsReservedEmptyAndDuplicateNames) {
  JsonRpcService service;
  const auto method = [](const Json&) { return Json(); };
  EXPECT_EQ(service.RegisterMethod("rpc.discover", method).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(service.RegisterMethod("", method).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(service.RegisterMethod("null", nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(service.RegisterMethod("m", method).ok());
  EXPECT_EQ(service.RegisterMethod("m", method).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(service.HasMethod("m"));
  EXPECT_FALSE(service.HasMethod("rpc.discover"));

  KeyValueStore store;
  ASSERT_TRUE(service.RegisterMethod("echo", method).ok());
  EXPECT_EQ(RegisterStandardMethods(&service, &store).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(service.HasMethod("ping"));  // All or nothing.
}

TEST(JsonRpcServiceLimitsTest, TooDeepNestingIsRefusedWithoutRecursion) {
  JsonRpcService::Options options;
  options.max_depth = 16;
  JsonRpcService service(options);
  KeyValueStore store;
  ASSERT_TRUE(RegisterStandardMethods(&service, &store).ok());
  const auto echo_with_depth = [](int depth) {
    return std::string(R"({"jsonrpc":"2.0","method":"echo","id":1,"params":)") +
           std::string(depth, '[') + std::string(depth, ']') + "}";
  };
  // Depth 15 arrays + the request object = 16: accepted.
  std::optional<std::string> ok = service.HandleMessage(echo_with_depth(15));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(Json::parse(*ok)["result"].dump(),
            std::string(15, '[') + std::string(15, ']'));
  std::optional<std::string> deep = service.HandleMessage(echo_with_depth(16));
  ASSERT_TRUE(deep.has_value());
  EXPECT_EQ(
      Json::parse(*deep),
      Json::parse(
          R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"max_depth":16}},"id":null})"));
  // Brackets inside strings do not count.
  std::optional<std::string> in_string = service.HandleMessage(
      R"({"jsonrpc":"2.0","method":"echo","id":1,"params":["[[[[[[[[[[[[[[[[[[[[\"{{{{{{{{{{{{{{{{{{{{{{"]})");
  ASSERT_TRUE(in_string.has_value());
  EXPECT_EQ(Json::parse(*in_string)["result"][0],
            "[[[[[[[[[[[[[[[[[[[[\"{{{{{{{{{{{{{{{{{{{{{{");
  // A huge nesting (default limit) is refused, not a stack overflow.
  JsonRpcService default_service;
  const std::string huge = std::string(200000, '[') + std::string(200000, ']');
  std::optional<std::string> refused = default_service.HandleMessage(huge);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(Json::parse(*refused)["error"]["code"], kInvalidRequest);
}

TEST(JsonRpcServiceLimitsTest, OversizedMessageResponse) {
  EXPECT_EQ(
      Json::parse(JsonRpcService::OversizedMessageResponse(1024)),
      Json::parse(
          R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"max_line_bytes":1024}},"id":null})"));
}

// "[1,1,...]" with `n` elements.
std::string BatchOfOnes(size_t n) {
  std::string batch = "[";
  for (size_t i = 0; i < n; ++i) batch += i == 0 ? "1" : ",1";
  return batch + "]";
}

TEST(JsonRpcServiceLimitsTest, DefaultBatchBounds) {
  JsonRpcService::Options options;
  EXPECT_EQ(options.max_batch_elements, 1000u);
  EXPECT_EQ(options.max_batch_response_bytes, size_t{1} << 20);
}

TEST(JsonRpcServiceLimitsTest, BatchOverTheElementBoundIsOneInvalidRequest) {
  JsonRpcService service;  // Defaults: 1,000 elements.
  // At the bound: one error per element.
  std::optional<std::string> at_bound =
      service.HandleMessage(BatchOfOnes(1000));
  ASSERT_TRUE(at_bound.has_value());
  EXPECT_EQ(Json::parse(*at_bound).size(), 1000u);
  // Past it: one error object, not a 1,001-element array.
  std::optional<std::string> over = service.HandleMessage(BatchOfOnes(1001));
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(
      Json::parse(*over),
      Json::parse(
          R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"max_batch_elements":1000}},"id":null})"));
  // The issue's case: a 1 MB line of ones is answered in ~100 bytes, not
  // 40 MB.
  std::optional<std::string> huge = service.HandleMessage(BatchOfOnes(500000));
  ASSERT_TRUE(huge.has_value());
  EXPECT_LT(huge->size(), 200u);
  EXPECT_EQ(Json::parse(*huge)["error"]["code"], kInvalidRequest);
}

TEST(JsonRpcServiceLimitsTest, BatchOverTheElementBoundRunsNothing) {
  JsonRpcService::Options options;
  options.max_batch_elements = 2;
  JsonRpcService service(options);
  int calls = 0;
  ASSERT_TRUE(
      service.RegisterMethod("count", [&calls](const Json&) { return ++calls; })
          .ok());
  const std::string call = R"({"jsonrpc":"2.0","method":"count","id":1})";
  const std::string note = R"({"jsonrpc":"2.0","method":"count"})";
  EXPECT_FALSE(service.HandleMessage("[" + note + "," + note + "]"));
  EXPECT_EQ(calls, 2);
  std::optional<std::string> refused =
      service.HandleMessage("[" + call + "," + note + "," + call + "]");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(Json::parse(*refused)["error"]["data"],
            Json::parse(R"({"max_batch_elements":2})"));
  EXPECT_EQ(calls, 2);  // No element ran.
}

TEST(JsonRpcServiceLimitsTest,
     BatchResponseOverTheByteBoundIsOneInvalidRequest) {
  JsonRpcService::Options options;
  options.max_batch_response_bytes = 200;
  JsonRpcService service(options);
  std::vector<std::string> ran;
  ASSERT_TRUE(service
                  .RegisterMethod("text",
                                  [&ran](const Json& params) {
                                    ran.push_back(params[0]);
                                    return Json(std::string(
                                        params[1].get<size_t>(), 'x'));
                                  })
                  .ok());
  auto call = [](const std::string& tag, size_t length, int id) {
    return R"({"jsonrpc":"2.0","method":"text","params":[")" + tag + "\"," +
           std::to_string(length) + R"(],"id":)" + std::to_string(id) + "}";
  };
  // Each response is {"jsonrpc":"2.0","result":"x...","id":N}: 36 bytes plus
  // the string. Two of 60 make 2 * 96 + 3 = 195 bytes: allowed.
  std::optional<std::string> fits = service.HandleMessage(
      "[" + call("a", 60, 1) + "," + call("b", 60, 2) + "]");
  ASSERT_TRUE(fits.has_value());
  EXPECT_EQ(fits->size(), 195u);
  EXPECT_EQ(Json::parse(*fits).size(), 2u);
  // Three are over the bound: one error. The element whose response
  // crossed it ran; the ones after it do not.
  ran.clear();
  std::optional<std::string> over = service.HandleMessage(
      "[" + call("a", 60, 1) + "," + call("b", 60, 2) + "," + call("c", 60, 3) +
      "," + call("d", 1, 4) + "]");
  ASSERT_TRUE(over.has_value());
  EXPECT_EQ(
      Json::parse(*over),
      Json::parse(
          R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"max_batch_response_bytes":200}},"id":null})"));
  EXPECT_EQ(ran, (std::vector<std::string>{"a", "b", "c"}));
  // Exactly at the bound is allowed: 96 + 101 + 3 = 200.
  std::optional<std::string> exact = service.HandleMessage(
      "[" + call("a", 60, 1) + "," + call("b", 65, 2) + "]");
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(exact->size(), 200u);
  EXPECT_TRUE(Json::parse(*exact).is_array());
  // A single request is not a batch: not bound by it.
  std::optional<std::string> single = service.HandleMessage(call("d", 500, 4));
  ASSERT_TRUE(single.has_value());
  EXPECT_EQ(Json::parse(*single)["result"], std::string(500, 'x'));
}

}  // namespace
}  // namespace mill::jsonrpc
