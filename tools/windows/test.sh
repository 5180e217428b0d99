#!/usr/bin/env bash
# Builds Mill-IO for Windows with mingw-w64 and runs every test under Wine:
# the one command for the Windows platform (README "Platforms").
#
#   tools/windows/test.sh [CTEST_ARGS...]     # e.g. -R poll: to run some
#
# It installs what is missing on first use (Debian's mingw-w64 and Wine;
# Abseil and GoogleTest built for Windows from Debian's source packages by
# tools/windows/deps.sh, cached outside the tree), configures the CMake build
# with cmake/toolchains/mingw-w64-x86_64.cmake into build-windows/ (or
# $MILLIO_WINDOWS_BUILD_DIR), builds it and runs ctest, each test program
# through tools/windows/wine_run.sh (CMAKE_CROSSCOMPILING_EMULATOR).
# Why CMake and not Bazel: docs/ARCHITECTURE.md, "Windows".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
jobs="${MILLIO_JOBS:-2}"
deps="$(tools/windows/deps.sh | tail -n 1)"
build="${MILLIO_WINDOWS_BUILD_DIR:-$PWD/build-windows}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/mingw-w64-x86_64.cmake" \
  -DMILLIO_WINDOWS_DEPS="$deps"
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" -j"$jobs" --output-on-failure "$@"
