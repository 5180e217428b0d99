// The child program of subprocess_test: what it does is chosen by its first
// argument, so the test can check Subprocess on every platform.
//   args ARG...    prints each argument on its own stdout line, exits 0
//   exit N         prints "to stderr" on stderr, exits N
//   sleep          prints "sleeping", then sleeps for a minute
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "args") {
    for (int i = 2; i < argc; ++i) std::printf("[%s]\n", argv[i]);
    return 0;
  }
  if (mode == "exit" && argc > 2) {
    std::fprintf(stderr, "to stderr\n");
    return std::atoi(argv[2]);
  }
  if (mode == "sleep") {
    std::printf("sleeping\n");
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  return 64;
}
