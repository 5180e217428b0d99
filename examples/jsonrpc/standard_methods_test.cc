#include "examples/jsonrpc/standard_methods.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

class StandardMethodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterStandardMethods(&service_, &store_).ok());
  }

  // Calls `method` with `params` (JSON text, or empty for none) and returns
  // the whole parsed response.
  Json Call(const std::string& method, const std::string& params = "") {
    std::string request =
        R"({"jsonrpc":"2.0","id":1,"method":")" + method + "\"";
    if (!params.empty()) request += R"(,"params":)" + params;
    request += "}";
    std::optional<std::string> response = service_.HandleMessage(request);
    EXPECT_TRUE(response.has_value()) << request;
    if (!response.has_value()) return Json();
    Json parsed = Json::parse(*response);
    EXPECT_EQ(parsed["jsonrpc"], "2.0");
    EXPECT_EQ(parsed["id"], 1);
    return parsed;
  }

  Json Result(const std::string& method, const std::string& params = "") {
    Json response = Call(method, params);
    EXPECT_TRUE(response.contains("result")) << response.dump();
    return response.value("result", Json());
  }

  // The error code, or 0 when the call succeeded.
  int ErrorCode(const std::string& method, const std::string& params = "") {
    Json response = Call(method, params);
    if (!response.contains("error")) return 0;
    return response["error"]["code"].get<int>();
  }

  KeyValueStore store_;
  JsonRpcService service_;
};

TEST_F(StandardMethodsTest, Subtract) {
  EXPECT_EQ(Result("subtract", "[42, 23]"), 19);
  EXPECT_EQ(Result("subtract", "[23, 42]"), -19);
  EXPECT_EQ(Result("subtract", R"({"subtrahend": 23, "minuend": 42})"), 19);
  EXPECT_EQ(Result("subtract", "[1.5, 0.25]"), 1.25);
  // Exact in 64 bits where possible, double when the result overflows.
  EXPECT_EQ(Result("subtract", "[-9223372036854775807, 1]"), Json(INT64_MIN));
  EXPECT_TRUE(
      Result("subtract", "[-9223372036854775808, 1]").is_number_float());
  EXPECT_EQ(ErrorCode("subtract", "[1]"), kInvalidParams);
  EXPECT_EQ(ErrorCode("subtract", "[1, 2, 3]"), kInvalidParams);
  EXPECT_EQ(ErrorCode("subtract", R"(["1", 2])"), kInvalidParams);
  EXPECT_EQ(ErrorCode("subtract", R"({"minuend": 1})"), kInvalidParams);
  EXPECT_EQ(ErrorCode("subtract"), kInvalidParams);
}

TEST_F(StandardMethodsTest, Sum) {
  EXPECT_EQ(Result("sum", "[1, 2, 4]"), 7);
  EXPECT_EQ(Result("sum", "[]"), 0);
  EXPECT_EQ(Result("sum", "[0.5, 0.25, 1]"), 1.75);
  EXPECT_EQ(ErrorCode("sum", "[1, null]"), kInvalidParams);
  EXPECT_EQ(ErrorCode("sum", R"({"a": 1})"), kInvalidParams);
}

TEST_F(StandardMethodsTest, GetData) {
  EXPECT_EQ(Result("get_data"), Json::parse(R"(["hello", 5])"));
  EXPECT_EQ(Result("get_data", "[]"), Json::parse(R"(["hello", 5])"));
  EXPECT_EQ(ErrorCode("get_data", "[1]"), kInvalidParams);
}

TEST_F(StandardMethodsTest, NotificationMethodsAnswerNullWhenCalled) {
  EXPECT_EQ(Result("update", "[1,2,3,4,5]"), nullptr);
  EXPECT_EQ(Result("notify_hello", "[7]"), nullptr);
  EXPECT_EQ(Result("notify_sum", "[1,2,4]"), nullptr);
  EXPECT_EQ(Result("update"), nullptr);
}

TEST_F(StandardMethodsTest, Ping) {
  EXPECT_EQ(Result("ping"), "pong");
  EXPECT_EQ(Result("ping", "{}"), "pong");
  EXPECT_EQ(ErrorCode("ping", "[1]"), kInvalidParams);
}

TEST_F(StandardMethodsTest, Echo) {
  EXPECT_EQ(Result("echo", R"([1, "two", {"three": [3.5, null, true]}])"),
            Json::parse(R"([1, "two", {"three": [3.5, null, true]}])"));
  EXPECT_EQ(Result("echo", R"({"k": "v"})"), Json::parse(R"({"k": "v"})"));
  EXPECT_EQ(Result("echo"), nullptr);
}

TEST_F(StandardMethodsTest, Add) {
  EXPECT_EQ(Result("add", "[2, 3]"), 5);
  EXPECT_EQ(Result("add", R"({"a": 2, "b": -3})"), -1);
  EXPECT_EQ(Result("add", "[0.5, 0.25]"), 0.75);
  EXPECT_EQ(Result("add", "[18446744073709551615, 1]"), 18446744073709551616.0);
  EXPECT_EQ(ErrorCode("add", R"({"a": 2})"), kInvalidParams);
  EXPECT_EQ(ErrorCode("add", R"({"a": 2, "b": "3"})"), kInvalidParams);
  EXPECT_EQ(ErrorCode("add", "[true, 1]"), kInvalidParams);
}

TEST_F(StandardMethodsTest, KeyValueMethods) {
  EXPECT_EQ(Result("list"), Json::array());
  EXPECT_EQ(Result("set", R"({"key": "b", "value": {"nested": [1, 2]}})"),
            true);
  EXPECT_EQ(Result("set", R"(["a", "first"])"), true);
  EXPECT_EQ(Result("set", R"(["c", null])"), true);
  EXPECT_EQ(Result("get", R"({"key": "b"})"),
            Json::parse(R"({"nested": [1, 2]})"));
  EXPECT_EQ(Result("get", R"(["a"])"), "first");
  EXPECT_EQ(Result("get", R"(["c"])"), nullptr);  // null is a stored value.
  EXPECT_EQ(Result("list"), Json::parse(R"(["a", "b", "c"])"));
  EXPECT_EQ(Result("set", R"(["a", 2])"), true);  // Overwrite.
  EXPECT_EQ(Result("get", R"(["a"])"), 2);
  EXPECT_EQ(Result("delete", R"(["a"])"), true);
  EXPECT_EQ(Result("delete", R"({"key": "a"})"), false);
  EXPECT_EQ(Result("list"), Json::parse(R"(["b", "c"])"));
}

TEST_F(StandardMethodsTest, GetOfMissingKeyIsKeyNotFound) {
  EXPECT_EQ(Call("get", R"(["missing"])"),
            Json::parse(R"({"jsonrpc":"2.0","id":1,"error":
                {"code":404,"message":"Key not found","data":{"key":"missing"}}})"));
}

TEST_F(StandardMethodsTest, KeyValueParamErrors) {
  EXPECT_EQ(ErrorCode("set", R"([1, 2])"), kInvalidParams);
  EXPECT_EQ(ErrorCode("set", R"(["k"])"), kInvalidParams);
  EXPECT_EQ(ErrorCode("set", R"({"key": "k"})"), kInvalidParams);
  EXPECT_EQ(ErrorCode("set", R"({"key": null, "value": 1})"), kInvalidParams);
  EXPECT_EQ(ErrorCode("get"), kInvalidParams);
  EXPECT_EQ(ErrorCode("get", R"([1])"), kInvalidParams);
  EXPECT_EQ(ErrorCode("get", R"(["a", "b"])"), kInvalidParams);
  EXPECT_EQ(ErrorCode("get", R"({"name": "a"})"), kInvalidParams);
  EXPECT_EQ(ErrorCode("delete", R"([])"), kInvalidParams);
  EXPECT_EQ(ErrorCode("list", R"(["x"])"), kInvalidParams);
  EXPECT_EQ(store_.size(), 0u);
}

TEST(StandardMethodsStoreFullTest, SetOnAFullStoreIsStoreFullAndStoresNothing) {
  KeyValueStore::Options options;
  options.max_keys = 2;
  options.max_bytes = 300;
  KeyValueStore store(options);
  JsonRpcService service;
  ASSERT_TRUE(RegisterStandardMethods(&service, &store).ok());
  auto call = [&service](const std::string& params) {
    std::optional<std::string> response = service.HandleMessage(
        R"({"jsonrpc":"2.0","id":7,"method":"set","params":)" + params + "}");
    EXPECT_TRUE(response.has_value());
    return response.has_value() ? Json::parse(*response) : Json();
  };
  EXPECT_EQ(call(R"(["a", 1])")["result"], true);
  EXPECT_EQ(call(R"(["b", 2])")["result"], true);
  // A third key: max_keys.
  Json full = call(R"(["c", 3])");
  EXPECT_EQ(full["id"], 7);
  EXPECT_FALSE(full.contains("result"));
  EXPECT_EQ(full["error"]["code"], kStoreFull);
  EXPECT_EQ(full["error"]["message"], "Store full");
  EXPECT_EQ(full["error"]["data"]["max_keys"], 2);
  EXPECT_EQ(full["error"]["data"]["max_bytes"], 300);
  EXPECT_NE(full["error"]["data"]["detail"].get<std::string>().find("max_keys"),
            std::string::npos)
      << full;
  // Growing a value past max_bytes.
  Json too_big = call(R"(["a", ")" + std::string(200, 'x') + R"("])");
  EXPECT_EQ(too_big["error"]["code"], kStoreFull);
  EXPECT_NE(
      too_big["error"]["data"]["detail"].get<std::string>().find("max_bytes"),
      std::string::npos)
      << too_big;
  EXPECT_EQ(store.Keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(store.Get("a"), Json(1));
  // Deleting makes room; the store keeps serving.
  ASSERT_TRUE(service.HandleMessage(
      R"({"jsonrpc":"2.0","id":8,"method":"delete","params":["b"]})"));
  EXPECT_EQ(call(R"(["c", 3])")["result"], true);
}

}  // namespace
}  // namespace mill::jsonrpc
