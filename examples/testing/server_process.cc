#include "examples/testing/server_process.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace mill {
namespace testing {

ServerProcess StartAndWaitForPort(std::vector<std::string> argv) {
  ServerProcess server;
  const std::string name = argv.empty() ? "" : argv[0];
  absl::StatusOr<Subprocess> p = Subprocess::Start(std::move(argv));
  if (!p.ok()) {
    ADD_FAILURE() << name << ": " << p.status();
    return server;
  }
  server.process = std::make_unique<Subprocess>(std::move(*p));
  server.port = server.process->WaitForListeningPort();
  EXPECT_NE(server.port, 0) << name << " did not announce its port";
  return server;
}

ServerProcess StartServer(const std::string& binary,
                          const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {RunfilePath(binary), "--port=0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return StartAndWaitForPort(std::move(argv));
}

ScopedNoAsanQuarantine::ScopedNoAsanQuarantine() {
  const char* old = std::getenv("ASAN_OPTIONS");
  if (old != nullptr) saved_ = old;
  const std::string saved = saved_.value_or("");
  SetEnvVar("ASAN_OPTIONS", absl::StrCat(saved, saved.empty() ? "" : ":",
                                         "quarantine_size_mb=0"));
}

ScopedNoAsanQuarantine::~ScopedNoAsanQuarantine() {
  SetEnvVar("ASAN_OPTIONS", saved_);
}

ServerProcess StartServerForMemoryTest(const std::string& binary,
                                       const std::vector<std::string>& flags) {
  ScopedNoAsanQuarantine no_quarantine;
  return StartServer(binary, flags);
}

void ExpectCleanExit(Subprocess& process, int signo) {
  ASSERT_TRUE(process.Signal(signo));
  std::optional<int> status = process.Wait(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value()) << "did not exit after signal " << signo;
  ASSERT_TRUE(ExitCode(*status).has_value()) << "wait status " << *status;
  EXPECT_EQ(ExitCode(*status), 0);
}

std::pair<int, std::string> RunCommand(std::vector<std::string> argv,
                                       std::chrono::milliseconds timeout) {
  absl::StatusOr<Subprocess> p = Subprocess::Start(std::move(argv));
  if (!p.ok()) {
    ADD_FAILURE() << p.status();
    return {-1, ""};
  }
  std::string out;
  while (std::optional<std::string> line = p->ReadStdoutLine(timeout)) {
    absl::StrAppend(&out, *line, "\n");
  }
  std::optional<int> status = p->Wait(std::chrono::seconds(30));
  EXPECT_TRUE(status.has_value());
  return {status.value_or(-1), out};
}

void ExpectCleanWrkRun(const std::string& url, int connections,
                       uint64_t min_requests,
                       std::chrono::milliseconds timeout) {
  auto [status, out] =
      RunCommand({"/usr/bin/wrk", "-t2", absl::StrCat("-c", connections),
                  "-d1s", "--timeout", "10s", url},
                 timeout);
  ASSERT_EQ(ExitCode(status), 0) << out;
  // "N requests in Xs, Y read"; error lines appear only when errors occurred.
  EXPECT_FALSE(absl::StrContains(out, "Socket errors")) << out;
  EXPECT_FALSE(absl::StrContains(out, "Non-2xx")) << out;
  uint64_t requests = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    const size_t at = line.find(" requests in ");
    if (at != absl::string_view::npos) {
      ASSERT_TRUE(absl::SimpleAtoi(line.substr(0, at), &requests)) << line;
    }
  }
  EXPECT_GT(requests, min_requests) << out;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << contents;
  ASSERT_TRUE(f.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

namespace {

// `reason`, when given, must be in the stderr line, which names the program,
// and the exit status must be 2.
void ExpectRefused(const std::string& binary,
                   const std::vector<std::string>& args,
                   const std::string* reason = nullptr) {
  const std::string what = reason != nullptr ? *reason
                           : args.empty()    ? "(no flags)"
                                             : args[0];
  std::vector<std::string> argv = {RunfilePath(binary)};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<Subprocess> p = Subprocess::Start(argv);
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<std::string> err = p->ReadStderrLine(std::chrono::seconds(20));
  std::optional<int> status = p->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value()) << what;
  const std::optional<int> code = ExitCode(*status);
  ASSERT_TRUE(code.has_value()) << what;
  EXPECT_NE(*code, 0) << what;
  ASSERT_TRUE(err.has_value()) << what;
  EXPECT_FALSE(err->empty()) << what;
  if (reason != nullptr) {
    EXPECT_EQ(*code, 2) << what;
    const std::string program = binary.substr(binary.rfind('/') + 1);
    EXPECT_TRUE(absl::StartsWith(*err, program + ": ")) << *err;
    EXPECT_TRUE(absl::StrContains(*err, *reason))
        << *err << "\nexpected: " << *reason;
  }
  // Nothing was announced on stdout.
  EXPECT_FALSE(p->ReadStdoutLine(std::chrono::milliseconds(100)).has_value())
      << what;
}

}  // namespace

void ExpectFlagsRefused(const std::string& binary,
                        const std::vector<std::vector<std::string>>& bad) {
  for (const std::vector<std::string>& args : bad) {
    ExpectRefused(binary, args);
  }
}

void ExpectFlagsRefusedWithReason(const std::string& binary,
                                  const std::vector<RefusedFlags>& cases) {
  for (const RefusedFlags& k : cases) {
    std::vector<std::string> args = {"--port=0"};
    args.insert(args.end(), k.flags.begin(), k.flags.end());
    ExpectRefused(binary, args, &k.reason);
  }
}

void ServerModeTest::StartInMode(const std::string& binary,
                                 const std::vector<std::string>& flags) {
  std::vector<std::string> all = {"--mode=" + GetParam()};
  all.insert(all.end(), flags.begin(), flags.end());
  server_ = StartServer(binary, all);
  ASSERT_NE(server_.port, 0);
}

void ServerModeTest::TearDown() {
  if (server_.process) ExpectCleanExit(*server_.process, SIGTERM);
}

void ExpectPeakGrewLessThan(pid_t pid, size_t before, size_t limit) {
  const size_t after = PeakResidentBytes(pid);
  std::printf("server peak memory: %zu -> %zu bytes\n", before, after);
  EXPECT_LT(after, before + limit)
      << "peak grew from " << before << " to " << after << " bytes";
}

::testing::internal::ParamGenerator<std::string> Modes() {
  return ::testing::Values("pool", "direct");
}

std::string ModeName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

::testing::internal::ParamGenerator<ModeAndSignal> ModesAndSignals() {
  return ::testing::Combine(Modes(), ::testing::Values(SIGTERM, SIGINT));
}

std::string ModeAndSignalName(
    const ::testing::TestParamInfo<ModeAndSignal>& info) {
  return absl::StrCat(
      std::get<0>(info.param),
      std::get<1>(info.param) == SIGTERM ? "_SIGTERM" : "_SIGINT");
}

}  // namespace testing
}  // namespace mill
