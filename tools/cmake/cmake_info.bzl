"""An aspect that writes what tools/cmake/generate.py needs about a target.

    ./bazelw build //... --aspects=//tools/cmake:cmake_info.bzl%cmake_info \
        --output_groups=cmake_info

writes <target>.cmake_info.json beside each rule's outputs: its kind, its
sources and headers (select()s resolved for the build's platform), its deps
and data as labels, and the attributes the CMake build mirrors (visibility,
args, env, size, tags, shard_count, local_defines, linkopts, alwayslink,
testonly). Nothing is compiled.
"""

def _files(attr):
    out = []
    for target in attr:
        for f in target.files.to_list():
            out.append(f.short_path)
    return out

def _labels(attr):
    return [str(t.label) for t in attr]

def _impl(target, ctx):
    rule = ctx.rule
    info = {
        "label": str(target.label),
        "kind": rule.kind,
    }
    for name in ["srcs", "hdrs", "textual_hdrs"]:
        if hasattr(rule.attr, name):
            info[name] = _files(getattr(rule.attr, name))
    for name in ["deps", "data"]:
        if hasattr(rule.attr, name):
            info[name] = _labels(getattr(rule.attr, name))
            info[name + "_files"] = _files(getattr(rule.attr, name))
    if hasattr(rule.attr, "data"):
        # Each data label's files, for $(location) / $(rootpaths) in args.
        info["data_files_of"] = {
            str(t.label): [f.short_path for f in t.files.to_list()]
            for t in rule.attr.data
        }
    if hasattr(rule.attr, "visibility"):
        info["visibility"] = [str(v) for v in rule.attr.visibility]
    if hasattr(rule.attr, "actual") and rule.attr.actual:
        info["actual"] = str(rule.attr.actual.label)
    for name in ["args", "tags", "local_defines", "defines", "linkopts",
                 "copts"]:
        if hasattr(rule.attr, name):
            info[name] = getattr(rule.attr, name)
    for name in ["size", "shard_count", "alwayslink", "testonly", "env"]:
        if hasattr(rule.attr, name):
            info[name] = getattr(rule.attr, name)
    out = ctx.actions.declare_file(target.label.name + ".cmake_info.json")
    ctx.actions.write(out, json.encode(info))
    return [OutputGroupInfo(cmake_info = depset([out]))]

cmake_info = aspect(
    implementation = _impl,
    doc = "Writes <target>.cmake_info.json (see the file comment).",
)
