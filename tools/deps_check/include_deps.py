#!/usr/bin/env python3
"""Reports #includes that a cc target's declared deps do not provide.

    python3 tools/deps_check/include_deps.py               # every package
    python3 tools/deps_check/include_deps.py //timer/... //net/...

For every cc_library / cc_binary / cc_test matching the patterns, each
`#include "..."` in its srcs and hdrs must name
  - an in-repo header in the target itself or in the `hdrs` of a direct dep
    (a dep's `srcs` headers are its private business), or
  - for Abseil, GoogleTest and Benchmark (system headers exposed under their
    upstream labels), a header of a package the target depends on directly:
    `absl/strings/str_cat.h` needs a dep in `@com_google_absl//absl/strings`.
Everything else (<system> headers, other libraries) is not checked.

Bazel (gcc) does not enforce this by itself: a header reached through a
transitive dep compiles, until that dep changes. Exits 1 if anything is
reported. Uses `bazel query`, so run it from the repository root, outside
`bazel test`.
"""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# Include prefix -> the repository its headers come from.
EXTERNAL = {
    "absl/": "@com_google_absl//",
    "gtest/": "@com_google_googletest//",
    "gmock/": "@com_google_googletest//",
    "benchmark/": "@com_github_google_benchmark//",
}


def query(expression):
    out = subprocess.run(["./bazelw", "query", "--output=xml", expression],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return ET.fromstring(out)


def labels(rule, attribute):
    for node in rule.findall("list"):
        if node.get("name") == attribute:
            return [label.get("value") for label in node.findall("label")]
    for node in rule.findall("label"):
        if node.get("name") == attribute:
            return [node.get("value")]
    return []


def path_of(label):
    """//pkg/sub:dir/file.h -> pkg/sub/dir/file.h (in-repo files only)."""
    if not label.startswith("//"):
        return None
    package, _, name = label[2:].partition(":")
    return os.path.join(package, name) if package else name


def main(patterns):
    patterns = patterns or ["//..."]
    universe = query('kind("cc_library|alias", //...)')
    provides = {}  # library label -> headers it exports
    aliases = {}
    for rule in universe.findall("rule"):
        name = rule.get("name")
        if rule.get("class") == "alias":
            aliases[name] = labels(rule, "actual")[0]
        else:
            provides[name] = {path_of(h) for h in labels(rule, "hdrs") +
                              labels(rule, "textual_hdrs")}

    def resolve(label):
        while label in aliases:
            label = aliases[label]
        return label

    targets = query('kind("cc_(library|binary|test)", %s)' % " + ".join(patterns))
    problems = 0
    for rule in targets.findall("rule"):
        name = rule.get("name")
        own = {path_of(f) for f in labels(rule, "srcs") + labels(rule, "hdrs") +
               labels(rule, "textual_hdrs")}
        deps = [resolve(d) for d in labels(rule, "deps")]
        visible = set(own)
        for dep in deps:
            visible |= provides.get(dep, set())
        for source in sorted(p for p in own if p):
            full = os.path.join(ROOT, source)
            if not os.path.isfile(full):
                continue
            with open(full, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for header in INCLUDE.findall(text):
                if os.path.isfile(os.path.join(ROOT, header)):
                    if header not in visible:
                        print("%s: %s includes %s, which no direct dep exports"
                              % (name, source, header))
                        problems += 1
                    continue
                for prefix, repo in EXTERNAL.items():
                    if not header.startswith(prefix):
                        continue
                    if repo == "@com_google_absl//":
                        want = repo + os.path.dirname(header)
                        ok = any(d == want or d.startswith(want + ":") for d in deps)
                    else:
                        ok = any(d.startswith(repo) for d in deps)
                    if not ok:
                        print("%s: %s includes %s without a dep on %s" %
                              (name, source, header,
                               want if repo == "@com_google_absl//" else repo))
                        problems += 1
    print("%d problem(s)" % problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
