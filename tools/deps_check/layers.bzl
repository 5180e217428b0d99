"""Mill-IO's layer table, checked by //tools/deps_check:separability_test.

Keep docs/ARCHITECTURE.md's layer table in step with this file.
"""

# Top-level directory -> the directories its targets (libraries, tests,
# benchmarks, binaries: every rule) may depend on. Each entry also allows,
# transitively, whatever the entries it names allow; a package may always
# depend on itself (its sub-packages included) and on external repositories
# (Abseil, GoogleTest, system libraries). "*" allows anything.
#
# Bottom up: base < poll < registry < reactor < net < connpool / examples, with the
# four stand-alone libraries usable from the reactor up. To add a layer, add
# one line; a directory that does not exist yet (connpool) is fine.
LAYERS = {
    # Stand-alone: Abseil, system libraries and //base (itself Abseil only:
    # the annotated Mutex, CallScope), never a poller, registry or reactor.
    "threadpool": ["base"],
    "objectpool": ["base"],
    "timer": ["base"],
    "ratelimit": ["base"],
    # What every layer shares (ErrnoStatus, Mutex, CallScope): Abseil only.
    "base": [],
    # Build configuration (//bazel:windows, NOT_ON_WINDOWS): settings and
    # constraints, no code; any target may name them.
    "bazel": [],
    # The reactor stack.
    "poll": ["base"],
    "registry": ["poll"],
    "reactor": ["registry", "threadpool", "objectpool", "timer", "ratelimit"],
    # tools/fuzz: the framers' fuzz target (net/framing_fuzz.cc).
    "net": ["reactor", "tools/fuzz"],
    "connpool": ["net"],
    # TLS is a layer over //net's transport; its tests also run it through
    # the pool, so it sits above //connpool (the library itself uses //net).
    "tls": ["connpool", "tools/fuzz", "tools/sanitizers"],
    "examples": ["connpool", "net", "tls", "tools/fuzz", "tools/sanitizers"],
    # Measurement and tooling may use anything.
    "bench": ["*"],
    "tools": ["*"],
    # Fuzzing support (libFuzzer glue, invariant checks): Abseil and
    # GoogleTest only, so the packages with fuzz targets may use it.
    "tools/fuzz": [],
    # Sanitizer hooks linked into test and example executables: nothing.
    "tools/sanitizers": [],
    # The user guide's programs use the public API of everything.
    "docs": ["*"],
}

# Where the check starts: every package holding a target reached from these
# targets is checked, all of its rules, tests and private targets included.
# Each root must be visible to //tools/deps_check (public, or listing
# "//tools/deps_check:__pkg__"); what they reach need not be. When a new
# package is reached from none of them (a library nothing uses yet), add its
# main target; the test names packages it saw referenced but could not check.
ROOTS = [
    "//base:errno_status",
    "//base:monotonic_clock",
    "//base:mutex",
    "//base:call_scope",
    "//poll",
    "//registry",
    "//threadpool",
    "//objectpool",
    "//timer",
    "//ratelimit",
    "//reactor",
    "//net",
    "//connpool",
    "//tls",
    "//examples/echo:echo_server",
    "//examples/http:http_server",
    "//examples/jsonrpc:jsonrpc_server",
    "//examples/proxy:proxy",
    "//bench:echo_load",
    "//bench/peers:echo_epoll",
]
