"""Declares everything mill_io needs, from the system's Debian packages.

Use from another workspace:

    local_repository(name = "mill_io", path = "/path/to/mill-io")
    load("@mill_io//bazel:repositories.bzl", "mill_io_dependencies")
    mill_io_dependencies()

A repository that the workspace already declared (for example the upstream
Abseil archive) is left alone, so upstream sources can replace system ones.
"""

load("//bazel:system_libs.bzl", "system_repository", "vendored_repository")

_ABSL_TARGETS = {
    "absl/algorithm:algorithm": ["absl_algorithm"],
    "absl/algorithm:container": ["absl_algorithm_container"],
    "absl/base:base": ["absl_base"],
    "absl/base:config": ["absl_config"],
    "absl/base:core_headers": ["absl_core_headers"],
    "absl/cleanup:cleanup": ["absl_cleanup"],
    "absl/container:btree": ["absl_btree"],
    "absl/container:fixed_array": ["absl_fixed_array"],
    "absl/container:flat_hash_map": ["absl_flat_hash_map"],
    "absl/container:flat_hash_set": ["absl_flat_hash_set"],
    "absl/container:inlined_vector": ["absl_inlined_vector"],
    "absl/container:node_hash_map": ["absl_node_hash_map"],
    "absl/container:node_hash_set": ["absl_node_hash_set"],
    "absl/debugging:failure_signal_handler": ["absl_failure_signal_handler"],
    "absl/debugging:stacktrace": ["absl_stacktrace"],
    "absl/debugging:symbolize": ["absl_symbolize"],
    "absl/flags:flag": ["absl_flags"],
    "absl/flags:parse": ["absl_flags_parse"],
    "absl/flags:usage": ["absl_flags_usage"],
    "absl/functional:any_invocable": ["absl_any_invocable"],
    "absl/functional:bind_front": ["absl_bind_front"],
    "absl/functional:function_ref": ["absl_function_ref"],
    "absl/hash:hash": ["absl_hash"],
    "absl/memory:memory": ["absl_memory"],
    "absl/meta:type_traits": ["absl_type_traits"],
    "absl/numeric:bits": ["absl_bits"],
    "absl/numeric:int128": ["absl_int128"],
    "absl/random:random": ["absl_random_random"],
    "absl/status:status": ["absl_status"],
    "absl/status:statusor": ["absl_statusor"],
    "absl/strings:cord": ["absl_cord"],
    "absl/strings:str_format": ["absl_str_format"],
    "absl/strings:strings": ["absl_strings"],
    "absl/synchronization:synchronization": ["absl_synchronization"],
    "absl/time:time": ["absl_time"],
    "absl/types:optional": ["absl_optional"],
    "absl/types:span": ["absl_span"],
    "absl/types:variant": ["absl_variant"],
    "absl/utility:utility": ["absl_utility"],
}

def _maybe(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def mill_io_dependencies():
    """Declares mill_io's external repositories (offline, from Debian)."""

    # Bazel 4's WORKSPACE suffix would download these; offline stand-ins.
    _maybe(
        vendored_repository,
        name = "rules_cc",
        marker = "@mill_io//third_party/rules_cc:WORKSPACE",
    )
    _maybe(
        vendored_repository,
        name = "rules_java",
        marker = "@mill_io//third_party/rules_java:WORKSPACE",
    )
    _maybe(
        vendored_repository,
        name = "remote_coverage_tools",
        marker = "@mill_io//third_party/remote_coverage_tools:WORKSPACE",
    )

    _maybe(
        system_repository,
        name = "com_google_absl",
        targets = _ABSL_TARGETS,
        required_headers = ["absl/base/config.h"],
    )
    _maybe(
        system_repository,
        name = "com_google_googletest",
        targets = {
            ":gtest": ["-lgmock", "-lgtest", "-pthread"],
            ":gtest_main": ["-lgmock_main", "-lgmock", "-lgtest", "-pthread"],
        },
        required_headers = ["gtest/gtest.h", "gmock/gmock.h"],
    )
    _maybe(
        system_repository,
        name = "com_github_google_benchmark",
        targets = {
            ":benchmark": ["-lbenchmark", "-pthread"],
            ":benchmark_main": ["-lbenchmark_main", "-lbenchmark", "-pthread"],
        },
        required_headers = ["benchmark/benchmark.h"],
    )
    _maybe(
        system_repository,
        name = "com_github_nlohmann_json",
        targets = {":json": []},
        required_headers = ["nlohmann/json.hpp"],
    )
    _maybe(
        system_repository,
        name = "com_github_nodejs_http_parser",
        targets = {":http_parser": ["-lhttp_parser"]},
        required_headers = ["http_parser.h"],
    )
    # OpenSSL 3 (libssl-dev), for //tls only: nothing else links it. The
    # labels are BoringSSL's / rules_openssl's usual ones.
    _maybe(
        system_repository,
        name = "openssl",
        targets = {
            ":ssl": ["libssl", "libcrypto"],
            ":crypto": ["libcrypto"],
        },
        required_headers = ["openssl/ssl.h"],
        # Debian ships no OpenSSL for mingw-w64: //tls and what uses it are
        # Linux-only for now.
        not_on_windows = True,
    )
    # liburing 2.3 (liburing-dev), for //poll's io_uring backend on Linux
    # (poll/internal/uring_*.cc) and the io_uring peers of bench/peers.
    _maybe(
        system_repository,
        name = "liburing",
        targets = {":liburing": ["liburing"]},
        required_headers = ["liburing.h"],
        not_on_windows = True,
    )
    _maybe(
        system_repository,
        name = "com_github_libuv_libuv",
        targets = {":libuv": ["libuv"]},
        required_headers = ["uv.h"],
    )
    _maybe(
        system_repository,
        name = "com_github_libevent_libevent",
        targets = {":libevent": ["libevent_core"]},
        required_headers = ["event2/event.h"],
    )
    _maybe(
        system_repository,
        name = "org_boost_asio",
        targets = {":asio": ["-pthread"]},
        required_headers = ["asio.hpp"],
    )
