#include "examples/jsonrpc/json_rpc_checker.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace mill::jsonrpc {
namespace {

using Json = nlohmann::json;

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;

// The response one request must get.
struct ExpectedResponse {
  ExpectedResponse(Json id, std::optional<int> code)
      : id(std::move(id)), code(code) {}

  Json id;                  // Echoed id, or null.
  std::optional<int> code;  // Required error code; nullopt: result or error.
  // For "echo": the result it must return.
  std::optional<Json> echo_result;
};

// The parsed text, or a discarded value when it is not JSON.
// A NUL byte makes it not JSON (RFC 8259 allows none outside escapes), even
// though nlohmann's lexer takes it for the end of the input.
Json ParseOrDiscard(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) {
    return Json(Json::value_t::discarded);
  }
  try {
    return Json::parse(text.data(), text.data() + text.size(),
                       /*cb=*/nullptr, /*allow_exceptions=*/false);
  } catch (const Json::exception&) {
    return Json(Json::value_t::discarded);
  }
}

std::string Show(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  return text;
}

// Deepest array/object nesting, without recursion.
size_t Depth(const Json& root) {
  size_t deepest = 0;
  std::vector<std::pair<const Json*, size_t>> stack = {{&root, 0}};
  while (!stack.empty()) {
    const auto [value, depth] = stack.back();
    stack.pop_back();
    if (!value->is_structured()) continue;
    const size_t inner = depth + 1;
    if (inner > deepest) deepest = inner;
    for (const Json& child : *value) stack.push_back({&child, inner});
  }
  return deepest;
}

bool SameId(const Json& a, const Json& b) {
  return a.type() == b.type() && a == b;
}

// Structure of one response object, whatever it answers.
absl::Status CheckResponseShape(const Json& response) {
  if (!response.is_object()) {
    return absl::InternalError(
        absl::StrCat("response is not an object: ", Show(response)));
  }
  for (const auto& [key, value] : response.items()) {
    if (key != "jsonrpc" && key != "id" && key != "result" && key != "error") {
      return absl::InternalError(
          absl::StrCat("response has member \"", key, "\": ", Show(response)));
    }
  }
  const auto version = response.find("jsonrpc");
  if (version == response.end() || *version != "2.0") {
    return absl::InternalError(
        absl::StrCat("response without \"jsonrpc\":\"2.0\": ", Show(response)));
  }
  const auto id = response.find("id");
  if (id == response.end() ||
      !(id->is_string() || id->is_number() || id->is_null())) {
    return absl::InternalError(
        absl::StrCat("response without a valid id: ", Show(response)));
  }
  const bool has_result = response.contains("result");
  const auto error = response.find("error");
  if (has_result == (error != response.end())) {
    return absl::InternalError(
        absl::StrCat("response must have exactly one of result and error: ",
                     Show(response)));
  }
  if (error != response.end()) {
    if (!error->is_object()) {
      return absl::InternalError(
          absl::StrCat("error is not an object: ", Show(response)));
    }
    for (const auto& [key, value] : error->items()) {
      if (key != "code" && key != "message" && key != "data") {
        return absl::InternalError(
            absl::StrCat("error has member \"", key, "\": ", Show(response)));
      }
    }
    const auto code = error->find("code");
    const auto message = error->find("message");
    if (code == error->end() || !code->is_number_integer()) {
      return absl::InternalError(
          absl::StrCat("error code is not an integer: ", Show(response)));
    }
    if (message == error->end() || !message->is_string()) {
      return absl::InternalError(
          absl::StrCat("error message is not a string: ", Show(response)));
    }
  }
  return absl::OkStatus();
}

// One response against what it must be.
absl::Status CheckResponse(const Json& response,
                           const ExpectedResponse& expected) {
  if (absl::Status shape = CheckResponseShape(response); !shape.ok()) {
    return shape;
  }
  if (!SameId(response["id"], expected.id)) {
    return absl::InternalError(absl::StrCat("id ", Show(response["id"]),
                                            " should be ", Show(expected.id),
                                            ": ", Show(response)));
  }
  if (expected.code.has_value()) {
    if (!response.contains("error") ||
        response["error"]["code"] != *expected.code) {
      return absl::InternalError(absl::StrCat("expected error ", *expected.code,
                                              ": ", Show(response)));
    }
  }
  if (expected.echo_result.has_value() && response.contains("result") &&
      response["result"] != *expected.echo_result) {
    return absl::InternalError(
        absl::StrCat("echo returned ", Show(response["result"]), " for params ",
                     Show(*expected.echo_result)));
  }
  return absl::OkStatus();
}

// What one request (a batch element or the whole message) must get, or
// nullopt for a valid notification.
std::optional<ExpectedResponse> Expect(const Json& request,
                                       const ReplyExpectations& expectations) {
  if (!request.is_object()) return ExpectedResponse{nullptr, kInvalidRequest};
  const auto id = request.find("id");
  const bool is_notification = id == request.end();
  if (!is_notification && !id->is_string() && !id->is_number() &&
      !id->is_null()) {
    return ExpectedResponse{nullptr, kInvalidRequest};
  }
  const Json echoed = is_notification ? Json(nullptr) : *id;
  const auto version = request.find("jsonrpc");
  const auto method = request.find("method");
  const auto params = request.find("params");
  const bool well_formed =
      version != request.end() && *version == "2.0" &&
      method != request.end() && method->is_string() &&
      (params == request.end() || params->is_array() || params->is_object());
  if (!well_formed) return ExpectedResponse{echoed, kInvalidRequest};
  if (is_notification) return std::nullopt;
  const std::string& name = method->get_ref<const std::string&>();
  if (!expectations.has_method || !expectations.has_method(name)) {
    return ExpectedResponse{echoed, kMethodNotFound};
  }
  ExpectedResponse expected{echoed, std::nullopt};
  if (name == "echo") {
    expected.echo_result = params == request.end() ? Json(nullptr) : *params;
  }
  return expected;
}

absl::Status ExpectSingleError(const std::optional<Json>& reply, int code,
                               const std::optional<Json>& data,
                               const char* why) {
  if (!reply.has_value()) {
    return absl::InternalError(absl::StrCat("no reply to ", why));
  }
  if (absl::Status s = CheckResponse(*reply, ExpectedResponse(nullptr, code));
      !s.ok()) {
    return absl::InternalError(absl::StrCat(why, ": ", s.message()));
  }
  if (data.has_value() && (*reply)["error"].value("data", Json()) != *data) {
    return absl::InternalError(absl::StrCat(why, ": error data should be ",
                                            Show(*data), ": ", Show(*reply)));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsBatchResponseTooLarge(std::string_view reply) {
  const Json parsed = ParseOrDiscard(reply);
  if (!parsed.is_object() || !parsed.contains("error")) return false;
  const Json& error = parsed["error"];
  return error.is_object() && error.value("code", 0) == kInvalidRequest &&
         error.contains("data") && error["data"].is_object() &&
         error["data"].contains("max_batch_response_bytes");
}

absl::Status CheckJsonRpcReply(std::string_view message,
                               const std::optional<std::string>& reply_text,
                               const ReplyExpectations& expectations) {
  std::optional<Json> reply;
  if (reply_text.has_value()) {
    if (reply_text->find('\n') != std::string::npos) {
      return absl::InternalError("reply spans several lines");
    }
    Json parsed = ParseOrDiscard(*reply_text);
    if (parsed.is_discarded()) {
      return absl::InternalError(
          absl::StrCat("reply is not JSON: ", reply_text->substr(0, 200)));
    }
    reply = std::move(parsed);
  }

  const Json request = ParseOrDiscard(message);
  if (request.is_discarded()) {
    return ExpectSingleError(reply, kParseError, std::nullopt, "invalid JSON");
  }
  if (Depth(request) > expectations.max_depth) {
    return ExpectSingleError(reply, kInvalidRequest,
                             Json{{"max_depth", expectations.max_depth}},
                             "too deep a message");
  }

  if (!request.is_array()) {
    const std::optional<ExpectedResponse> expected =
        Expect(request, expectations);
    if (!expected.has_value()) {
      if (reply.has_value()) {
        return absl::InternalError(
            absl::StrCat("a notification was answered: ", Show(*reply)));
      }
      return absl::OkStatus();
    }
    if (!reply.has_value()) {
      return absl::InternalError("a request got no reply");
    }
    return CheckResponse(*reply, *expected);
  }

  if (request.empty()) {
    return ExpectSingleError(reply, kInvalidRequest, std::nullopt,
                             "an empty batch");
  }
  if (request.size() > expectations.max_batch_elements) {
    return ExpectSingleError(
        reply, kInvalidRequest,
        Json{{"max_batch_elements", expectations.max_batch_elements}},
        "a batch over the element bound");
  }
  std::vector<ExpectedResponse> expected;
  for (const Json& element : request) {
    if (std::optional<ExpectedResponse> e = Expect(element, expectations)) {
      expected.push_back(std::move(*e));
    }
  }
  if (expected.empty()) {
    if (reply.has_value()) {
      return absl::InternalError(absl::StrCat(
          "a batch of notifications was answered: ", Show(*reply)));
    }
    return absl::OkStatus();
  }
  if (!reply.has_value()) return absl::InternalError("a batch got no reply");
  if (reply->is_object() && IsBatchResponseTooLarge(*reply_text)) {
    return ExpectSingleError(reply, kInvalidRequest,
                             Json{{"max_batch_response_bytes",
                                   expectations.max_batch_response_bytes}},
                             "a batch whose response is too large");
  }
  if (!reply->is_array()) {
    return absl::InternalError(
        absl::StrCat("batch reply is not an array: ", Show(*reply)));
  }
  if (reply_text->size() > expectations.max_batch_response_bytes) {
    return absl::InternalError(absl::StrCat(
        "batch reply of ", reply_text->size(), " bytes exceeds the bound ",
        expectations.max_batch_response_bytes));
  }
  if (reply->size() != expected.size()) {
    return absl::InternalError(absl::StrCat("batch reply has ", reply->size(),
                                            " responses, expected ",
                                            expected.size()));
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (absl::Status s = CheckResponse((*reply)[i], expected[i]); !s.ok()) {
      return absl::InternalError(
          absl::StrCat("batch response ", i, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace mill::jsonrpc
