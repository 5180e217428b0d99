# CMake toolchain file: cross-compile for 64-bit Windows with Debian's
# mingw-w64 (g++ 12, posix thread model), run what it builds under Wine.
#
#   prefix=$(tools/windows/deps.sh | tail -n1)   # Abseil + GoogleTest for Windows
#   cmake -S . -B build-win \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
#     -DMILLIO_WINDOWS_DEPS="$prefix"
#   cmake --build build-win -j2 && ctest --test-dir build-win -j2
#
# MILLIO_WINDOWS_DEPS (cache variable, else the environment variable of that
# name, else deps.sh's default prefix computed the same way deps.sh does) is
# the prefix tools/windows/deps.sh installs the Windows builds of the
# dependencies into; find_package/find_library/find_path look there only, so a
# host (Linux) library can never be picked up by mistake.
#
# Executables are linked -static (libgcc, libstdc++, winpthread): they need no
# DLL besides Windows' own, so Wine runs them from anywhere.
# CMAKE_CROSSCOMPILING_EMULATOR is tools/windows/wine_run.sh, so add_test() of
# an executable target, and try_run(), go through Wine.
#
# deps.sh hashes this file into its cache key: editing it rebuilds the deps.

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_millio_triple x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${_millio_triple}-gcc-posix)
set(CMAKE_CXX_COMPILER ${_millio_triple}-g++-posix)
set(CMAKE_RC_COMPILER ${_millio_triple}-windres)
set(CMAKE_AR ${_millio_triple}-gcc-ar-posix CACHE FILEPATH "Archiver")
set(CMAKE_RANLIB ${_millio_triple}-gcc-ranlib-posix CACHE FILEPATH "Ranlib")

# Windows 10 API level; no <windows.h> min/max macros; lean <windows.h> (no
# winsock 1 clash with <winsock2.h>).
set(CMAKE_C_FLAGS_INIT "-D_WIN32_WINNT=0x0A00 -DWIN32_LEAN_AND_MEAN -DNOMINMAX")
set(CMAKE_CXX_FLAGS_INIT "-D_WIN32_WINNT=0x0A00 -DWIN32_LEAN_AND_MEAN -DNOMINMAX")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")

# Where the Windows builds of the dependencies are.
get_filename_component(_millio_source_root "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT MILLIO_WINDOWS_DEPS AND DEFINED ENV{MILLIO_WINDOWS_DEPS})
  set(MILLIO_WINDOWS_DEPS "$ENV{MILLIO_WINDOWS_DEPS}")
endif()
if(NOT MILLIO_WINDOWS_DEPS)
  # deps.sh's default: <cache>/mill-io/windows-deps-<first 12 hex digits of
  # sha256(deps.sh followed by this file)>.
  if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
    set(_millio_cache "$ENV{XDG_CACHE_HOME}")
  else()
    set(_millio_cache "$ENV{HOME}/.cache")
  endif()
  file(SHA256 "${_millio_source_root}/tools/windows/deps.sh" _millio_h1)
  file(SHA256 "${CMAKE_CURRENT_LIST_FILE}" _millio_h2)
  string(SHA256 _millio_key "${_millio_h1}  deps.sh\n${_millio_h2}  toolchain\n")
  string(SUBSTRING "${_millio_key}" 0 12 _millio_key)
  set(MILLIO_WINDOWS_DEPS "${_millio_cache}/mill-io/windows-deps-${_millio_key}")
endif()
set(MILLIO_WINDOWS_DEPS "${MILLIO_WINDOWS_DEPS}" CACHE PATH
  "Prefix of the Windows builds of the dependencies (tools/windows/deps.sh)")
if(NOT IS_DIRECTORY "${MILLIO_WINDOWS_DEPS}" AND NOT MILLIO_WINDOWS_DEPS_BUILDING)
  message(FATAL_ERROR "No Windows dependencies in ${MILLIO_WINDOWS_DEPS}: "
    "run tools/windows/deps.sh (it prints the prefix to pass as "
    "-DMILLIO_WINDOWS_DEPS=...)")
endif()
# try_compile/try_run projects read this file again: give them the same prefix.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES
  MILLIO_WINDOWS_DEPS MILLIO_WINDOWS_DEPS_BUILDING)

# The deps prefix, then the mingw-w64 sysroot (Debian's libz-mingw-w64 and the
# like). Programs (code generators, ...) come from the host.
set(CMAKE_FIND_ROOT_PATH "${MILLIO_WINDOWS_DEPS}" /usr/${_millio_triple})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR "${_millio_source_root}/tools/windows/wine_run.sh")
