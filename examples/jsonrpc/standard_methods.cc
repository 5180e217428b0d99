#include "examples/jsonrpc/standard_methods.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace mill::jsonrpc {
namespace {

// Reads an integer operand as int64 when it fits.
bool AsInt64(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

// a + b, or a - b when `subtract`. Both must already be numbers.
Json Combine(const Json& a, const Json& b, bool subtract) {
  int64_t x = 0;
  int64_t y = 0;
  int64_t r = 0;
  if (AsInt64(a, &x) && AsInt64(b, &y) &&
      !(subtract ? __builtin_sub_overflow(x, y, &r)
                 : __builtin_add_overflow(x, y, &r))) {
    return r;
  }
  const double dx = a.get<double>();
  const double dy = b.get<double>();
  return subtract ? dx - dy : dx + dy;
}

const Json& RequireNumber(const Json& v, std::string_view what) {
  if (!v.is_number()) {
    throw InvalidParams(std::string(what) + " must be a number");
  }
  return v;
}

bool IsEmptyParams(const Json& params) {
  return params.is_null() || (params.is_structured() && params.empty());
}

void RequireNoParams(const Json& params) {
  if (!IsEmptyParams(params)) throw InvalidParams("takes no params");
}

// The operands of a binary method: positional [first, second] or named
// {first_name: ..., second_name: ...}.
std::pair<const Json*, const Json*> TwoOperands(const Json& params,
                                                const char* first_name,
                                                const char* second_name) {
  if (params.is_array()) {
    if (params.size() != 2) {
      throw InvalidParams("expected exactly 2 positional params");
    }
    return {&params[0], &params[1]};
  }
  if (params.is_object()) {
    const auto first = params.find(first_name);
    const auto second = params.find(second_name);
    if (first == params.end() || second == params.end()) {
      throw InvalidParams(absl::StrCat("expected named params \"", first_name,
                                       "\" and \"", second_name, "\""));
    }
    return {&*first, &*second};
  }
  throw InvalidParams("expected an array or an object");
}

// The "key" of get/delete: [key] or {"key": key}.
const std::string& KeyParam(const Json& params) {
  const Json* key = nullptr;
  if (params.is_array() && params.size() == 1) {
    key = &params[0];
  } else if (params.is_object() && params.contains("key")) {
    key = &params["key"];
  } else {
    throw InvalidParams("expected [key] or {\"key\": key}");
  }
  if (!key->is_string()) throw InvalidParams("key must be a string");
  return key->get_ref<const std::string&>();
}

Json ReturnNull(const Json&) { return nullptr; }

}  // namespace

absl::Status RegisterStandardMethods(JsonRpcService* service,
                                     KeyValueStore* store) {
  const std::pair<const char*, JsonRpcService::Method> methods[] = {
      {"subtract",
       [](const Json& params) {
         const auto [minuend, subtrahend] =
             TwoOperands(params, "minuend", "subtrahend");
         return Combine(RequireNumber(*minuend, "minuend"),
                        RequireNumber(*subtrahend, "subtrahend"),
                        /*subtract=*/true);
       }},
      {"sum",
       [](const Json& params) {
         if (!params.is_array()) throw InvalidParams("expected an array");
         Json total = 0;
         for (const Json& n : params) {
           total = Combine(total, RequireNumber(n, "each param"), false);
         }
         return total;
       }},
      {"get_data",
       [](const Json& params) {
         RequireNoParams(params);
         return Json::array({"hello", 5});
       }},
      {"update", ReturnNull},
      {"notify_hello", ReturnNull},
      {"notify_sum", ReturnNull},
      {"ping",
       [](const Json& params) {
         RequireNoParams(params);
         return Json("pong");
       }},
      {"echo", [](const Json& params) { return params; }},
      {"add",
       [](const Json& params) {
         const auto [a, b] = TwoOperands(params, "a", "b");
         return Combine(RequireNumber(*a, "a"), RequireNumber(*b, "b"),
                        /*subtract=*/false);
       }},
      {"set",
       [store](const Json& params) {
         const Json* key = nullptr;
         const Json* value = nullptr;
         if (params.is_array() && params.size() == 2) {
           key = &params[0];
           value = &params[1];
         } else if (params.is_object() && params.contains("key") &&
                    params.contains("value")) {
           key = &params["key"];
           value = &params["value"];
         } else {
           throw InvalidParams(
               "expected [key, value] or {\"key\": key, \"value\": value}");
         }
         if (!key->is_string()) throw InvalidParams("key must be a string");
         absl::StatusOr<bool> stored =
             store->Set(key->get<std::string>(), *value);
         if (!stored.ok()) {
           throw RpcError(
               kStoreFull, "Store full",
               Json{{"max_keys", store->options().max_keys},
                    {"max_bytes", store->options().max_bytes},
                    {"detail", std::string(stored.status().message())}});
         }
         return Json(true);
       }},
      {"get",
       [store](const Json& params) {
         const std::string& key = KeyParam(params);
         std::optional<Json> value = store->Get(key);
         if (!value.has_value()) {
           throw RpcError(kKeyNotFound, "Key not found", Json{{"key", key}});
         }
         return *std::move(value);
       }},
      {"delete",
       [store](const Json& params) {
         return Json(store->Erase(KeyParam(params)));
       }},
      {"list",
       [store](const Json& params) {
         RequireNoParams(params);
         return Json(store->Keys());
       }},
  };
  // All or nothing: check every name before registering any.
  for (const auto& [name, method] : methods) {
    if (service->HasMethod(name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("method already registered: ", name));
    }
  }
  for (const auto& [name, method] : methods) {
    if (absl::Status s = service->RegisterMethod(name, method); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace mill::jsonrpc
