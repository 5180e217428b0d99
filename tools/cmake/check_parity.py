#!/usr/bin/env python3
"""Checks that the configured CMake build and the Bazel build agree.

    python3 tools/cmake/check_parity.py BUILD_DIR RESULTS_FILE

BUILD_DIR must have been configured with CMake's file API query for the
codemodel (tools/ci/cmake_phase.sh creates it) and with --graphviz=
BUILD_DIR/graph/deps.dot. Checks, each one line in RESULTS_FILE ("PASS name"
or "FAIL name: why", the format tools/ci/count_test_cases.py counts):

  generated       every CMakeLists.txt is what tools/cmake/generate.py writes
                  from today's BUILD.bazel files;
  sources         every file Bazel compiles for a C++ target (srcs, hdrs) is
                  a source of its CMake counterpart and the other way round:
                  no file in one build that the other lacks;
  tests           ctest's tests are exactly Bazel's tests (cc_test, sh_test),
                  less the few listed in generate.py's NOT_IN_CMAKE;
  layers          every link edge of the CMake graph is allowed by the layer
                  table of //tools/deps_check (tools/deps_check/layers.bzl);
  edges           each CMake target links the same Mill-IO targets as its
                  Bazel counterparts depend on;
  threadpool      MillIO::threadpool's link closure holds no poller,
                  registry or reactor (a thread-pool-only user links
                  libmillio_threadpool and libmillio_base, nothing else).
"""
import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402

ROOT = generate.ROOT


def load_layers():
    scope = {}
    with open(os.path.join(ROOT, "tools", "deps_check", "layers.bzl")) as f:
        exec(f.read(), scope)  # A dict literal and a list: plain Python.
    return scope["LAYERS"]


def allowed(layers, src_dir, dep_dir):
    """Whether directory src_dir may depend on dep_dir (transitively)."""
    def entry(directory):
        # The longest LAYERS key that is directory or a parent of it.
        parts = directory.split("/")
        for n in range(len(parts), 0, -1):
            key = "/".join(parts[:n])
            if key in layers:
                return key
        return None
    src, dep = entry(src_dir), entry(dep_dir)
    if src is None or dep is None:
        return False
    if src == dep:
        return True
    seen, stack = set(), [src]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        for nxt in layers.get(cur, []):
            if nxt == "*" or nxt == dep:
                return True
            stack.append(nxt)
    return False


def codemodel(build_dir):
    reply = os.path.join(build_dir, ".cmake", "api", "v1", "reply")
    index = sorted(glob.glob(os.path.join(reply, "index-*.json")))
    if not index:
        sys.exit("check_parity.py: no file API reply in %s (configure with "
                 "the codemodel-v2 query)" % build_dir)
    with open(index[-1]) as f:
        objects = json.load(f)["objects"]
    entry = [o for o in objects if o["kind"] == "codemodel"][0]
    with open(os.path.join(reply, entry["jsonFile"])) as f:
        model = json.load(f)
    targets = {}
    for t in model["configurations"][0]["targets"]:
        with open(os.path.join(reply, t["jsonFile"])) as f:
            detail = json.load(f)
        targets[t["name"]] = {
            "type": detail["type"],
            "sources": {s["path"] for s in detail.get("sources", [])
                        if not s.get("isGenerated")},
        }
    return targets


def graph_edges(build_dir):
    """Direct link edges {target: {dep, ...}} from CMake's --graphviz."""
    with open(os.path.join(build_dir, "graph", "deps.dot")) as f:
        return parse_graphviz(f.read())


def parse_graphviz(text):
    names, edges = {}, {}
    node = re.compile(r'^\s*"(node\d+)" \[ label = "([^"]+)"')
    edge = re.compile(r'^\s*"(node\d+)" -> "(node\d+)"')
    lines = text.splitlines()
    for line in lines:
        m = node.match(line)
        if m:
            names[m.group(1)] = m.group(2).split("\\n")[0]
    for line in lines:
        m = edge.match(line)
        if m:
            src, dep = names[m.group(1)], names[m.group(2)]
            if src != dep:
                edges.setdefault(src, set()).add(dep)
    return edges


def source_problems(expected, model):
    """expected: {CMake target: Bazel's files}; model: codemodel()."""
    problems = []
    for name, want in sorted(expected.items()):
        if name not in model:
            if not want:
                continue  # flags only (Bazel linkopts): not in the codemodel
            problems.append("no CMake target %s for a Bazel target" % name)
            continue
        have = model[name]["sources"]
        for f in sorted(want - have):
            problems.append("%s: %s is in Bazel, not in CMake" % (name, f))
        for f in sorted(have - want):
            problems.append("%s: %s is in CMake, not in Bazel" % (name, f))
    for name in sorted(set(model) - set(expected)):
        problems.append("CMake target %s has no Bazel counterpart" % name)
    return problems


def _ours(name):
    return name.replace("MillIO::", "millio_")


def layer_problems(edges, label_of, layers):
    """edges: {CMake target: {dep}}; label_of: {CMake target: directory}."""
    problems = []
    for src, deps in sorted(edges.items()):
        if src not in label_of:
            continue
        for dep in sorted(_ours(d) for d in deps):
            if dep not in label_of:
                continue  # external: Abseil, GoogleTest, OpenSSL, ...
            if not allowed(layers, label_of[src], label_of[dep]):
                problems.append("%s (%s) links %s (%s): not allowed by "
                                "tools/deps_check/layers.bzl" %
                                (src, label_of[src], dep, label_of[dep]))
    return problems


def edge_problems(want_edges, edges):
    """want_edges: {CMake target: the targets Bazel's deps map to}."""
    problems = []
    for name, want in sorted(want_edges.items()):
        have = {_ours(d) for d in edges.get(name, set())} & set(want_edges)
        if want != have:
            problems.append("%s links %s; Bazel's deps say %s" % (
                name, sorted(have), sorted(want)))
    return problems


def threadpool_problems(edges):
    closure, stack = set(), ["millio_threadpool"]
    while stack:
        for dep in edges.get(stack.pop(), set()):
            dep = _ours(dep)
            if dep.startswith("millio_") and dep not in closure:
                closure.add(dep)
                stack.append(dep)
    return ["MillIO::threadpool links %s" % t for t in sorted(closure)
            if t != "millio_base"]


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    build_dir, results_path = argv[1], argv[2]
    results = []

    def record(name, problems):
        if problems:
            for p in problems[:20]:
                print("check_parity: %s: %s" % (name, p), file=sys.stderr)
            more = "" if len(problems) <= 20 else " (+%d more)" % (
                len(problems) - 20)
            results.append("FAIL cmake_parity_%s: %s%s" % (
                name, "; ".join(problems[:3]), more))
        else:
            results.append("PASS cmake_parity_%s" % name)

    # The generated files come from both platforms' analyses; the configured
    # build checked here is Linux's.
    by_platform = {platform: generate.load_targets(platform)
                   for platform in generate.PLATFORM_FLAGS}
    targets = by_platform["linux"]
    files = generate.render({platform: generate.generate(t)
                             for platform, t in by_platform.items()})
    stale = [rel for rel, text in files.items()
             if not os.path.exists(os.path.join(ROOT, rel)) or
             open(os.path.join(ROOT, rel)).read() != text]
    record("generated", ["%s is out of date: run python3 tools/cmake/"
                         "generate.py" % rel for rel in sorted(stale)])

    gen = generate.Generator(targets)
    model = codemodel(build_dir)

    # Bazel target -> CMake target.
    def cmake_of(label):
        if label in gen.merged:
            return "millio_" + gen.merged[label]
        return generate.cmake_name(label)

    mirrored = {l: i for l, i in targets.items()
                if generate.mirrored(i) and i["kind"] != "sh_test"}

    # Sources, both ways.
    expected = {}
    for label, info in mirrored.items():
        files_of = set(info.get("srcs", []) + info.get("hdrs", []) +
                       info.get("textual_hdrs", []))
        expected.setdefault(cmake_of(label), set()).update(files_of)
    record("sources", source_problems(expected, model))
    bazel_files = set().union(*expected.values())
    print("check_parity: %d files in %d Bazel targets, %d CMake targets" %
          (len(bazel_files), len(mirrored), len(model)))

    # Tests.
    shown = subprocess.run(["ctest", "--test-dir", build_dir,
                            "--show-only=json-v1"], check=True,
                           stdout=subprocess.PIPE, text=True).stdout
    ctest_names = {t["name"] for t in json.loads(shown)["tests"]}
    ctest_labels = {n.split("/shard_")[0] for n in ctest_names}
    bazel_tests = {l[2:] for l, i in targets.items()
                   if i["kind"].endswith("_test") and generate.mirrored(i)}
    problems = ["Bazel test //%s is not a ctest test" % t
                for t in sorted(bazel_tests - ctest_labels)]
    problems += ["ctest test %s is not a Bazel test" % t
                 for t in sorted(ctest_labels - bazel_tests)]
    left_out = sorted(l for l, i in targets.items()
                      if i["kind"].endswith("_test") and
                      not generate.mirrored(i))
    record("tests", problems)
    print("check_parity: %d Bazel tests as %d ctest tests; not in CMake: %s"
          % (len(bazel_tests), len(ctest_names), ", ".join(left_out)))

    # Layers and edges, on CMake's own link graph.
    edges = graph_edges(build_dir)
    label_of = {}  # CMake target -> a Bazel package directory
    for label in mirrored:
        label_of[cmake_of(label)] = generate.split_label(label)[0]
    record("layers", layer_problems(edges, label_of, load_layers()))

    want_edges = {}
    for label in mirrored:
        name = cmake_of(label)
        want = want_edges.setdefault(name, set())
        for dep in targets[label].get("deps", []):
            if dep in targets and cmake_of(dep) != name:
                want.add(cmake_of(dep))
    record("edges", edge_problems(want_edges, edges))
    record("threadpool", threadpool_problems(edges))

    with open(results_path, "a") as f:
        for line in results:
            f.write(line + "\n")
    print("\n".join(results))
    return 1 if any(r.startswith("FAIL") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
