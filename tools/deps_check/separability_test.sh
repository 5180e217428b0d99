#!/usr/bin/env bash
# Each standalone component's transitive deps (from `bazel query`, captured
# by genquery) must not include the other Mill-IO components.
set -u
cd "${TEST_SRCDIR}/${TEST_WORKSPACE}/tools/deps_check"
status=0
check() {
  local lib="$1"
  local file="${lib}_deps"
  if [ ! -s "$file" ]; then
    echo "FAIL: $file is missing or empty"; status=1; return
  fi
  if ! grep -q "^//${lib}:" "$file"; then
    echo "FAIL: $file does not list //${lib} itself"; status=1; return
  fi
  local forbidden
  forbidden=$(grep -E '^//(poll|registry|reactor|threadpool|objectpool|timer|ratelimit|net|examples)[:/]' "$file" \
    | grep -v "^//${lib}[:/]" || true)
  if [ -n "$forbidden" ]; then
    echo "FAIL: //${lib} depends on other Mill-IO components:"
    echo "$forbidden"
    status=1
  else
    echo "ok: //${lib} depends on no other Mill-IO component ($(wc -l < "$file") targets in its closure)"
  fi
}
for lib in threadpool objectpool timer ratelimit; do check "$lib"; done
exit $status
