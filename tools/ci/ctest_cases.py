#!/usr/bin/env python3
"""Turns a ctest run into one "PASS name" / "FAIL name: why" line per test
case, the results-file format tools/ci/count_test_cases.py counts.

    ctest_cases.py OUT JUNIT [RERUN_JUNIT]

JUNIT is ctest's --output-junit report; each test's gtest XML report is the
file its XML_OUTPUT_FILE names (cmake/MillIOHelpers.cmake: test-results/
<name>.xml beside the junit file's directory). A test with a gtest report
counts each of its cases (skipped ones are not counted); one without (a
plain program, a script) counts as one case; a failed test with no failing
case in its report (a crash, a timeout) counts as one failed case. With
RERUN_JUNIT (ctest --rerun-failed), a test's last run counts and every test
that passed only on its rerun is printed as FLAKY, as the Bazel phases do.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET


def ctest_results(path):
    """{test name: passed?} from ctest's junit report."""
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failed = (case.find("failure") is not None or
                  case.find("error") is not None or
                  case.get("status") not in (None, "run", "passed"))
        if case.get("status") == "disabled":
            continue
        results[case.get("name")] = not failed
    return results


def gtest_cases(path):
    """[(case name, passed?)] from a gtest XML report, or None."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases = []
    for case in root.iter("testcase"):
        if case.get("status") == "notrun" or case.find("skipped") is not None \
                or case.get("result") == "skipped":
            continue
        ok = case.find("failure") is None and case.find("error") is None
        cases.append(("%s.%s" % (case.get("classname"), case.get("name")), ok))
    return cases


def gtest_skips(path):
    """[(case name, message)] of the skipped cases of a gtest XML report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    skips = []
    for case in root.iter("testcase"):
        skipped = case.find("skipped")
        if skipped is None and case.get("result") != "skipped":
            continue
        message = ""
        if skipped is not None:
            message = (skipped.get("message") or skipped.text or "").strip()
        skips.append(("%s.%s" % (case.get("classname"), case.get("name")),
                      message.splitlines()[-1] if message else ""))
    return skips


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    out_path, junit = argv[1], argv[2]
    results = ctest_results(junit)
    if len(argv) == 4 and os.path.exists(argv[3]):
        for name, ok in ctest_results(argv[3]).items():
            if ok and not results.get(name, True):
                print("  FLAKY: ctest %s failed and passed when rerun" % name)
            results[name] = ok
    reports = os.path.join(os.path.dirname(os.path.abspath(junit)),
                           "test-results")
    lines = []
    skipped = []
    for name in sorted(results):
        ok = results[name]
        file_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".xml"
        cases = gtest_cases(os.path.join(reports, file_name))
        skipped += ["%s %s: %s" % (name, case, why) for case, why in
                    gtest_skips(os.path.join(reports, file_name))]
        if not cases:
            lines.append("PASS %s" % name if ok else
                         "FAIL %s: failed (see ctest's output)" % name)
            continue
        for case, case_ok in cases:
            lines.append("PASS %s %s" % (name, case) if case_ok else
                         "FAIL %s %s" % (name, case))
        if not ok and all(c for _, c in cases):
            lines.append("FAIL %s: exited with failure after its cases "
                         "(crash, sanitizer report or timeout)" % name)
    if not results:
        lines.append("FAIL ctest: no test ran")
    with open(out_path, "a") as f:
        f.write("".join(line + "\n" for line in lines))
    # Skipped cases are not counted; each is listed with its reason (the
    # Windows phase's "Wine: ..." skips are reported in the closing note).
    for line in skipped:
        print("  SKIPPED %s" % line)
    passed = sum(1 for l in lines if l.startswith("PASS"))
    print("ctest: %d tests, %d cases passed, %d failed, %d skipped" %
          (len(results), passed, len(lines) - passed, len(skipped)))
    return 0 if passed == len(lines) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
