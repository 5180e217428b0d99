"""Tests that run on each I/O engine of the event loop.

`cc_test_on_each_io_engine(name, ...)` takes cc_test's arguments and makes:
  * `<name>_cases`: the test's sources, compiled once (testonly, alwayslink);
  * `<name>`: the test on the default engine (epoll on Linux);
  * `<name>_uring` (Linux only, tag "io_uring"): the same binary run with
    MILL_IO=uring, so every EventLoop it creates without an explicit
    backend polls with io_uring (EventLoopOptions::io, IoEngine::kDefault),
    and MILL_IO_RECEIVE_AHEAD=1, so //net's connections receive on the
    ring (off by default; the path that changes how //net reads).
    It fails where io_uring is refused (a container's seccomp profile):
    there, `bazel test //... --test_tag_filters=-io_uring` leaves them out.
"""

def cc_test_on_each_io_engine(
        name,
        srcs,
        deps = [],
        copts = [],
        local_defines = [],
        tags = [],
        target_compatible_with = None,
        **kwargs):
    native.cc_library(
        name = name + "_cases",
        testonly = True,
        srcs = srcs,
        deps = deps,
        copts = copts,
        local_defines = local_defines,
        alwayslink = True,
        target_compatible_with = target_compatible_with,
    )
    native.cc_test(
        name = name,
        deps = [":" + name + "_cases"],
        tags = tags,
        target_compatible_with = target_compatible_with,
        **kwargs
    )
    native.cc_test(
        name = name + "_uring",
        deps = [":" + name + "_cases"],
        env = {"MILL_IO": "uring", "MILL_IO_RECEIVE_AHEAD": "1"},
        tags = tags + ["io_uring"],
        target_compatible_with = (target_compatible_with or []) +
                                 ["@platforms//os:linux"],
        **kwargs
    )
