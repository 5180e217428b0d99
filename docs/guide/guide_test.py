#!/usr/bin/env python3
"""Checks that docs/GUIDE.md shows each guide program exactly as built.

Usage: guide_test.py GUIDE.md FILE...

Each program appears in the guide as a fenced ```cpp block right after a
line `<!-- file: docs/guide/NAME.cc -->`; the block must equal the file,
and every FILE must appear. The programs themselves are cc_tests, so the
guide's code is compiled and run by `bazel test //...`.
"""

import re
import sys


def main():
    guide_path, files = sys.argv[1], sys.argv[2:]
    guide = open(guide_path).read()
    blocks = dict(re.findall(
        r"<!-- file: (\S+) -->\s*```cpp\n(.*?)```", guide, flags=re.S))
    failures = 0
    for path in files:
        name = "docs/guide/" + path.rsplit("/", 1)[-1]
        code = open(path).read()
        if name not in blocks:
            print(f"FAIL: {name} is not shown in the guide")
            failures += 1
        elif blocks[name] != code:
            print(f"FAIL: the guide's copy of {name} differs from the file")
            failures += 1
        else:
            print(f"ok: {name}")
    for name in blocks:
        if not any(p.endswith(name.rsplit("/", 1)[-1]) for p in files):
            print(f"FAIL: the guide shows {name}, which is not built")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
