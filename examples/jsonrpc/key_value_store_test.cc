#include "examples/jsonrpc/key_value_store.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/standard_methods.h"
#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

// "new", "replaced" or the error, so an assertion shows what happened.
std::string Outcome(const absl::StatusOr<bool>& set) {
  if (!set.ok()) return set.status().ToString();
  return *set ? "new" : "replaced";
}

TEST(KeyValueStoreTest, SetGetEraseKeys) {
  KeyValueStore store;
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(store.Get("a").has_value());
  EXPECT_EQ(Outcome(store.Set("b", 2)), "new");
  EXPECT_EQ(Outcome(store.Set("a", Json::parse(R"({"x": [1]})"))), "new");
  EXPECT_EQ(Outcome(store.Set("b", "two")), "replaced");  // Replaced, not new.
  EXPECT_EQ(store.Get("b"), Json("two"));
  EXPECT_EQ(store.Get("a"), Json::parse(R"({"x": [1]})"));
  EXPECT_EQ(store.Keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(store.Erase("a"));
  EXPECT_FALSE(store.Erase("a"));
  EXPECT_EQ(store.Keys(), std::vector<std::string>{"b"});
  EXPECT_EQ(store.size(), 1u);
}

TEST(KeyValueStoreTest, KeysAreSortedByBytes) {
  KeyValueStore store;
  for (const char* key : {"b", "B", "a", "", "aa", "\xc3\xa9"}) {
    ASSERT_TRUE(store.Set(key, 0).ok());
  }
  EXPECT_EQ(store.Keys(),
            (std::vector<std::string>{"", "B", "a", "aa", "b", "\xc3\xa9"}));
}

TEST(KeyValueStoreTest, ValuesComeBackEqual) {
  KeyValueStore store;
  const Json values[] = {
      Json::parse(R"({"nested": {"a": [1, -2, 3.5, 1e300, null, true]}})"),
      Json::parse("18446744073709551615"),
      Json::parse("-9223372036854775808"),
      Json::parse("0.1"),
      Json("caf\u00e9 \"quoted\" \\ \n"),
      Json::array(),
      Json::object(),
  };
  int i = 0;
  for (const Json& value : values) {
    const std::string key = "k" + std::to_string(i++);
    ASSERT_TRUE(store.Set(key, value).ok());
    EXPECT_EQ(store.Get(key), value) << key;
  }
}

TEST(KeyValueStoreTest, BytesEstimateTheHeapOfEntries) {
  using Store = KeyValueStore;
  EXPECT_EQ(Store::ValueBytes(42), 0u);
  EXPECT_EQ(Store::ValueBytes(nullptr), 0u);
  EXPECT_EQ(Store::ValueBytes("ab"), 34u);
  EXPECT_EQ(Store::ValueBytes(Json::parse("[1,2]")), 56u);
  EXPECT_EQ(Store::ValueBytes(Json::parse(R"({"a":1})")), 129u);
  // 48 + (64 + 1 + 16) + [24 + 16 + 16 + (32 + 2)]
  EXPECT_EQ(Store::ValueBytes(Json::parse(R"({"a":[1,"xy"]})")), 219u);
  // An array of small numbers costs 16 bytes each, however short its text.
  EXPECT_EQ(Store::ValueBytes(Json(std::vector<int>(1000, 1))),
            24u + 16u * 1000);
  // Deep nesting is measured without recursion.
  const Json deep =
      Json::parse(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_EQ(Store::ValueBytes(deep), 100000u * 24 + 99999u * 16);

  KeyValueStore store;
  EXPECT_EQ(store.bytes(), 0u);
  ASSERT_TRUE(store.Set("ab", 42).ok());  // 96 + 2 + 0
  EXPECT_EQ(store.bytes(), 98u);
  ASSERT_TRUE(store.Set("c", Json::parse(R"( [ 1 , "x" ] )")).ok());
  EXPECT_EQ(store.bytes(), 98u + 96 + 1 + 89);
  ASSERT_TRUE(store.Set("ab", "long string").ok());  // 96 + 2 + 43
  EXPECT_EQ(store.bytes(), 141u + 186);
  EXPECT_TRUE(store.Erase("c"));
  EXPECT_EQ(store.bytes(), 141u);
  EXPECT_TRUE(store.Erase("ab"));
  EXPECT_EQ(store.bytes(), 0u);
}

TEST(KeyValueStoreTest, KeyBoundRefusesNewKeysButNotReplacements) {
  KeyValueStore::Options options;
  options.max_keys = 2;
  KeyValueStore store(options);
  ASSERT_EQ(Outcome(store.Set("a", 1)), "new");
  ASSERT_EQ(Outcome(store.Set("b", 2)), "new");
  absl::StatusOr<bool> third = store.Set("c", 3);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.status().message().find("max_keys"), std::string::npos)
      << third.status();
  EXPECT_FALSE(store.Get("c").has_value());
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(Outcome(store.Set("a", 10)),
            "replaced");  // Replacing needs no new key.
  EXPECT_EQ(store.Get("a"), Json(10));
  EXPECT_TRUE(store.Erase("b"));
  EXPECT_EQ(Outcome(store.Set("c", 3)), "new");  // Room again.
}

TEST(KeyValueStoreTest, ByteBoundRefusesGrowthAndLeavesTheStoreUnchanged) {
  KeyValueStore::Options options;
  options.max_bytes = 200;
  KeyValueStore store(options);
  ASSERT_EQ(Outcome(store.Set("k", "abcdef")), "new");  // 96 + 1 + 38 = 135
  // Growing "k" to 96 + 1 + 112 = 209 bytes is refused; the old value stays.
  absl::StatusOr<bool> grown = store.Set("k", std::string(80, 'g'));
  EXPECT_EQ(grown.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(grown.status().message().find("max_bytes"), std::string::npos)
      << grown.status();
  EXPECT_EQ(store.Get("k"), Json("abcdef"));
  EXPECT_EQ(store.bytes(), 135u);
  // A new 97-byte entry would make 232.
  EXPECT_EQ(store.Set("x", 1).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store.size(), 1u);
  // Shrinking always works, and frees room.
  EXPECT_EQ(Outcome(store.Set("k", 1)), "replaced");  // 97
  EXPECT_EQ(Outcome(store.Set("x", 1)), "new");       // 97: 194 in all
  EXPECT_EQ(store.bytes(), 194u);
  // A value larger than the whole store never fits.
  KeyValueStore empty(options);
  EXPECT_EQ(empty.Set("k", std::string(100, 'x')).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(empty.bytes(), 0u);
}

// Writers own disjoint keys and bump their value; readers check that every
// value they see is one a writer wrote and never goes backwards.
TEST(KeyValueStoreTest, ConcurrentReadersAndWriters) {
  KeyValueStore store;
  constexpr int kWriters = 3;
  constexpr int kReaders = 2;
  constexpr int kKeysPerWriter = 8;
  constexpr int kRounds = 300;
  std::atomic<int> writers_done{0};
  std::atomic<int> bad_reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 1; round <= kRounds; ++round) {
        for (int k = 0; k < kKeysPerWriter; ++k) {
          if (!store
                   .Set("w" + std::to_string(w) + "k" + std::to_string(k),
                        Json{{"round", round}, {"writer", w}})
                   .ok()) {
            ++bad_reads;
          }
        }
      }
      ++writers_done;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      std::vector<int> last(kWriters * kKeysPerWriter, 0);
      while (writers_done.load() < kWriters) {
        for (int w = 0; w < kWriters; ++w) {
          for (int k = 0; k < kKeysPerWriter; ++k) {
            auto v =
                store.Get("w" + std::to_string(w) + "k" + std::to_string(k));
            if (!v.has_value()) continue;
            const int round = (*v)["round"].get<int>();
            int& prev = last[w * kKeysPerWriter + k];
            if ((*v)["writer"] != w || round < prev || round > kRounds) {
              ++bad_reads;
            }
            prev = round;
          }
        }
        const std::vector<std::string> keys = store.Keys();
        if (!std::is_sorted(keys.begin(), keys.end())) ++bad_reads;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_EQ(store.size(), static_cast<size_t>(kWriters * kKeysPerWriter));
  for (int w = 0; w < kWriters; ++w) {
    for (int k = 0; k < kKeysPerWriter; ++k) {
      EXPECT_EQ(store.Get("w" + std::to_string(w) + "k" + std::to_string(k)),
                (Json{{"round", kRounds}, {"writer", w}}));
    }
  }
}

// The same through the JSON-RPC methods, as server worker threads would.
TEST(KeyValueStoreTest, ConcurrentRpcCallsThroughOneService) {
  KeyValueStore store;
  JsonRpcService service;
  ASSERT_TRUE(RegisterStandardMethods(&service, &store).ok());
  constexpr int kThreads = 4;
  constexpr int kCalls = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string key =
            "t" + std::to_string(t) + "_" + std::to_string(i % 10);
        const std::string set =
            R"({"jsonrpc":"2.0","method":"set","params":[")" + key + "\"," +
            std::to_string(i) + R"(],"id":)" + std::to_string(i) + "}";
        const std::string get =
            R"({"jsonrpc":"2.0","method":"get","params":[")" + key +
            R"("],"id":"g"})";
        auto set_reply = service.HandleMessage(set);
        auto get_reply = service.HandleMessage(get);
        auto list_reply = service.HandleMessage(
            R"({"jsonrpc":"2.0","method":"list","id":0})");
        if (!set_reply || Json::parse(*set_reply)["result"] != true ||
            !get_reply || Json::parse(*get_reply)["result"] != i ||
            !list_reply || !Json::parse(*list_reply)["result"].is_array()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store.size(), static_cast<size_t>(kThreads * 10));
  EXPECT_EQ(store.Get("t3_9"), Json(kCalls - 1));
}

}  // namespace
}  // namespace mill::jsonrpc
