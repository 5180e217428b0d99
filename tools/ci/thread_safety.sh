#!/usr/bin/env bash
# The thread_safety phase of .ci/run: compiles every C++ target of the
# repository (libraries, tests, benchmarks, examples; the fuzz-only targets
# aside) with --config=thread_safety, i.e. clang 14 with -Wthread-safety as
# errors, so every ABSL_GUARDED_BY member and every *_LOCKS_REQUIRED /
# LOCKS_EXCLUDED function (base/mutex.h) is checked wherever it is used.
# Tests are included because header-only templates (Registry<T>,
# SegmentedQueue<T>, ObjectPoolCore<T>) are only analysed where they are
# instantiated, and the tests instantiate all of them.
#
# Compiles only (--output_groups=compilation_outputs): the analysis is a
# compile-time check, so nothing is linked. The outputs go to their own tree
# (k8-fastbuildthread_safety); no other phase can reuse them (another
# compiler), and this phase costs about two minutes on 2 cores from a cold
# cache.
#
# Writes one line to RESULTS, "PASS thread_safety ..." or "FAIL
# thread_safety: why", which tools/ci/count_test_cases.py counts as one test
# case; exits non-zero on failure. TARGETS default to //...
#
#   tools/ci/thread_safety.sh RESULTS [TARGETS...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
results="${1:-/dev/stdout}"
shift || true
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=(//...)
: > "$results"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
./bazelw build --config=thread_safety --output_groups=compilation_outputs \
  --build_tag_filters=-fuzz --keep_going --color=no -- "${targets[@]}" \
  > "$log" 2>&1
rc=$?
# The compiler's own colours (.bazelrc: -fdiagnostics-color=always) off.
sed -i 's/\x1b\[[0-9;]*m//g' "$log"

if [ "$rc" -eq 0 ]; then
  echo "PASS thread_safety (clang -Wthread-safety -Werror: ${targets[*]})" >> "$results"
  exit 0
fi
# Every diagnostic with its context, for the CI log.
grep -E -A4 ': error: ' "$log" | grep -v -e '^INFO: ' -e '^\[[0-9]' >&2
errors="$(grep -cE '^[^ :]+:[0-9]+:[0-9]+: error: ' "$log")"
if [ "$errors" -gt 0 ]; then
  files="$(grep -oE '^[^ :]+:[0-9]+:[0-9]+: error: ' "$log" | cut -d: -f1 |
    sort -u | tr '\n' ' ')"
  first="$(grep -m1 -E '^[^ :]+:[0-9]+:[0-9]+: error: ' "$log")"
  echo "FAIL thread_safety: $errors error(s) in ${files% }; first: $first" >> "$results"
else
  # Not a compiler diagnostic (analysis or toolchain failure): Bazel's.
  tail -20 "$log" >&2
  echo "FAIL thread_safety: bazel build exited $rc: $(grep -m1 '^ERROR: ' "$log")" >> "$results"
fi
exit 1
