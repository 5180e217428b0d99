#!/usr/bin/env bash
# Installs what Mill-IO needs to build, test and benchmark, from Debian's
# package archive, when something is missing. Idempotent; when everything is
# installed it costs one dpkg-query call. Nothing is downloaded from anywhere
# but the system's configured apt sources.
set -euo pipefail

PACKAGES=(
  # Toolchain and build.
  bazel-bootstrap g++ pkg-config python3
  # The CMake build beside Bazel (README "Using Mill-IO with CMake").
  cmake make
  # Sanitizer runtimes for --config=asan / --config=tsan.
  libasan8 libubsan1 libtsan2
  # --config=fuzz: clang 14 with libFuzzer and its sanitizer runtimes
  # (libclang_rt.fuzzer is in libclang-rt-14-dev), llvm-symbolizer for
  # readable crash stacks.
  clang-14 libclang-rt-14-dev llvm-14
  # Lint (tools/ci/lint.sh, run by .ci/run).
  clang-format clang-tidy
  # Libraries, exposed to Bazel by bazel/repositories.bzl.
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libhttp-parser-dev
  # //poll's io_uring backend (Linux; EventLoopOptions::io).
  liburing-dev
  # //tls (OpenSSL 3), and the TLS peers of its tests (openssl s_client /
  # s_server, curl, Python's ssl module).
  libssl-dev openssl
  # Peer event loops for the comparison benchmarks in bench/.
  libuv1-dev libevent-dev libasio-dev
  # bench/redis_bench.py: the Redis server and the hiredis client it compares
  # Mill-IO with (//bench:redis_load).
  redis-server libhiredis-dev
  # Load generators used by tests and benchmarks.
  wrk curl
  # The reference server and reverse proxy of the comparisons in bench/
  # (bench/proxy_bench.py, bench/abuse.py); the benchmarks start their own
  # instance with their own configuration.
  nginx-light
  # Charts in docs/BENCHMARKS.md (bench/run_all.py).
  python3-matplotlib
)

# One dpkg-query for all packages; it prints nothing for unknown ones.
installed=" $(dpkg-query -W -f='${db:Status-Status}:${Package} ' "${PACKAGES[@]}" 2>/dev/null || true) "
missing=()
for pkg in "${PACKAGES[@]}"; do
  [[ "$installed" == *" installed:$pkg "* ]] || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "mill-io: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  cat >&2 <<MSG
mill-io: cannot install packages: not root and no password-less sudo.
Ask an administrator to run:
  apt-get update && apt-get install -y ${missing[*]}
MSG
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; }
# Try with the current package lists first; refresh them only if that fails.
if ! apt_install; then
  "${SUDO[@]}" apt-get update -q
  apt_install
fi
