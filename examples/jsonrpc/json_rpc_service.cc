#include "examples/jsonrpc/json_rpc_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mill::jsonrpc {
namespace {

// Serializes without throwing on invalid UTF-8 a method may have produced.
std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// (Debian's Abseil has its own string_view, so no absl::StrCat here.)
std::string ResultResponse(std::string_view id, const Json& result) {
  std::string out = R"({"jsonrpc":"2.0","result":)";
  out += Dump(result);
  out += R"(,"id":)";
  out += id;
  out += '}';
  return out;
}

std::string ErrorResponseWithId(std::string_view id, int code,
                                std::string_view message,
                                const std::optional<Json>& data) {
  Json error = {{"code", code}, {"message", std::string(message)}};
  if (data.has_value()) error["data"] = *data;
  std::string out = R"({"jsonrpc":"2.0","error":)";
  out += Dump(error);
  out += R"(,"id":)";
  out += id;
  out += '}';
  return out;
}

// True when arrays/objects in the (already validated) JSON text nest deeper
// than max_depth. A byte scan, so it cannot itself overflow the stack.
bool ExceedsDepth(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// True for an id that Dump() would not spell as the client did: a
// non-integer number (1.50, 1e2), or -0 (nlohmann reads "0" as unsigned, so a
// signed zero can only have been written "-0"; Dump() gives "0").
bool IsRawId(const Json& id) {
  return id.is_number_float() || (id.type() == Json::value_t::number_integer &&
                                  id.get<Json::number_integer_t>() == 0);
}

bool HasRawId(const Json& request) {
  if (!request.is_object()) return false;
  const auto it = request.find("id");
  return it != request.end() && IsRawId(*it);
}

// Second pass over a message, run only when some request's id is a
// non-integer number or -0: records the original spelling of each such id,
// indexed by batch element (or [0] for a single request). nlohmann hands the
// raw text to number_float(), which is what makes exact echo possible; a
// signed integer zero can only be "-0".
class RawIdScanner final : public nlohmann::json_sax<Json> {
 public:
  explicit RawIdScanner(std::vector<std::optional<std::string>>* ids)
      : ids_(ids) {}

  bool null() override { return Value(nullptr); }
  bool boolean(bool) override { return Value(nullptr); }
  bool number_integer(number_integer_t value) override {
    static const std::string* const kMinusZero = new std::string("-0");
    return Value(value == 0 ? kMinusZero : nullptr);
  }
  bool number_unsigned(number_unsigned_t) override { return Value(nullptr); }
  bool number_float(number_float_t, const string_t& raw) override {
    return Value(&raw);
  }
  bool string(string_t&) override { return Value(nullptr); }
  bool binary(binary_t&) override { return Value(nullptr); }
  bool start_object(std::size_t) override {
    if (depth_ == 0) {  // A single request: its members sit at depth 1.
      element_ = 0;
      member_depth_ = 1;
    }
    Value(nullptr);
    ++depth_;
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 0) member_depth_ = 2;  // A batch: members of its elements.
    Value(nullptr);
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool key(string_t& key) override {
    pending_id_ = depth_ == member_depth_ && key == "id";
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  // Called as every value (scalar or container) begins.
  bool Value(const std::string* raw) {
    if (depth_ == 1 && member_depth_ == 2) ++element_;  // Next batch element.
    if (pending_id_) {
      pending_id_ = false;
      if (element_ >= 0) {
        if (ids_->size() <= static_cast<size_t>(element_)) {
          ids_->resize(element_ + 1);
        }
        // The last "id" member wins, as in the parsed document.
        (*ids_)[element_] =
            raw != nullptr ? std::optional<std::string>(*raw) : std::nullopt;
      }
    }
    return true;
  }

  std::vector<std::optional<std::string>>* ids_;
  int depth_ = 0;
  int member_depth_ = -1;
  long element_ = -1;
  bool pending_id_ = false;
};

const Json& NullJson() {
  static const Json* const kNull = new Json(nullptr);
  return *kNull;
}

}  // namespace

RpcError InvalidParams(std::string detail) {
  if (detail.empty()) return RpcError(kInvalidParams, "Invalid params");
  return RpcError(kInvalidParams, "Invalid params", Json(std::move(detail)));
}

JsonRpcService::JsonRpcService(Options options) : options_(options) {}

absl::Status JsonRpcService::RegisterMethod(std::string name, Method method) {
  if (name.empty()) return absl::InvalidArgumentError("empty method name");
  if (absl::StartsWith(name, "rpc.")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method names starting with \"rpc.\" are reserved: ", name));
  }
  if (!method) return absl::InvalidArgumentError("null method");
  const auto [it, inserted] = methods_.try_emplace(name, std::move(method));
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("method already registered: ", name));
  }
  return absl::OkStatus();
}

bool JsonRpcService::HasMethod(std::string_view name) const {
  return methods_.contains(absl::string_view(name.data(), name.size()));
}

std::string JsonRpcService::ErrorResponse(int code, std::string_view message,
                                          const std::optional<Json>& data) {
  return ErrorResponseWithId("null", code, message, data);
}

std::string JsonRpcService::OversizedMessageResponse(size_t limit) {
  return ErrorResponse(kInvalidRequest, "Invalid Request",
                       Json{{"max_line_bytes", limit}});
}

std::optional<std::string> JsonRpcService::HandleMessage(
    std::string_view message) const {
  // nlohmann's lexer ends the input at a NUL byte, so `{"id":1}\0garbage`
  // would parse as the object alone. JSON text never holds a raw NUL (one
  // inside a string must be escaped), so the message is not JSON.
  if (message.find('\0') != std::string_view::npos) {
    return ErrorResponse(kParseError, "Parse error");
  }
  Json parsed;
  try {
    parsed = Json::parse(message.data(), message.data() + message.size(),
                         /*cb=*/nullptr, /*allow_exceptions=*/false);
  } catch (const Json::exception&) {
    parsed = Json(Json::value_t::discarded);
  }
  if (parsed.is_discarded()) return ErrorResponse(kParseError, "Parse error");
  if (ExceedsDepth(message, options_.max_depth)) {
    return ErrorResponse(kInvalidRequest, "Invalid Request",
                         Json{{"max_depth", options_.max_depth}});
  }
  if (parsed.is_array() && parsed.size() > options_.max_batch_elements) {
    return ErrorResponse(
        kInvalidRequest, "Invalid Request",
        Json{{"max_batch_elements", options_.max_batch_elements}});
  }

  std::vector<std::optional<std::string>> raw_ids;
  const bool any_raw_id =
      parsed.is_array() ? std::any_of(parsed.begin(), parsed.end(), HasRawId)
                        : HasRawId(parsed);
  if (any_raw_id) {
    RawIdScanner scanner(&raw_ids);
    Json::sax_parse(message.data(), message.data() + message.size(), &scanner);
  }
  const auto raw_id =
      [&raw_ids](size_t i) -> const std::optional<std::string>& {
    static const std::optional<std::string> kNone;
    return i < raw_ids.size() ? raw_ids[i] : kNone;
  };

  if (!parsed.is_array()) return HandleRequest(parsed, raw_id(0));
  if (parsed.empty()) return ErrorResponse(kInvalidRequest, "Invalid Request");
  std::string batch;
  for (size_t i = 0; i < parsed.size(); ++i) {
    std::optional<std::string> response = HandleRequest(parsed[i], raw_id(i));
    if (!response.has_value()) continue;
    // +1 for the closing ']'.
    if (batch.size() + 1 + response->size() + 1 >
        options_.max_batch_response_bytes) {
      return ErrorResponse(kInvalidRequest, "Invalid Request",
                           Json{{"max_batch_response_bytes",
                                 options_.max_batch_response_bytes}});
    }
    batch.push_back(batch.empty() ? '[' : ',');
    batch += *response;
  }
  if (batch.empty()) return std::nullopt;  // Only notifications.
  batch.push_back(']');
  return batch;
}

std::optional<std::string> JsonRpcService::HandleRequest(
    const Json& request, const std::optional<std::string>& raw_id) const {
  if (!request.is_object()) {
    return ErrorResponse(kInvalidRequest, "Invalid Request");
  }
  const auto id_it = request.find("id");
  const bool is_notification = id_it == request.end();
  if (!is_notification && !id_it->is_string() && !id_it->is_number() &&
      !id_it->is_null()) {
    return ErrorResponse(kInvalidRequest, "Invalid Request");
  }
  const std::string id = is_notification ? "null"
                         : (raw_id.has_value() && IsRawId(*id_it))
                             ? *raw_id
                             : Dump(*id_it);

  const auto version = request.find("jsonrpc");
  const auto method_it = request.find("method");
  const auto params_it = request.find("params");
  if (version == request.end() || !version->is_string() ||
      version->get_ref<const std::string&>() != "2.0" ||
      method_it == request.end() || !method_it->is_string() ||
      (params_it != request.end() && !params_it->is_array() &&
       !params_it->is_object())) {
    // Invalid, so not a notification either: always answered.
    return ErrorResponseWithId(id, kInvalidRequest, "Invalid Request", {});
  }
  const Json& params = params_it == request.end() ? NullJson() : *params_it;
  const auto method = methods_.find(method_it->get_ref<const std::string&>());

  if (is_notification) {
    if (method == methods_.end()) return std::nullopt;
    try {
      method->second(params);
    } catch (...) {
      // A notification is never answered, not even with an error.
    }
    return std::nullopt;
  }
  if (method == methods_.end()) {
    return ErrorResponseWithId(id, kMethodNotFound, "Method not found", {});
  }
  try {
    return ResultResponse(id, method->second(params));
  } catch (const RpcError& e) {
    return ErrorResponseWithId(id, e.code, e.message, e.data);
  } catch (const std::exception& e) {
    return ErrorResponseWithId(id, kInternalError, "Internal error",
                               Json(e.what()));
  } catch (...) {
    return ErrorResponseWithId(id, kInternalError, "Internal error", {});
  }
}

}  // namespace mill::jsonrpc
