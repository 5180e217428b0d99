// main() for a fuzz target built without libFuzzer (any configuration but
// --config=fuzz): runs LLVMFuzzerTestOneInput once over each file named on
// the command line, and over every regular file of each directory named, so
//   bazel run //examples/jsonrpc:line_framer_fuzz_fuzzer -- crash-1234
// reproduces a crash under gcc, --config=asan or a debugger (relative paths
// are taken from where bazel was run).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> ExpandPath(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return {path};
  std::vector<std::string> files;
  if (DIR* dir = opendir(path.c_str())) {
    while (const dirent* entry = readdir(dir)) {
      const std::string child = path + "/" + entry->d_name;
      if (stat(child.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        files.push_back(child);
      }
    }
    closedir(dir);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  int ran = 0;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;  // libFuzzer flags: ignored here.
    std::string path = argv[i];
    // Under `bazel run` the working directory is the runfiles tree; a
    // relative path means one relative to where the user ran bazel.
    const char* user_dir = std::getenv("BUILD_WORKING_DIRECTORY");
    if (!path.empty() && path[0] != '/' && user_dir != nullptr) {
      path = std::string(user_dir) + "/" + path;
    }
    for (const std::string& file : ExpandPath(path)) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 2;
      }
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      std::fprintf(stderr, "running %s (%zu bytes)\n", file.c_str(),
                   bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
      ++ran;
    }
  }
  std::fprintf(stderr,
               "ran %d inputs (built without libFuzzer: no fuzzing; "
               "use --config=fuzz)\n",
               ran);
  return 0;
}
