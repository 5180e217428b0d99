#!/usr/bin/env bash
# Lint, run by .ci/run before the tests:
#   * clang-format --dry-run -Werror over every C++ file (Google style,
#     .clang-format), so formatting never drifts;
#   * clang-tidy with the curated checks of .clang-tidy (bugprone-*,
#     concurrency-*, performance-*) over the library packages' sources,
#     warnings as errors. Findings are fixed; a NOLINT carries its reason.
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
tidy_one() {
  local file="$1" log
  if log="$(clang-tidy -quiet "$file" -- -std=c++17 -I. -x c++ 2>&1)" &&
     ! grep -q 'error:' <<<"$log"; then
    echo "PASS clang-tidy $file"
  else
    echo "FAIL clang-tidy $file: $(grep -m1 'error:' <<<"$log")"
    grep -A3 'error:' <<<"$log" >&2
  fi
}
export -f tidy_one
printf '%s\n' "${tidy_files[@]}" | xargs -P2 -I{} bash -c 'tidy_one "$@"' _ {} >> "$results"
grep -q '^FAIL' "$results" && status=1
grep -c '^PASS' "$results" | xargs -I{} echo "lint: {} checks passed" >&2
grep '^FAIL' "$results" >&2
exit "$status"
