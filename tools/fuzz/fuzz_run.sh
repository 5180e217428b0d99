#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time, starting from its seed corpus.
# The <name>_run test of bazel/fuzz.bzl's mill_cc_fuzz_test calls it as
#   fuzz_run.sh FUZZER [-LIBFUZZER_FLAG...] SEED_FILE...
# MILL_FUZZ_SECONDS (default 60) bounds the run. A crash, a sanitizer report
# or a violated invariant makes the test fail; the input that caused it is
# saved in the test's undeclared outputs
# (bazel-testlogs/<package>/<name>_run/test.outputs/) and its path printed.
set -uo pipefail

fuzzer="$1"
shift
flags=()
while [ "$#" -gt 0 ] && [[ "$1" == -* ]]; do
  flags+=("$1")
  shift
done
seconds="${MILL_FUZZ_SECONDS:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz_run: MILL_FUZZ_SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi
# (Captured first: with pipefail, grep -q closing the pipe early would make
# the fuzzer's SIGPIPE fail the check.)
help="$("$fuzzer" -help=1 2>&1)"
if [[ "$help" != *max_total_time* ]]; then
  echo "fuzz_run: $fuzzer was built without libFuzzer; run with --config=fuzz" >&2
  exit 2
fi

# libFuzzer adds what it finds to the first directory: a writable copy of
# the seeds (runfiles are read-only).
work="${TEST_TMPDIR:-$(mktemp -d)}/corpus"
mkdir -p "$work"
for seed in "$@"; do
  cp -L "$seed" "$work/"
done
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$(mktemp -d)}"
mkdir -p "$artifacts"

echo "fuzz_run: $(basename "$fuzzer") for ${seconds}s from $# seeds"
"$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "${flags[@]}" "$work"
status=$?
if [ "$status" -ne 0 ]; then
  echo "fuzz_run: FAILED (exit $status). Reproducer(s), kept in" \
    "bazel-testlogs/<package>/<name>_run/test.outputs/outputs.zip:" >&2
  for artifact in "$artifacts"/*; do
    [ -f "$artifact" ] || continue
    echo "  $(basename "$artifact") ($(stat -c %s "$artifact") bytes)," \
      "base64: $(head -c 65536 "$artifact" | base64 -w0)" >&2
  done
  echo "fuzz_run: reproduce with" \
    "'bazel run //<package>:<name>_fuzzer -- FILE' (any configuration)," \
    "fix the defect, then add FILE to the target's corpus folder so that" \
    "its corpus test covers it from then on." >&2
fi
exit "$status"
