#!/usr/bin/env python3
"""Runs separability_test.py on testdata/rules.xml, a fixture with known
violations, and checks that it fails with exactly those and no others.

Arguments: the checker, the fixture, then the --layer=... flags of the real
table (so the fixture is judged by layers.bzl as it is).
"""

import re
import subprocess
import sys

SUMMARY = re.compile(r"^//[\w/]*: \d+ dependenc")

EXPECTED_FAILURES = [
    "//timer:benchmark_up_to_poll depends on //poll:token",
    "//reactor:test_up_to_net depends on //net:net",
    "//connpool:connpool_up_to_examples depends on //examples/common:server_main",
    "//examples/echo:test_data_in_bench depends on //bench:echo_load",
    "//registry:unknown_directory depends on //vendor:lib, whose directory "
    "//vendor is not in the layer table",
    "//vendor:not_in_table: its directory //vendor is not in the layer table",
]


def main(argv):
    checker, fixture, layers = argv[0], argv[1], argv[2:]
    run = subprocess.run([sys.executable, checker, fixture] + layers,
                         capture_output=True, text=True)
    print(run.stdout, run.stderr, sep="")
    failures = [line[len("FAIL: "):] for line in run.stdout.splitlines()
                if line.startswith("FAIL: ")]
    failures = [f for f in failures if not SUMMARY.match(f)]
    status = 0
    if run.returncode != 1:
        print("SELFTEST: expected exit 1, got %d" % run.returncode)
        status = 1
    for expected in EXPECTED_FAILURES:
        if not any(f.startswith(expected) for f in failures):
            print("SELFTEST: missing failure: " + expected)
            status = 1
    for failure in failures:
        if not any(failure.startswith(e) for e in EXPECTED_FAILURES):
            print("SELFTEST: unexpected failure: " + failure)
            status = 1
    for line in ("note: //examples/testing is referenced",
                 "ok: //net (1 rules, 2 edges"):
        if not any(l.startswith(line) for l in run.stdout.splitlines()):
            print("SELFTEST: missing line: " + line)
            status = 1
    print("SELFTEST: %s" % ("ok" if status == 0 else "FAILED"))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
