#!/usr/bin/env bash
# Prepares everything the Windows build needs, from Debian's archive only:
#
#   prefix=$(tools/windows/deps.sh | tail -n1)
#   cmake -S . -B build-win -DMILLIO_WINDOWS_DEPS="$prefix" \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
#
# 1. The Debian packages of the cross toolchain and of Wine (installed when
#    missing, as tools/bootstrap.sh does).
# 2. Abseil and GoogleTest for Windows (and, for the examples, nlohmann-json
#    and http-parser): Debian has no mingw-w64 builds of them, so their Debian
#    SOURCE packages, of the very versions of the Linux -dev packages of
#    Debian 12, are fetched with `apt-get source` (a private apt configuration
#    under the cache; /etc/apt is not touched), checked against the sha256
#    sums pinned below, unpacked with Debian's patches applied (dpkg-source -x;
#    the patches matter: absl::string_view/optional/any/variant as Abseil's own
#    types, as in libabsl-dev), then built with the mingw-w64 toolchain file
#    (Release, static libraries, C++17, gmock included; http-parser with its
#    own Makefile, as Debian builds it) and installed into one prefix, printed
#    as the last line of stdout (progress goes to stderr).
# 3. The Wine prefix tools/windows/wine_run.sh runs the tests in.
# With --packages-only it stops after step 1.
#
# The prefix is ${XDG_CACHE_HOME:-$HOME/.cache}/mill-io/windows-deps-<key>,
# <key> a hash of this script and of the toolchain file (versions, flags and
# toolchain all live in them), so changing either builds a new prefix beside
# the old one. Set MILLIO_WINDOWS_DEPS=/some/dir to choose the directory
# yourself (rebuilt when its recorded key differs). Builds happen in a
# temporary directory next to the prefix and are renamed into place at the
# end: an interrupted build never leaves a half-filled prefix. Concurrent runs
# wait for each other (flock). When everything is in place the script only
# checks the stamp file and prints the prefix.
#
# Cold: 11 MB of sources, then 2.5 to 6 minutes of building with -j2
# depending on the machine's load (about 2 CPU-minutes; Abseil is most of it),
# and ~12 s for the Wine prefix. Warm: ~0.1 s. MILLIO_WINDOWS_JOBS overrides
# the -j2. Old prefixes (other keys) stay in the cache; delete them at will.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
toolchain="$root/cmake/toolchains/mingw-w64-x86_64.cmake"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/mill-io"
jobs="${MILLIO_WINDOWS_JOBS:-2}"

log() { echo "mill-io windows deps: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The pinned source packages: name, Debian version, then each file's sha256.
# Same versions as Debian 12's libabsl-dev, libgtest-dev/libgmock-dev,
# nlohmann-json3-dev and libhttp-parser-dev.
ABSL_VERSION=20220623.1-1+deb12u2
GTEST_VERSION=1.12.1-0.2
JSON_VERSION=3.11.2-2
HTTP_PARSER_VERSION=2.9.4-5
PINNED_FILES=(
  "abseil_20220623.1-1+deb12u2.dsc ba731eaced569332fa4ce802a7ff2615ae57ac25beaf2d02f634ef908f2e62c2"
  "abseil_20220623.1.orig.tar.gz abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe"
  "abseil_20220623.1-1+deb12u2.debian.tar.xz e08490fc7b6f3beca1925953b0c4fb92df2de5e2a01295e4641e2a3d4e528eeb"
  "googletest_1.12.1-0.2.dsc cc90251040c145be18d5090787d9ec79e48217c6cef3ae78eb20f0e31551404c"
  "googletest_1.12.1.orig.tar.gz 81964fe578e9bd7c94dfdb09c8e4d6e6759e19967e397dbea48d1c10e45d0df2"
  "googletest_1.12.1-0.2.debian.tar.xz 03dca2d4c5d2add5afcca67a09c5664b04998ef2063b6bec0cb84563e6eef422"
  "nlohmann-json3_3.11.2-2.dsc 70bec2cd47a992e0fcf5b92d820d264b871c15278cce68edcc05dbb579d795a0"
  "nlohmann-json3_3.11.2.orig.tar.gz d69f9deb6a75e2580465c6c4c5111b89c4dc2fa94e3a85fcd2ffcd9a143d9273"
  "nlohmann-json3_3.11.2-2.debian.tar.xz 8c038cbbb09e719d856320006a6d16425c732a73574d03fe089e477c73022ab3"
  "http-parser_2.9.4-5.dsc 3ef34ef3eb1889482a790b5f1db2ed1aa5736da3bd3a04954fe5dfce4c0035f8"
  "http-parser_2.9.4.orig.tar.gz 467b9e30fd0979ee301065e70f637d525c28193449e1b13fbcb1b1fab3ad224f"
  "http-parser_2.9.4-5.debian.tar.xz 2e7306f26c7edcd5c236a32e574c3e4bbb77638917e1b7762ee072194a688682"
)

# ---------------------------------------------------------------- packages
PACKAGES=(
  g++-mingw-w64-x86-64-posix  # the cross compiler, posix thread model
  wine wine64                 # runs the tests
  dpkg-dev                    # dpkg-source, to unpack the source packages
  cmake make
)
installed=" $(dpkg-query -W -f='${db:Status-Status}:${Package} ' "${PACKAGES[@]}" 2>/dev/null || true) "
missing=()
for pkg in "${PACKAGES[@]}"; do
  [[ "$installed" == *" installed:$pkg "* ]] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing missing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    die "not root and no password-less sudo; ask an administrator to run:
  apt-get update && apt-get install -y ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
  if ! apt_install; then
    "${SUDO[@]}" apt-get update -q >&2
    apt_install
  fi
fi

# `deps.sh --packages-only`: the cross toolchain's headers are all lint needs
# (tools/ci/lint.sh runs clang-tidy over the *_win.cc files).
[ "${1:-}" = "--packages-only" ] && exit 0

# ---------------------------------------------------------------- the prefix
sha() { sha256sum "$1" | cut -d' ' -f1; }
key="$(printf '%s  deps.sh\n%s  toolchain\n' "$(sha "$here/deps.sh")" "$(sha "$toolchain")" \
  | sha256sum | cut -c1-12)"
prefix="${MILLIO_WINDOWS_DEPS:-$cache/windows-deps-$key}"
prefix="$(realpath -m "$prefix")"
stamp="$prefix/.mill-io-windows-deps"

mkdir -p "$cache" "$(dirname "$prefix")"
exec 8>"$prefix.lock"
flock 8

if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ]; then
  start=$SECONDS
  # Replace only what this script made (a stale key): never a directory the
  # user named by mistake.
  if [ -e "$prefix" ] && [ ! -e "$stamp" ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ]; then
    die "$prefix exists and is not a prefix made by this script; choose another MILLIO_WINDOWS_DEPS"
  fi
  # Build directories of runs killed with SIGKILL, a day old.
  find "$(dirname "$prefix")" -maxdepth 1 -name '.windows-deps-build.*' -mmin +1440 \
    -exec rm -rf {} + 2>/dev/null || true
  # --------------------------------------------------------------- sources
  src="$cache/windows-src"
  mkdir -p "$src"
  verify() {  # verify FILE SHA: 0 when FILE exists with that sum
    [ -f "$src/$1" ] && [ "$(sha "$src/$1")" = "$2" ]
  }
  need_download=0
  for entry in "${PINNED_FILES[@]}"; do
    read -r name sum <<<"$entry"
    verify "$name" "$sum" || need_download=1
  done
  if [ "$need_download" -eq 1 ]; then
    sources=("abseil=$ABSL_VERSION" "googletest=$GTEST_VERSION"
      "nlohmann-json3=$JSON_VERSION" "http-parser=$HTTP_PARSER_VERSION")
    log "downloading the source packages ${sources[*]}"
    apt="$cache/apt"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
    cat >"$apt/sources.list" <<'EOF'
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
    APT_OPTS=(
      -o "Dir::Etc::SourceList=$apt/sources.list"
      -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt/lists"
      -o "Dir::Cache=$apt/cache"
      -o "APT::Sandbox::User=$(id -un)"
      -q
    )
    apt-get "${APT_OPTS[@]}" update >&2 \
      || die "apt-get update of the private source lists ($apt) failed"
    (cd "$src" && apt-get "${APT_OPTS[@]}" source --download-only "${sources[@]}" >&2) \
      || die "apt-get source failed: are ${sources[*]} still in Debian 12's
archive? (A point release can supersede a version; then update the versions
and sums in $here/deps.sh, as the Linux -dev packages move with it.)"
    for entry in "${PINNED_FILES[@]}"; do
      read -r name sum <<<"$entry"
      [ -f "$src/$name" ] || die "apt-get source did not produce $name"
      got="$(sha "$src/$name")"
      [ "$got" = "$sum" ] || die "checksum mismatch for $src/$name:
  expected $sum
  got      $got
(the file is left in place for inspection; delete it to download again)"
    done
    rm -rf "$apt"  # the private package lists (~20 MB); stale soon anyway
  fi

  # --------------------------------------------------------------- build
  work="$(mktemp -d "$(dirname "$prefix")/.windows-deps-build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  trap 'exit 130' INT TERM HUP
  stage="$work/stage"
  # Kept on failure, next to the prefix; removed on success.
  build_log="$prefix.build.log"
  : >"$build_log"
  fail() {
    tail -n 60 "$build_log" >&2
    die "$1 (full log: $build_log)"
  }
  log "building in $work (-j$jobs; log: $build_log)"
  for dsc in "abseil_$ABSL_VERSION" "googletest_$GTEST_VERSION" \
    "nlohmann-json3_$JSON_VERSION" "http-parser_$HTTP_PARSER_VERSION"; do
    dpkg-source -x "$src/$dsc.dsc" "$work/${dsc%%_*}" >>"$build_log" 2>&1 \
      || fail "dpkg-source -x $dsc.dsc failed"
  done

  COMMON=(
    -G "Unix Makefiles"
    -DCMAKE_TOOLCHAIN_FILE="$toolchain"
    -DMILLIO_WINDOWS_DEPS="$stage$prefix"
    -DMILLIO_WINDOWS_DEPS_BUILDING=ON
    -DCMAKE_INSTALL_PREFIX="$prefix"
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CXX_STANDARD=17
    -DCMAKE_CXX_STANDARD_REQUIRED=ON
    -DBUILD_SHARED_LIBS=OFF
    -DBUILD_TESTING=OFF
  )
  build() {  # build NAME [CMAKE ARGS...]
    local name="$1"
    shift
    log "building $name"
    {
      cmake -S "$work/$name" -B "$work/build-$name" "${COMMON[@]}" "$@" \
        && cmake --build "$work/build-$name" -j"$jobs" \
        && DESTDIR="$stage" cmake --install "$work/build-$name"
    } >>"$build_log" 2>&1 || fail "building $name failed"
  }
  build abseil \
    -DABSL_PROPAGATE_CXX_STD=ON -DABSL_ENABLE_INSTALL=ON -DABSL_BUILD_TESTING=OFF
  # gtest_disable_pthreads: GoogleTest's Win32 threading, as with MSVC, rather
  # than winpthreads (the choice is exported to users as GTEST_HAS_PTHREAD).
  build googletest -DBUILD_GMOCK=ON -DINSTALL_GTEST=ON -Dgtest_disable_pthreads=ON
  # Header-only; installs nlohmann_jsonConfig.cmake under share/cmake.
  build nlohmann-json3 -DJSON_BuildTests=OFF -DJSON_Install=ON
  # Debian builds libhttp_parser.a with `make package` (HTTP_PARSER_STRICT=0,
  # -O3); the same here, with the cross compiler.
  log "building http-parser"
  {
    make -C "$work/http-parser" package \
      CC=x86_64-w64-mingw32-gcc-posix AR=x86_64-w64-mingw32-ar \
      CPPFLAGS="-D_WIN32_WINNT=0x0A00 -DWIN32_LEAN_AND_MEAN -DNOMINMAX" \
      && install -D -m 644 "$work/http-parser/http_parser.h" "$stage$prefix/include/http_parser.h" \
      && install -D -m 644 "$work/http-parser/libhttp_parser.a" "$stage$prefix/lib/libhttp_parser.a"
  } >>"$build_log" 2>&1 || fail "building http-parser failed"

  printf '%s\n' "$key" >"$stage$prefix/.mill-io-windows-deps"
  # Into place: a stale prefix (other key, MILLIO_WINDOWS_DEPS set) moves aside
  # first, then the new one is renamed in.
  if [ -e "$prefix" ]; then
    mv -T "$prefix" "$work/old"
  fi
  mv -T "$stage$prefix" "$prefix"
  rm -rf "$work" "$build_log"
  trap - EXIT INT TERM HUP
  log "built in $((SECONDS - start)) s: $prefix"
fi

# ---------------------------------------------------------------- Wine prefix
"$here/wine_run.sh" --init 8>&-

echo "$prefix"
