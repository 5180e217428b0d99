#!/usr/bin/env bash
# Lint, run by .ci/run before the tests:
#   * clang-format --dry-run -Werror over every C++ file (Google style,
#     .clang-format), so formatting never drifts;
#   * clang-tidy with the curated checks of .clang-tidy (bugprone-*,
#     concurrency-*, performance-*) over the library packages' sources,
#     warnings as errors. Findings are fixed; a NOLINT carries its reason.
#   * bare-std-locks: library code locks with base/mutex.h's annotated
#     mill::Mutex / SharedMutex / MutexLock / CondVar, never std::mutex,
#     std::lock_guard & co., which Clang's thread-safety analysis cannot
#     see. One case; it fails only for the directories in
#     BARE_LOCKS_ENFORCED, and lists the uses left in the others.
# Writes one line per check to RESULTS ("PASS name" / "FAIL name: why"),
# which tools/ci/count_test_cases.py counts as test cases, and exits non-zero
# if any failed. Every file is compiled as by Bazel: C++17, includes from the
# repository root (all other headers are Debian's, in /usr/include).
#
#   tools/ci/lint.sh RESULTS
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
results="${1:-/dev/stdout}"
: > "$results"
status=0

mapfile -t sources < <(git ls-files '*.cc' '*.h' | grep -v '^third_party/')
if out="$(clang-format --dry-run -Werror "${sources[@]}" 2>&1)"; then
  echo "PASS clang-format (${#sources[@]} files)" >> "$results"
else
  status=1
  files="$(echo "$out" | grep -o '^[^:]*:[0-9]*:[0-9]*: error' | cut -d: -f1 | sort -u | tr '\n' ' ')"
  echo "FAIL clang-format: not formatted: $files (run clang-format -i)" >> "$results"
  echo "$out" | head -40 >&2
fi

# Library sources (tests, benchmarks and other platforms' backends aside).
LIBRARIES=(base poll registry threadpool objectpool timer ratelimit reactor net connpool)
mapfile -t tidy_files < <(git ls-files "${LIBRARIES[@]/%//*.cc}" |
  grep -v -e '_test\.cc$' -e '_benchmark\.cc$' -e 'kqueue_backend\.cc$' \
    -e '/testing/')
# The Windows files (*_win.cc) are checked as what they are: clang's
# mingw-w64 target with mingw-w64's libstdc++ and Windows headers (Debian's
# cross compiler, installed by tools/windows/deps.sh --packages-only), and
# Abseil's headers alone (the same version and Debian patches as the Windows
# build of it) so no Linux header can leak in.
tools/windows/deps.sh --packages-only >/dev/null || status=1
absl_headers="$(mktemp -d)"
trap 'rm -rf "$absl_headers"' EXIT
ln -s /usr/include/absl "$absl_headers/absl"
mingw_gcc=/usr/lib/gcc/x86_64-w64-mingw32/12-posix/include/c++
export WINDOWS_FLAGS="--target=x86_64-w64-mingw32 -nostdinc++
  -isystem $mingw_gcc -isystem $mingw_gcc/x86_64-w64-mingw32
  -isystem $mingw_gcc/backward -D_WIN32_WINNT=0x0A00 -DWIN32_LEAN_AND_MEAN
  -DNOMINMAX -I$absl_headers"
tidy_one() {
  local file="$1" log platform=()
  # shellcheck disable=SC2206  # the flags are words
  [[ "$file" == *_win.cc ]] && platform=($WINDOWS_FLAGS)
  if log="$(clang-tidy -quiet "$file" -- -std=c++17 -I. -x c++ "${platform[@]}" 2>&1)" &&
     ! grep -q 'error:' <<<"$log"; then
    echo "PASS clang-tidy $file"
  else
    echo "FAIL clang-tidy $file: $(grep -m1 'error:' <<<"$log")"
    grep -A3 'error:' <<<"$log" >&2
  fi
}
export -f tidy_one
printf '%s\n' "${tidy_files[@]}" | xargs -P2 -I{} bash -c 'tidy_one "$@"' _ {} >> "$results"
# Library code only: tests, benchmarks and testing/ helpers may use the
# standard types. A match in a // comment does not count.
BARE_LOCKS_CHECKED=(net connpool reactor registry threadpool)
# Where a use fails the check; the others are reported until their
# annotation lands (issue #16), then move here.
BARE_LOCKS_ENFORCED=(net connpool reactor registry threadpool)
bare_lock_re='std::(((shared_|recursive_)?(timed_)?mutex)|lock_guard|unique_lock|shared_lock|scoped_lock|condition_variable(_any)?)([^_[:alnum:]]|$)'
bare_lock_uses() {  # DIR...: "file:line: code" per use
  git ls-files "${@/%//*.cc}" "${@/%//*.h}" |
    grep -v -e '_test\.cc$' -e '_test\.h$' -e '_benchmark\.cc$' -e '/testing/' |
    xargs -r grep -nE "$bare_lock_re" /dev/null |
    awk -v re="$bare_lock_re" '{
      code = $0; sub(/^[^:]*:[0-9]+:/, "", code); sub(/\/\/.*/, "", code)
      if (code ~ re) print }'
}
enforced="$(bare_lock_uses "${BARE_LOCKS_ENFORCED[@]}")"
pending_dirs=()
for dir in "${BARE_LOCKS_CHECKED[@]}"; do
  [[ " ${BARE_LOCKS_ENFORCED[*]} " == *" $dir "* ]] || pending_dirs+=("$dir")
done
pending=""
[ "${#pending_dirs[@]}" -gt 0 ] && pending="$(bare_lock_uses "${pending_dirs[@]}")"
pending_count="$(grep -c . <<<"$pending")"
if [ -n "$pending" ]; then
  echo "bare-std-locks: not enforced yet, $pending_count use(s) in ${pending_dirs[*]}:" >&2
  echo "$pending" | head -20 >&2
fi
if [ -z "$enforced" ]; then
  note="enforced: ${BARE_LOCKS_ENFORCED[*]}"
  [ "${#pending_dirs[@]}" -gt 0 ] &&
    note+="; not yet: $pending_count use(s) in ${pending_dirs[*]}"
  echo "PASS bare-std-locks ($note)" >> "$results"
else
  echo "FAIL bare-std-locks: $(grep -c . <<<"$enforced") use(s) of std locks in ${BARE_LOCKS_ENFORCED[*]}: $(cut -d: -f1,2 <<<"$enforced" | head -10 | tr '\n' ' ')(use base/mutex.h)" >> "$results"
  echo "$enforced" >&2
fi

grep -q '^FAIL' "$results" && status=1
grep -c '^PASS' "$results" | xargs -I{} echo "lint: {} checks passed" >&2
grep '^FAIL' "$results" >&2
exit "$status"
