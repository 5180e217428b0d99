#!/usr/bin/env bash
# CI's cmake phase: the CMake build beside Bazel, as a user outside Bazel
# meets it (README "Using Mill-IO with CMake").
#
#   tools/ci/cmake_phase.sh RESULTS_FILE
#
#  1. configure (Release) and check it against Bazel
#     (tools/cmake/check_parity.py: generated files current, same sources,
#     same tests, layer rules);
#  2. build everything and run ctest; every gtest case is one result line
#     (tools/ci/ctest_cases.py), a failing test gets one rerun, named FLAKY;
#  3. install to a temporary prefix, check that no installed file names the
#     build machine's paths and that every installed header compiles on its
#     own, then MOVE the prefix (the package must be relocatable);
#  4. build and run two consumers outside the tree against the moved prefix
#     (tools/cmake/consumer): a CMake project with find_package and a
#     Makefile with pkg-config, each building a thread-pool-only program and
#     an event loop + //net program; the thread-pool-only program must link
#     libmillio_threadpool and libmillio_base and nothing else of Mill-IO;
#  5. the same with -DBUILD_SHARED_LIBS=ON (libraries only): SONAMEs, only
#     mill:: symbols exported, consumers run against the shared libraries.
# Each step appends "PASS name" or "FAIL name: why" to RESULTS_FILE; the link
# lines and timings are printed (docs/BENCHMARKS.md quotes them).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source_dir="$PWD"
results="${1:?usage: cmake_phase.sh RESULTS_FILE}"
: >"$results"
work="$(mktemp -d /tmp/millio-cmake.XXXXXX)"
trap 'rm -rf "$work"' EXIT
jobs=2
phase_start=$(date +%s)

# step NAME COMMAND...: runs the command with its output in a log; PASS or
# FAIL (with the log's tail) in the results.
step() {
  local name="$1"; shift
  local log="$work/$name.log"
  local start=$(date +%s)
  if "$@" >"$log" 2>&1; then
    echo "PASS $name" >>"$results"
    echo "--- $name: ok ($(( $(date +%s) - start )) s)"
  else
    echo "FAIL $name: see the CI log" >>"$results"
    echo "--- $name: FAILED ($(( $(date +%s) - start )) s); last lines:"
    tail -n 60 "$log"
    return 1
  fi
}

build="$work/build"
mkdir -p "$build/.cmake/api/v1/query"
touch "$build/.cmake/api/v1/query/codemodel-v2"
step cmake_configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  --graphviz="$build/graph/deps.dot" || exit 1
python3 tools/cmake/check_parity.py "$build" "$results" ||
  echo "FAIL cmake_parity: tools/cmake/check_parity.py exited with an error" \
    >>"$results"

step cmake_build cmake --build "$build" -j"$jobs" || exit 1

echo "--- ctest"
ctest_start=$(date +%s)
ctest --test-dir "$build" -j"$jobs" --output-on-failure \
  --output-junit "$build/ctest.xml" >"$work/ctest.log" 2>&1
ctest_status=$?
tail -n 5 "$work/ctest.log"
rerun=()
if [ "$ctest_status" -ne 0 ]; then
  grep -E "^\s+[0-9]+ - " "$work/ctest.log" || true
  # The first attempt's output of each failing test (a flake's only trace):
  # everything but the one-line results of tests that passed.
  echo "--- ctest: first attempt's output (passing tests left out)"
  grep -vE "^\s*[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed " "$work/ctest.log" |
    tail -n 600
  echo "--- ctest: rerunning the failed tests once"
  ctest --test-dir "$build" -j"$jobs" --output-on-failure --rerun-failed \
    --output-junit "$build/ctest-rerun.xml" 2>&1 | tail -n 200
  rerun=("$build/ctest-rerun.xml")
fi
python3 tools/ci/ctest_cases.py "$results" "$build/ctest.xml" "${rerun[@]}"
echo "--- ctest: $(( $(date +%s) - ctest_start )) s"

prefix="$work/prefix"
step cmake_install cmake --install "$build" --prefix "$prefix" || exit 1

# No installed file may name the source or build directory.
no_build_paths() {
  ! grep -rlF -e "$build" -e "$source_dir" "$prefix"
}
step cmake_install_relocatable no_build_paths

# Every installed header compiles on its own against the installed tree
# (and Abseil's, OpenSSL's), as a user's first #include would.
headers_compile() (
  cd "$prefix/include" || exit 1
  find . -name '*.h' | sed 's|^\./||' | sort >"$work/headers.txt"
  echo "$(wc -l <"$work/headers.txt") headers"
  xargs -P "$jobs" -I{} sh -c \
    'printf "#include \"%s\"\n" "$1" | c++ -std=c++17 -fsyntax-only \
       -I"$2/include" -x c++ - || { echo "does not compile alone: $1"; exit 255; }' \
    _ {} "$prefix" <"$work/headers.txt"
)
step cmake_installed_headers_compile_alone headers_compile

moved="$work/moved-prefix"
mv "$prefix" "$moved"

# consumers PREFIX TAG: the CMake and the Makefile consumer against PREFIX
# (TAG: static or shared).
consumers() {
  local prefix="$1" tag="$2" env=()
  [ "$tag" = shared ] && env=(env "LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name 'libmillio_base.so' | head -1)")")
  cp -r tools/cmake/consumer "$work/consumer-cmake-$tag"
  cp -r tools/cmake/consumer "$work/consumer-make-$tag"
  local dir="$work/consumer-cmake-$tag"
  step "cmake_consumer_${tag}_find_package_build" sh -c "
    cmake -S '$dir' -B '$dir/build' -DCMAKE_PREFIX_PATH='$prefix' &&
    cmake --build '$dir/build' -j$jobs -- VERBOSE=1"
  echo "    link line (find_package, threadpool_only):"
  grep -E '\-o threadpool_only ' "$work/cmake_consumer_${tag}_find_package_build.log" | sed 's/^/      /'
  step "cmake_consumer_${tag}_find_package_threadpool_runs" "${env[@]}" "$dir/build/threadpool_only"
  step "cmake_consumer_${tag}_find_package_echo_runs" "${env[@]}" "$dir/build/echo_roundtrip"
  step "cmake_consumer_${tag}_threadpool_links_only_threadpool" sh -c "
    line=\$(grep -E -- '-o threadpool_only ' '$work/cmake_consumer_${tag}_find_package_build.log')
    echo \"\$line\" | grep -q millio_threadpool &&
    echo \"\$line\" | grep -q millio_base &&
    ! echo \"\$line\" | grep -oE 'millio_[a-z]+' | grep -vE 'millio_(threadpool|base)$'"
  dir="$work/consumer-make-$tag"
  step "cmake_consumer_${tag}_pkg_config_build" env \
    PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name 'mill-io-base.pc')")" \
    make -C "$dir"
  echo "    pkg-config --cflags --libs mill-io-threadpool:"
  PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name 'mill-io-base.pc')")" \
    pkg-config --cflags --libs mill-io-threadpool | sed 's/^/      /'
  echo "    pkg-config --libs mill-io-net mill-io-reactor:"
  PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name 'mill-io-base.pc')")" \
    pkg-config --libs mill-io-net mill-io-reactor | sed 's/^/      /'
  step "cmake_consumer_${tag}_pkg_config_threadpool_runs" "${env[@]}" "$dir/threadpool_only"
  step "cmake_consumer_${tag}_pkg_config_echo_runs" "${env[@]}" "$dir/echo_roundtrip"
}
consumers "$moved" static

# Shared libraries: libraries only (the tests ran against the static ones).
shared="$work/shared"
step cmake_shared_configure cmake -S . -B "$shared" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DMILLIO_BUILD_TESTING=OFF -DMILLIO_BUILD_BENCHMARKS=OFF &&
step cmake_shared_build cmake --build "$shared" -j"$jobs" &&
step cmake_shared_install cmake --install "$shared" --prefix "$work/shared-prefix" &&
mv "$work/shared-prefix" "$work/shared-moved"
shared_abi() {
  local ok=0
  for lib in "$work"/shared-moved/lib*/libmillio_*.so; do
    [ -L "$lib" ] || continue
    soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
    others=$(nm -D --defined-only "$lib" | awk '{print $3}' | c++filt |
             grep -v 'mill::' | grep -v '^$' || true)
    echo "$(basename "$lib"): SONAME $soname, $(nm -D --defined-only "$lib" | wc -l) exported symbols"
    case "$soname" in libmillio_*.so.*) ;; *) echo "  bad SONAME"; ok=1 ;; esac
    if [ -n "$others" ]; then
      echo "  exports symbols outside mill::"; echo "$others" | head; ok=1
    fi
  done
  return $ok
}
if [ -d "$work/shared-moved" ]; then
  step cmake_shared_soname_and_exports shared_abi
  cat "$work/cmake_shared_soname_and_exports.log"
  consumers "$work/shared-moved" shared
fi

echo "--- cmake phase: $(( $(date +%s) - phase_start )) s"
! grep -q '^FAIL' "$results"
