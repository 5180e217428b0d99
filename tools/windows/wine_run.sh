#!/usr/bin/env bash
# Runs a Windows program under Wine, headless, and exits with its exit code:
#
#   tools/windows/wine_run.sh PROGRAM.exe [ARGS...]
#   tools/windows/wine_run.sh --init       # create the Wine prefix, nothing else
#   tools/windows/wine_run.sh --shutdown   # stop this prefix's wineserver
#
# It is the CMAKE_CROSSCOMPILING_EMULATOR of
# cmake/toolchains/mingw-w64-x86_64.cmake, so ctest runs the Windows tests
# through it (ctest -j2 is fine: concurrent runs share one wineserver).
#
# - Wine prefix: $MILLIO_WINEPREFIX, default
#   ${XDG_CACHE_HOME:-$HOME/.cache}/mill-io/wine-prefix, created once
#   (`wineboot --init`, ~10 s) under a flock so concurrent first runs wait for
#   one creation instead of racing. A prefix whose creation was interrupted has
#   no stamp file and is recreated.
# - Headless: DISPLAY and WAYLAND_DISPLAY are unset; WINEDEBUG=-all (override
#   with MILLIO_WINEDEBUG, e.g. MILLIO_WINEDEBUG=err+all); no Mono/Gecko
#   installer prompts (mscoree, mshtml disabled), no menu/desktop entries
#   written into $HOME (winemenubuilder disabled).
# - wineserver: started here with -p$MILLIO_WINE_PERSIST (default 10) seconds
#   of persistence, so consecutive tests do not pay its start-up (~0.6 s;
#   a warm run costs ~20 ms) and it exits by itself that long after the last
#   program. Wine's helper processes (services, winedevice, ...) are started by
#   the first program of a server and inherit its stdout/stderr: if that were a
#   test's pipe, the test (and ctest, CI) would wait for them until the server
#   exits. So a new server is first warmed up by a throw-away `cmd /c exit`
#   with /dev/null for stdio. `--shutdown` (wineserver -k) at the end of a CI
#   phase ends everything at once.
# - Exit status: the program's exit code modulo 256 (Wine's own rule; an
#   unhandled exception 0xC0000005 gives 5, abort() gives 3). Paths: Wine maps
#   drive Z: to /, and the working directory is on Z:, so absolute Unix paths
#   given to Win32 file functions (TEST_TMPDIR, ...) work as they are; but they
#   are not absolute to Windows path logic (no drive letter): GoogleTest would
#   put xml:/abs/r.xml under the working directory, so GTEST_OUTPUT and
#   --gtest_output values of that form are rewritten to xml:Z:/abs/r.xml.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/mill-io"
export WINEPREFIX="${MILLIO_WINEPREFIX:-$cache/wine-prefix}"
export WINEARCH=win64
export WINEDEBUG="${MILLIO_WINEDEBUG:--all}"
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d${WINEDLLOVERRIDES:+;$WINEDLLOVERRIDES}"
unset DISPLAY WAYLAND_DISPLAY
persist="${MILLIO_WINE_PERSIST:-10}"

# Debian's wine64 package installs the loader and server under /usr/lib/wine
# (/usr/bin/wine then warns about a missing wine32); elsewhere use PATH.
if [ -x /usr/lib/wine/wine64 ]; then
  wine=/usr/lib/wine/wine64
  wineserver=/usr/lib/wine/wineserver64
  [ -x "$wineserver" ] || wineserver=/usr/lib/wine/wineserver
else
  wine="$(command -v wine64 || command -v wine)" || {
    echo "wine_run.sh: no Wine (Debian: apt-get install wine wine64)" >&2
    exit 127
  }
  wineserver="$(command -v wineserver)"
fi
export WINELOADER="$wine" WINESERVER="$wineserver"

stamp="$WINEPREFIX/.mill-io-ready"
lock="$WINEPREFIX.lock"

# Runs a command with /dev/null for stdio and every other descriptor closed:
# the daemons it may start (wineserver, Wine's helper processes) must hold
# neither the lock (fd 9) nor any pipe of the caller (ctest's, a CI log's),
# which would keep the caller waiting until the server exits.
quiet() {
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then exec {fd}>&-; fi
    done 2>/dev/null
    exec "$@"
  ) </dev/null >/dev/null 2>&1
}

# Needs the lock held on fd 9.
init_prefix_locked() {
  [ -e "$stamp" ] && return 0
  echo "wine_run.sh: creating the Wine prefix $WINEPREFIX (once)" >&2
  quiet "$wineserver" -k || true
  rm -rf "$WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  local log="$WINEPREFIX.init.log"
  if ! "$wine" wineboot --init </dev/null >"$log" 2>&1 9>&-; then
    echo "wine_run.sh: wineboot --init failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  quiet "$wineserver" -w || true
  rm -f "$log"
  touch "$stamp"
}

mkdir -p "$(dirname "$WINEPREFIX")"
case "${1:-}" in
  --init)
    exec 9>"$lock"
    flock 9
    init_prefix_locked
    exit 0
    ;;
  --shutdown)
    if [ -d "$WINEPREFIX" ]; then quiet "$wineserver" -k || true; fi
    exit 0
    ;;
  "" | -h | --help)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac

# GoogleTest on Windows takes a path without a drive letter as relative to the
# working directory: xml:/tmp/r.xml run from /work would write
# /work/tmp/r.xml. Give absolute Unix paths of GTEST_OUTPUT and --gtest_output
# their drive, Z: (Wine maps it to /).
gtest_output_path() {
  case "$1" in
    xml:/* | json:/*) printf '%s:Z:%s' "${1%%:*}" "${1#*:}" ;;
    *) printf '%s' "$1" ;;
  esac
}
if [ -n "${GTEST_OUTPUT:-}" ]; then
  GTEST_OUTPUT="$(gtest_output_path "$GTEST_OUTPUT")"
  export GTEST_OUTPUT
fi
args=()
for arg in "$@"; do
  case "$arg" in
    --gtest_output=*) arg="--gtest_output=$(gtest_output_path "${arg#--gtest_output=}")" ;;
  esac
  args+=("$arg")
done

(
  exec 9>"$lock"
  flock 9
  init_prefix_locked
  # 0: no server was running, this one is new; 2: one is running already.
  if quiet "$wineserver" "-p$persist"; then
    quiet "$wine" cmd.exe /c exit 0 || true
  fi
)
exec "$wine" "${args[@]}"
