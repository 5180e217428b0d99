"""mill_cc_fuzz_test: a libFuzzer target, its corpus test and its fuzz run.

    load("//bazel:fuzz.bzl", "mill_cc_fuzz_test")

    mill_cc_fuzz_test(
        name = "line_framer_fuzz",
        srcs = ["line_framer_fuzz.cc"],   # defines LLVMFuzzerTestOneInput
        deps = [":jsonrpc"],
        # corpus defaults to the folder "line_framer_fuzz_corpus"
    )

declares, from one source file and a committed seed corpus folder:

  <name>          cc_test: runs the target once over every corpus file (one
                  gtest case per file). An ordinary test, so the seeds and
                  every committed crash reproducer run in each configuration
                  (default, asan, tsan) and CI counts them.
  <name>_fuzzer   cc_binary, tagged "fuzz": a libFuzzer binary under
                  --config=fuzz (clang, ASan, UBSan); elsewhere a plain
                  driver that runs the files or folders given as arguments
                  (reproduce a crash: bazel run :<name>_fuzzer -- FILE).
  <name>_run      sh_test, tagged "fuzz" and "manual": fuzzes for
                  $MILL_FUZZ_SECONDS (default 60) from the corpus under
                  --config=fuzz; fails on a crash or violated invariant.
                  Manual, so `bazel test //...` never runs it; CI's fuzz
                  phase selects it by tag.

A target checks invariants with //tools/fuzz:fuzz_check, not just absence of
crashes. Corpus files are plain files directly in the corpus folder.
"""

def mill_cc_fuzz_test(name, srcs, deps = [], corpus = None, dict = None, copts = [], tags = [], **kwargs):
    """Declares <name>, <name>_fuzzer and <name>_run (see the file comment).

    Args:
      name: the target's name; by convention ends in "_fuzz".
      srcs: sources; one of them defines LLVMFuzzerTestOneInput.
      deps: libraries under test and helpers.
      corpus: folder (relative to the package) of seed inputs; default
        "<name>_corpus". Must hold at least one file.
      dict: optional libFuzzer dictionary (tokens of the input language)
        for <name>_run.
      copts: extra compiler flags for srcs.
      tags: extra tags for the corpus test.
      **kwargs: passed to the corpus test (size, timeout, ...).
    """
    corpus = corpus or (name + "_corpus")
    corpus_files = native.glob([corpus + "/*"])
    if not corpus_files:
        fail("mill_cc_fuzz_test %s: no seed files in %s/" % (name, corpus))

    native.filegroup(
        name = name + "_corpus_files",
        srcs = corpus_files,
    )

    # The target itself, linked into each of the three binaries below.
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        copts = copts,
        deps = deps + [Label("//tools/fuzz:fuzz_check")],
        alwayslink = True,
    )

    native.cc_test(
        name = name,
        args = ["$(rootpaths :%s_corpus_files)" % name],
        data = [":" + name + "_corpus_files"],
        tags = tags,
        deps = [
            ":" + name + "_lib",
            Label("//tools/fuzz:corpus_test_main"),
        ],
        size = kwargs.pop("size", "small"),
        **kwargs
    )

    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        linkopts = select({
            str(Label("//tools/fuzz:libfuzzer")): ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzz"],
        deps = [":" + name + "_lib"] + select({
            str(Label("//tools/fuzz:libfuzzer")): [],
            "//conditions:default": [Label("//tools/fuzz:standalone_main")],
        }),
    )

    native.sh_test(
        name = name + "_run",
        srcs = [Label("//tools/fuzz:fuzz_run.sh")],
        args = [
            "$(rootpath :%s_fuzzer)" % name,
        ] + (["-dict=$(rootpath %s)" % dict] if dict else []) + [
            "$(rootpaths :%s_corpus_files)" % name,
        ],
        data = [
            ":" + name + "_fuzzer",
            ":" + name + "_corpus_files",
        ] + ([dict] if dict else []),
        size = "medium",
        timeout = "long",
        tags = ["fuzz", "manual"],
    )
