#!/usr/bin/env python3
"""Counts individual test cases from Bazel's build event JSON files.

For every test action in each BEP file, reads the test.xml Bazel wrote and
counts <testcase> elements (a case with <failure> or <error> is failed; a
skipped one is not counted). A test target that failed without a failing case
in its XML (crash, sanitizer abort, timeout) counts as one failed case, and a
test that could not be built counts as one failed case too.

Also counts plain results files (PHASE=results:PATH, from tools/ci/lint.sh).

Prints per-phase lines and ends with the line "N passed, M failed".
"""
import json
import sys
import urllib.parse
import xml.etree.ElementTree as ET


def xml_counts(path):
    passed = failed = 0
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    for case in root.iter("testcase"):
        if case.get("status") == "notrun" or case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    return passed, failed


def phase_counts(bep_path):
    passed = failed = 0
    failures = []
    seen_tests = set()
    try:
        lines = open(bep_path).read().splitlines()
    except OSError:
        return 0, 1, ["(no build event file: bazel did not run)"]
    events = [json.loads(line) for line in lines]
    # With --flaky_test_attempts a test may run more than once: only its last
    # attempt counts, and a test that needed a retry is named.
    last_attempt = {}
    for event in events:
        ident = event.get("id", {}).get("testResult")
        if ident:
            key = (ident["label"], ident.get("run"), ident.get("shard"),
                   json.dumps(ident.get("configuration")))
            last_attempt[key] = max(last_attempt.get(key, 0),
                                    ident.get("attempt", 1))
    for event in events:
        ident = event.get("id", {})
        if "testResult" in ident:
            label = ident["testResult"]["label"]
            seen_tests.add(label)
            key = (label, ident["testResult"].get("run"),
                   ident["testResult"].get("shard"),
                   json.dumps(ident["testResult"].get("configuration")))
            attempt = ident["testResult"].get("attempt", 1)
            if attempt < last_attempt[key]:
                print("  FLAKY: %s failed on attempt %d and was retried" %
                      (label, attempt))
                continue
            result = event.get("testResult", {})
            status = result.get("status", "NO_STATUS")
            counts = None
            for output in result.get("testActionOutput", []):
                if output.get("name") == "test.xml":
                    uri = output.get("uri", "")
                    path = urllib.parse.unquote(urllib.parse.urlparse(uri).path)
                    counts = xml_counts(path)
            p, f = counts if counts else (0, 0)
            if status != "PASSED" and f == 0:
                f = 1
            if f:
                failures.append("%s (%s)" % (label, status))
            passed += p
            failed += f
        elif "targetCompleted" in ident:
            label = ident["targetCompleted"]["label"]
            completed = event.get("completed")
            aborted = event.get("aborted")
            is_test = "testSummary" in json.dumps(event.get("children", []))
            if (aborted or (completed and not completed.get("success", True))) \
                    and is_test and label not in seen_tests:
                failed += 1
                failures.append("%s (did not build)" % label)
    return passed, failed, failures


def results_counts(path):
    """A plain results file (tools/ci/lint.sh): "PASS name" / "FAIL name: why"
    per line, each one case; a missing or empty file is one failure."""
    passed = failed = 0
    failures = []
    try:
        lines = [l for l in open(path).read().splitlines() if l.strip()]
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("PASS "):
            passed += 1
        else:
            failed += 1
            failures.append(line[5:] if line.startswith("FAIL ") else line)
    if not lines:
        return 0, 1, ["(no results: the check did not run)"]
    return passed, failed, failures


def main(argv):
    total_passed = total_failed = 0
    for arg in argv[1:]:
        name, _, bep = arg.partition("=")
        if bep.startswith("results:"):
            p, f, failures = results_counts(bep[len("results:"):])
        else:
            p, f, failures = phase_counts(bep)
        print("%s: %d passed, %d failed" % (name, p, f))
        for failure in failures:
            print("  FAILED: %s" % failure)
        total_passed += p
        total_failed += f
    print("%d passed, %d failed" % (total_passed, total_failed))
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
