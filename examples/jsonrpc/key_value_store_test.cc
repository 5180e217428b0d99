#include "examples/jsonrpc/key_value_store.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/standard_methods.h"
#include "gtest/gtest.h"

namespace mill::jsonrpc {
namespace {

TEST(KeyValueStoreTest, SetGetEraseKeys) {
  KeyValueStore store;
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(store.Get("a").has_value());
  EXPECT_TRUE(store.Set("b", 2));
  EXPECT_TRUE(store.Set("a", Json::parse(R"({"x": [1]})")));
  EXPECT_FALSE(store.Set("b", "two"));  // Replaced, not new.
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
    store.Set(key, 0);
  }
  EXPECT_EQ(store.Keys(),
            (std::vector<std::string>{"", "B", "a", "aa", "b", "\xc3\xa9"}));
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
          store.Set("w" + std::to_string(w) + "k" + std::to_string(k),
                    Json{{"round", round}, {"writer", w}});
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
