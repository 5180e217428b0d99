#!/bin/sh
# ctest runs each test through this, the way Bazel runs one: a fresh, empty
# TEST_TMPDIR, and gtest's XML report written to XML_OUTPUT_FILE (a stale
# report from an earlier run removed first, so CI never counts it).
set -e
rm -rf "$TEST_TMPDIR"
mkdir -p "$TEST_TMPDIR" "$(dirname "$XML_OUTPUT_FILE")"
rm -f "$XML_OUTPUT_FILE"
GTEST_OUTPUT="xml:$XML_OUTPUT_FILE"
export GTEST_OUTPUT
exec "$@"
