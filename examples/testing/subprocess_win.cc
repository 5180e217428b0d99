// Subprocess on Windows: CreateProcessW with the child's stdout and stderr
// on anonymous pipes (read through LineReader's pipe source); stop requests
// through the child's named stop event (see subprocess.h), TerminateProcess
// for SIGKILL; GetExitCodeProcess for the wait status (the exit code).
// psapi.h uses windows.h's types.
// clang-format off
#include <windows.h>
#include <psapi.h>
// clang-format on

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/win32_status.h"
#include "examples/testing/subprocess.h"

namespace mill {
namespace testing {
namespace {

constexpr int kSigInt = 2;
constexpr int kSigKill = 9;
constexpr int kSigTerm = 15;
// What a process terminated for SIGKILL exits with (as a shell reports a
// killed process: 128 + 9).
constexpr UINT kKilledExitCode = 137;

std::wstring Widen(const std::string& utf8) {
  if (utf8.empty()) return {};
  const int n = MultiByteToWideChar(CP_UTF8, 0, utf8.data(),
                                    static_cast<int>(utf8.size()), nullptr, 0);
  std::wstring wide(static_cast<size_t>(n > 0 ? n : 0), L'\0');
  if (n > 0) {
    MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()),
                        wide.data(), n);
  }
  return wide;
}

// `arg` quoted for a command line the C runtime's parser splits back into
// the same argument (backslashes double only before a quote).
std::wstring QuoteArgument(const std::wstring& arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
    return arg;
  }
  std::wstring quoted = L"\"";
  size_t backslashes = 0;
  for (const wchar_t c : arg) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    if (c == L'"') {
      quoted.append(backslashes * 2 + 1, L'\\');
    } else {
      quoted.append(backslashes, L'\\');
    }
    backslashes = 0;
    quoted.push_back(c);
  }
  quoted.append(backslashes * 2, L'\\');
  quoted.push_back(L'"');
  return quoted;
}

bool FileExists(const std::wstring& path) {
  const DWORD attributes = GetFileAttributesW(path.c_str());
  return attributes != INVALID_FILE_ATTRIBUTES &&
         (attributes & FILE_ATTRIBUTE_DIRECTORY) == 0;
}

HANDLE HandleOf(intptr_t value) { return reinterpret_cast<HANDLE>(value); }

int IntOf(HANDLE handle) {
  return static_cast<int>(reinterpret_cast<intptr_t>(handle));
}

HANDLE OpenForQuery(pid_t pid) {
  return OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE,
                     static_cast<DWORD>(pid));
}

}  // namespace

std::optional<int> ExitCode(int status) { return status; }

void SetEnvVar(const std::string& name,
               const std::optional<std::string>& value) {
  // The C runtime's copy (getenv) and the process environment that
  // CreateProcessW hands down.
  _putenv_s(name.c_str(), value.has_value() ? value->c_str() : "");
  SetEnvironmentVariableW(Widen(name).c_str(),
                          value.has_value() ? Widen(*value).c_str() : nullptr);
}

size_t PeakResidentBytes(pid_t pid) {
  const HANDLE process =
      OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ, FALSE,
                  static_cast<DWORD>(pid));
  if (process == nullptr) return 0;
  PROCESS_MEMORY_COUNTERS counters{};
  counters.cb = sizeof(counters);
  const bool ok = K32GetProcessMemoryInfo(process, &counters, sizeof(counters));
  CloseHandle(process);
  return ok ? counters.PeakWorkingSetSize : 0;
}

void WaitUntilIdle(pid_t pid) {
  const HANDLE process = OpenForQuery(pid);
  if (process == nullptr) return;
  const auto cpu_ticks = [process]() -> uint64_t {
    FILETIME created, exited, kernel, user;
    if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
    const auto ticks = [](const FILETIME& t) {
      return (static_cast<uint64_t>(t.dwHighDateTime) << 32) | t.dwLowDateTime;
    };
    return ticks(kernel) + ticks(user);
  };
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint64_t last = cpu_ticks();
  int quiet = 0;
  while (quiet < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const uint64_t now = cpu_ticks();
    quiet = now == last ? quiet + 1 : 0;
    last = now;
  }
  CloseHandle(process);
}

absl::StatusOr<Subprocess> Subprocess::Start(std::vector<std::string> argv) {
  if (argv.empty()) return absl::InvalidArgumentError("no program");
  std::wstring program = Widen(argv[0]);
  // The runfiles name of a program is its wrapper; the program is beside it.
  if (!absl::EndsWithIgnoreCase(argv[0], ".exe") &&
      FileExists(program + L".exe")) {
    program += L".exe";
  }
  std::wstring command_line = QuoteArgument(program);
  for (size_t i = 1; i < argv.size(); ++i) {
    command_line += L" " + QuoteArgument(Widen(argv[i]));
  }

  // Pipes whose write ends the child inherits (and only those: the read
  // ends are not inheritable).
  SECURITY_ATTRIBUTES inheritable{sizeof(inheritable), nullptr, TRUE};
  HANDLE out_read, out_write, err_read, err_write;
  if (!CreatePipe(&out_read, &out_write, &inheritable, 0)) {
    return LastWin32ErrorStatus("CreatePipe");
  }
  if (!CreatePipe(&err_read, &err_write, &inheritable, 0)) {
    const absl::Status status = LastWin32ErrorStatus("CreatePipe");
    CloseHandle(out_read);
    CloseHandle(out_write);
    return status;
  }
  SetHandleInformation(out_read, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(err_read, HANDLE_FLAG_INHERIT, 0);
  const HANDLE null_input =
      CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                  &inheritable, OPEN_EXISTING, 0, nullptr);

  // Exactly these three handles are inherited, whatever else this (test)
  // process has open and inheritable.
  HANDLE inherited[3] = {out_write, err_write, null_input};
  const DWORD inherited_count = null_input == INVALID_HANDLE_VALUE ? 2 : 3;
  SIZE_T attribute_size = 0;
  InitializeProcThreadAttributeList(nullptr, 1, 0, &attribute_size);
  std::vector<char> attribute_storage(attribute_size);
  auto* attributes =
      reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attribute_storage.data());
  const bool have_list =
      InitializeProcThreadAttributeList(attributes, 1, 0, &attribute_size) &&
      UpdateProcThreadAttribute(
          attributes, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited,
          inherited_count * sizeof(HANDLE), nullptr, nullptr);

  STARTUPINFOEXW startup{};
  startup.StartupInfo.cb = sizeof(startup);
  startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  startup.StartupInfo.hStdInput =
      null_input == INVALID_HANDLE_VALUE ? nullptr : null_input;
  startup.StartupInfo.hStdOutput = out_write;
  startup.StartupInfo.hStdError = err_write;
  startup.lpAttributeList = have_list ? attributes : nullptr;
  PROCESS_INFORMATION info{};
  const BOOL created = CreateProcessW(
      program.c_str(), command_line.data(), nullptr, nullptr,
      /*bInheritHandles=*/TRUE,
      CREATE_NEW_PROCESS_GROUP | (have_list ? EXTENDED_STARTUPINFO_PRESENT : 0),
      nullptr, nullptr, &startup.StartupInfo, &info);
  const absl::Status status =
      created ? absl::OkStatus()
              : LastWin32ErrorStatus(absl::StrCat("CreateProcessW ", argv[0]));
  if (have_list) DeleteProcThreadAttributeList(attributes);
  // The child's copies are its own now.
  CloseHandle(out_write);
  CloseHandle(err_write);
  if (null_input != INVALID_HANDLE_VALUE) CloseHandle(null_input);
  if (!created) {
    CloseHandle(out_read);
    CloseHandle(err_read);
    return status;
  }
  CloseHandle(info.hThread);
  return Subprocess(static_cast<pid_t>(info.dwProcessId),
                    reinterpret_cast<intptr_t>(info.hProcess), IntOf(out_read),
                    IntOf(err_read));
}

Subprocess::~Subprocess() {
  if (handle_ != 0) {
    if (!reaped_) {
      TerminateProcess(HandleOf(handle_), kKilledExitCode);
      WaitForSingleObject(HandleOf(handle_), INFINITE);
    }
    CloseHandle(HandleOf(handle_));
  }
  if (out_.fd() >= 0) CloseHandle(HandleOf(out_.fd()));
  if (err_.fd() >= 0) CloseHandle(HandleOf(err_.fd()));
}

bool Subprocess::Signal(int signo) {
  if (handle_ == 0) return false;
  if (signo == kSigKill) {
    return TerminateProcess(HandleOf(handle_), kKilledExitCode) != 0;
  }
  if (signo != kSigTerm && signo != kSigInt) return false;
  const std::wstring name = Widen(absl::StrCat("Local\\mill-io-stop-", pid_));
  const HANDLE event = OpenEventW(EVENT_MODIFY_STATE, FALSE, name.c_str());
  if (event == nullptr) return false;  // Not a server that watches one.
  const bool set = SetEvent(event) != 0;
  CloseHandle(event);
  return set;
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (handle_ == 0) return std::nullopt;
  const DWORD waited = WaitForSingleObject(
      HandleOf(handle_), static_cast<DWORD>(std::max<int64_t>(
                             0, static_cast<int64_t>(timeout.count()))));
  if (waited != WAIT_OBJECT_0) return std::nullopt;
  DWORD code = 0;
  if (!GetExitCodeProcess(HandleOf(handle_), &code)) return std::nullopt;
  reaped_ = true;
  return static_cast<int>(code);
}

}  // namespace testing
}  // namespace mill
