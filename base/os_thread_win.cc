#include <windows.h>

#include <string>
#include <thread>

#include "base/os_thread.h"

namespace mill {
namespace {

// SetThreadDescription and GetThreadDescription (Windows 10 1607+, and Wine)
// are looked up at run time: older systems lack them, and mingw-w64's
// headers do not declare them.
using SetThreadDescriptionFn = HRESULT(WINAPI*)(HANDLE, PCWSTR);
using GetThreadDescriptionFn = HRESULT(WINAPI*)(HANDLE, PWSTR*);

template <typename Fn>
Fn Kernel32Function(const char* name) {
  HMODULE kernel32 = GetModuleHandleA("kernel32.dll");
  if (kernel32 == nullptr) return nullptr;
  return reinterpret_cast<Fn>(
      reinterpret_cast<void*>(GetProcAddress(kernel32, name)));
}

std::wstring Widen(const std::string& s) {
  if (s.empty()) return std::wstring();
  const int n = MultiByteToWideChar(CP_UTF8, 0, s.data(),
                                    static_cast<int>(s.size()), nullptr, 0);
  if (n <= 0) return std::wstring();
  std::wstring w(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), &w[0],
                      n);
  return w;
}

std::string Narrow(const wchar_t* w) {
  const int n =
      WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
  if (n <= 1) return std::string();
  std::string s(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, -1, &s[0], n, nullptr, nullptr);
  s.resize(static_cast<size_t>(n - 1));  // the NUL
  return s;
}

}  // namespace

void SetCurrentThreadName(absl::string_view name) {
  static const SetThreadDescriptionFn set_description =
      Kernel32Function<SetThreadDescriptionFn>("SetThreadDescription");
  if (set_description == nullptr) return;
  const std::wstring wide = Widen(std::string(name.substr(0, kMaxThreadName)));
  set_description(GetCurrentThread(), wide.c_str());
}

std::string CurrentThreadName() {
  static const GetThreadDescriptionFn get_description =
      Kernel32Function<GetThreadDescriptionFn>("GetThreadDescription");
  if (get_description == nullptr) return "";
  PWSTR description = nullptr;
  if (FAILED(get_description(GetCurrentThread(), &description)) ||
      description == nullptr) {
    return "";
  }
  std::string name = Narrow(description);
  LocalFree(description);
  return name;
}

int AvailableCpus() {
  DWORD_PTR process_mask = 0;
  DWORD_PTR system_mask = 0;
  if (GetProcessAffinityMask(GetCurrentProcess(), &process_mask,
                             &system_mask) &&
      process_mask != 0) {
    int n = 0;
    for (DWORD_PTR m = process_mask; m != 0; m &= m - 1) ++n;
    return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace mill
