// main() of a fuzz target's corpus regression test (bazel/fuzz.bzl): one
// gtest case per corpus file given on the command line, each running
// LLVMFuzzerTestOneInput over the file's bytes. A violated invariant aborts
// (see fuzz_check.h), which fails the test; the log names the file.
//
// This is how the seed corpus and every committed crash reproducer run as
// ordinary tests in every configuration (gcc, asan, tsan), not only under
// --config=fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

class CorpusFileTest : public ::testing::Test {
 public:
  explicit CorpusFileTest(std::string path) : path_(std::move(path)) {}

  void TestBody() override {
    std::ifstream in(path_, std::ios::binary);
    ASSERT_TRUE(in.good()) << "cannot read " << path_;
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    std::fprintf(stderr, "running %s (%zu bytes)\n", path_.c_str(),
                 bytes.size());
    EXPECT_EQ(LLVMFuzzerTestOneInput(
                  reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
              0);
  }

 private:
  const std::string path_;
};

// The file name, with anything but letters, digits, '-' and '_' as '_', as
// the test case name (gtest filters treat '.' and ':' specially).
std::string CaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  for (char& c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!plain) c = '_';
  }
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string path = argv[i];
    ::testing::RegisterTest(
        "Corpus", CaseName(path).c_str(), nullptr, path.c_str(), __FILE__,
        __LINE__,
        [path]() -> ::testing::Test* { return new CorpusFileTest(path); });
    ++files;
  }
  if (files == 0) {
    std::fprintf(stderr, "no corpus files given\n");
    return 1;
  }
  return RUN_ALL_TESTS();
}
