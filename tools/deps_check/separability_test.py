#!/usr/bin/env python3
"""Checks that every dependency follows the layer table (layers.bzl).

Arguments: the XML that the `:rules` genquery wrote (every rule of every
in-repo package reached from ROOTS, with its inputs), then one
--layer=DIR=USES,... per entry of LAYERS. For each rule in a package under
top-level directory DIR, each in-repo input (deps, data, srcs, implicit ones,
every branch of a select()) must be in DIR itself, or in a directory that DIR
may use, directly or through the entries it names. Prints one line per layer
and one per violation; exits 1 on any violation, on a directory missing from
the table, and on an entry naming an unknown directory.
"""

import collections
import sys
import xml.etree.ElementTree as ET


# Layer keys naming a sub-directory ("tools/fuzz"): such a package is its own
# layer instead of its top-level directory's. Set by main().
SUBDIR_LAYERS = []


def top_of(label):
    """//net/internal:x -> "net"; //:WORKSPACE -> "" (the root package);
    the longest sub-directory key of the table wins ("tools/fuzz")."""
    package = label[2:].split(":", 1)[0]
    for key in SUBDIR_LAYERS:
        if package == key or package.startswith(key + "/"):
            return key
    return package.split("/", 1)[0]


def package_of(label):
    return "//" + label[2:].split(":", 1)[0]


def closure(layers):
    """Directory -> every directory it may use (itself included), or None for
    "anything"."""
    allowed = {}

    def visit(layer, stack):
        if layer in allowed:
            return allowed[layer]
        if layer in stack:
            raise SystemExit("layers.bzl: cycle through %s" % " -> ".join(stack + [layer]))
        uses = layers[layer]
        if "*" in uses:
            allowed[layer] = None
            return None
        result = {layer}
        for used in uses:
            sub = visit(used, stack + [layer])
            if sub is None:
                raise SystemExit("layers.bzl: %s may use %s, which may use anything" %
                                 (layer, used))
            result |= sub
        allowed[layer] = result
        return result

    for layer in layers:
        visit(layer, [])
    return allowed


def main(argv):
    path, layer_args = argv[0], argv[1:]
    layers = {}
    for arg in layer_args:
        name, _, uses = arg[len("--layer="):].partition("=")
        layers[name] = [u for u in uses.split(",") if u]
    SUBDIR_LAYERS[:] = sorted((k for k in layers if "/" in k), key=len,
                              reverse=True)
    status = 0
    for name, uses in layers.items():
        for used in uses:
            if used != "*" and used not in layers:
                print("FAIL: layers.bzl: %s may use %s, which is not in the table" %
                      (name, used))
                status = 1
    if status:
        return status
    allowed = closure(layers)

    rules = ET.parse(path).getroot().findall("rule")
    checked_packages = set()
    rules_per_layer = collections.Counter()
    edges_per_layer = collections.Counter()
    referenced = collections.defaultdict(set)  # package -> rules naming it
    violations = []
    failed_layers = collections.Counter()
    for rule in rules:
        name = rule.get("name")
        if not name.startswith("//"):
            continue
        layer = top_of(name)
        checked_packages.add(package_of(name))
        if layer not in layers:
            violations.append("%s: its directory //%s is not in the layer table "
                              "(tools/deps_check/layers.bzl)" % (name, layer))
            continue
        rules_per_layer[layer] += 1
        for node in rule.findall("rule-input"):
            dep = node.get("name")
            if not dep.startswith("//"):
                continue  # external repositories: Abseil, system libraries
            if top_of(dep) == "bazel":
                continue  # build configuration (//bazel:windows): no code
            referenced[package_of(dep)].add(name)
            target_layer = top_of(dep)
            if target_layer == layer:
                continue
            edges_per_layer[layer] += 1
            if allowed[layer] is None:
                continue
            if target_layer in allowed[layer]:
                continue
            failed_layers[layer] += 1
            if target_layer not in layers:
                violations.append("%s depends on %s, whose directory //%s is not "
                                  "in the layer table" % (name, dep, target_layer))
            else:
                violations.append(
                    "%s depends on %s: //%s may depend only on %s" %
                    (name, dep, layer,
                     ", ".join("//" + d for d in sorted(allowed[layer] - {layer}))
                     or "Abseil and system libraries"))

    for layer in layers:
        if failed_layers[layer]:
            print("FAIL: //%s: %d dependenc%s against the table, listed below" %
                  (layer, failed_layers[layer],
                   "y" if failed_layers[layer] == 1 else "ies"))
        elif rules_per_layer[layer] == 0:
            print("skip: //%s: no targets reached from ROOTS (a directory that "
                  "does not exist yet, or one only tooling uses)" % layer)
        elif allowed[layer] is None:
            print("ok: //%s (%d rules) may depend on anything" %
                  (layer, rules_per_layer[layer]))
        else:
            print("ok: //%s (%d rules, %d edges to other directories) within %s" %
                  (layer, rules_per_layer[layer], edges_per_layer[layer],
                   ", ".join("//" + d for d in sorted(allowed[layer] - {layer}))
                   or "itself"))
    # Packages only private targets (usually tests) lead to: their own
    # dependencies cannot be listed from here.
    for package in sorted(set(referenced) - checked_packages):
        print("note: %s is referenced (by %s) but not reached from ROOTS, so its "
              "own dependencies are not checked; make one of its targets visible "
              "to //tools/deps_check and add it to ROOTS" %
              (package, ", ".join(sorted(referenced[package])[:3])))
    for violation in violations:
        print("FAIL: " + violation)
    if not rules:
        print("FAIL: the genquery listed no rules")
        return 1
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
