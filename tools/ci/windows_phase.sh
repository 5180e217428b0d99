#!/usr/bin/env bash
# CI's windows phase: Mill-IO cross-compiled for Windows with mingw-w64 and
# every test run under Wine (README "Platforms").
#
#   tools/ci/windows_phase.sh RESULTS_FILE
#
#  1. tools/windows/deps.sh: Debian's mingw-w64 and Wine, and Abseil and
#     GoogleTest for Windows built from Debian's source packages (cached);
#  2. configure with cmake/toolchains/mingw-w64-x86_64.cmake and build;
#  3. ctest under Wine; every gtest case is one result line
#     (tools/ci/ctest_cases.py), a failing test gets one rerun, named FLAKY;
#     skipped cases (the "Wine: ..." ones) are listed, not counted;
#  4. the black-box check: echo_server.exe started under Wine serves clients
#     on the Linux side over loopback (tools/windows/echo_blackbox.py).
# Each step appends "PASS name" or "FAIL name: why" to RESULTS_FILE.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
results="${1:?usage: windows_phase.sh RESULTS_FILE}"
: >"$results"
work="$(mktemp -d /tmp/millio-windows.XXXXXX)"
trap 'tools/windows/wine_run.sh --shutdown >/dev/null 2>&1; rm -rf "$work"' EXIT
jobs=2
phase_start=$(date +%s)

step() {
  local name="$1"; shift
  local log="$work/$name.log"
  local start=$(date +%s)
  if "$@" >"$log" 2>&1; then
    echo "PASS $name" >>"$results"
    echo "--- $name: ok ($(( $(date +%s) - start )) s)"
  else
    echo "FAIL $name: see the CI log" >>"$results"
    echo "--- $name: FAILED ($(( $(date +%s) - start )) s); last lines:"
    tail -n 60 "$log"
    return 1
  fi
}

step windows_deps tools/windows/deps.sh || exit 1
deps="$(tail -n 1 "$work/windows_deps.log")"
build="$work/build"
step windows_configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/mingw-w64-x86_64.cmake" \
  -DMILLIO_WINDOWS_DEPS="$deps" || exit 1
step windows_build cmake --build "$build" -j"$jobs" || exit 1

echo "--- ctest (Wine)"
ctest_start=$(date +%s)
ctest --test-dir "$build" -j"$jobs" --output-on-failure \
  --output-junit "$build/ctest.xml" >"$work/ctest.log" 2>&1
ctest_status=$?
tail -n 5 "$work/ctest.log"
rerun=()
if [ "$ctest_status" -ne 0 ]; then
  grep -E "^\s+[0-9]+ - " "$work/ctest.log" || true
  # The first attempt's output of each failing test (a flake's only trace):
  # everything but the one-line results of tests that passed.
  echo "--- ctest: first attempt's output (passing tests left out)"
  grep -vE "^\s*[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed " "$work/ctest.log" |
    tail -n 600
  echo "--- ctest: rerunning the failed tests once"
  ctest --test-dir "$build" -j"$jobs" --output-on-failure --rerun-failed \
    --output-junit "$build/ctest-rerun.xml" 2>&1 | tail -n 200
  rerun=("$build/ctest-rerun.xml")
fi
python3 tools/ci/ctest_cases.py "$results" "$build/ctest.xml" "${rerun[@]}"
echo "--- ctest: $(( $(date +%s) - ctest_start )) s"

# Each black-box check is one result line.
server="$build/runfiles/mill_io/examples/echo/echo_server"
if [ -e "$server.exe" ]; then
  echo "--- echo_server.exe under Wine, Linux clients"
  python3 tools/windows/echo_blackbox.py "$server" 2>&1 | tee "$work/blackbox.log"
  grep -E "^(PASS|FAIL) " "$work/blackbox.log" |
    sed -E 's/^(PASS|FAIL) /\1 windows_echo_server_blackbox /' >>"$results"
  grep -qE "^PASS " "$work/blackbox.log" ||
    echo "FAIL windows_echo_server_blackbox: no check ran" >>"$results"
else
  echo "FAIL windows_echo_server_blackbox: echo_server.exe was not built" \
    >>"$results"
fi
# Wine's server and helper processes end with the phase.
tools/windows/wine_run.sh --shutdown || true
echo "--- windows phase: $(( $(date +%s) - phase_start )) s"
