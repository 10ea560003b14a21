#!/usr/bin/env bash
# quickstart.sh: the two commands of README.md's quick start.
#
#   ./quickstart.sh demo   install what is missing, build, run the demo
#   ./quickstart.sh test   install what is missing, build, run every test
#                          (the Debian packages built and linted among them)
#   ./quickstart.sh deb    install what is missing, build the Debian
#                          packages into build-deb/, check them with lintian
#   ./quickstart.sh bench [name]
#                          the same, with the peers the benchmarks compare
#                          with (Python, Node, luv, wrk, nginx with ngx_lua,
#                          aiohttp), then bench/run name
#   ./quickstart.sh soak [echo|http|client|all]
#                          the same, then bench/soak/run: ten minutes a
#                          scenario under load and faults (RSS, fds, tasks)
#
# Run as root on Debian 12 (or with the packages below already there).
# The test run checks the Lua sources with luacheck, then builds twice,
# a compiler warning failing the build: once plainly, once with
# AddressSanitizer and UndefinedBehaviorSanitizer.  It runs the busted
# specs against both,
# the C tests (meson test) under valgrind and under the sanitizers, runs
# each fuzz target (fuzz/) for 25 seconds, and ends with the line
# "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(gcc libc6-dev pkg-config meson ninja-build lua5.4 liblua5.4-dev
          libuv1-dev lua-busted lua-cjson valgrind libssl-dev
          libcurl4-openssl-dev node-llhttp openssl curl python3 nginx-light
          python3-aiohttp libedit-dev tmux groff-base binutils
          luarocks lua-check libwslay-dev python3-websockets
          chromium procps clang libfuzzer-14-dev)

# what bench/run compares loom with, beyond what the build needs
BENCH_PACKAGES=(python3 nodejs lua-luv wrk nginx-light libnginx-mod-http-lua
                python3-aiohttp gnuplot-nox)

# what building the Debian packages needs, beyond what the build needs
DEB_PACKAGES=(debhelper dpkg-dev lintian)

# install_missing [more packages...]
install_missing() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# build DIR [meson options...]: the options apply to a DIR set up before too
build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
  elif [ $# -gt 0 ]; then
    meson configure "$dir" "$@" >/dev/null
  fi
  meson compile -C "$dir" >/dev/null
}

# specs DIR LABEL [VAR=VALUE...]: runs busted against the build in DIR
# with the environment given, prints what failed and counts results
PASSED=0
FAILED=0
SKIPPED=0
specs() {
  local dir=$1 label=$2 out ok notok skip
  shift 2
  out=$(mktemp)
  env "$@" LOOM_BUILD="$dir" busted --lua=lua5.4 -o TAP spec >"$out" 2>&1 \
    || true
  grep -v '^ok ' "$out" || true
  ok=$(grep '^ok ' "$out" | grep -vc '# SKIP' || true)
  skip=$(grep '^ok ' "$out" | grep -c '# SKIP' || true)
  notok=$(grep -c '^not ok ' "$out" || true)
  if ! grep -q '^1\.\.[0-9]' "$out"; then
    echo "$label: the spec run did not finish"
    notok=$((notok + 1))
  fi
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$out"; then
    echo "$label: the sanitizers reported errors (above)"
    notok=$((notok + 1))
  fi
  echo "$label: $ok passed, $notok failed, $skip skipped"
  PASSED=$((PASSED + ok))
  FAILED=$((FAILED + notok))
  SKIPPED=$((SKIPPED + skip))
  rm -f "$out"
}

# ctests DIR LABEL [meson test options...]: the C tests (meson test)
ctests() {
  local dir=$1 label=$2 out ok fail
  shift 2
  out=$(mktemp)
  meson test -C "$dir" --print-errorlogs "$@" >"$out" 2>&1 || true
  grep -E 'FAIL|TIMEOUT|ERROR' "$out" || true
  ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$out")
  fail=$(sed -n 's/^\(Fail\|Timeout\|Unexpected Pass\): *\([0-9]*\).*/\2/p' "$out" \
    | awk '{ s += $1 } END { print s + 0 }')
  if [ -z "$ok" ]; then
    tail -20 "$out"
    echo "$label: meson test did not finish"
    ok=0
    fail=$((fail + 1))
  fi
  echo "$label: $ok passed, $fail failed"
  PASSED=$((PASSED + ok))
  FAILED=$((FAILED + fail))
  rm -f "$out"
}

# lint: luacheck (.luacheckrc) over the Lua sources; each file is a
# test, passed when luacheck has no warning for it.  Debian's lua-check
# runs under lua5.1 and may repoint /usr/bin/lua, which loom never uses.
lint() {
  local out ok bad
  out=$(mktemp)
  luacheck --no-color --codes lua spec examples bench fuzz >"$out" 2>&1 \
    || true
  grep -Ev '^Checking .* OK$|^$|^Total: 0 warnings / 0 errors' "$out" || true
  ok=$(grep -c '^Checking .* OK$' "$out" || true)
  bad=$(grep '^Checking ' "$out" | grep -vc ' OK$' || true)
  if ! grep -q '^Total: ' "$out"; then
    echo "luacheck: the run did not finish"
    bad=$((bad + 1))
  fi
  echo "luacheck: $ok passed, $bad failed"
  PASSED=$((PASSED + ok))
  FAILED=$((FAILED + bad))
  rm -f "$out"
}

# fuzzers SECONDS: each libFuzzer target of fuzz/ (fuzz/README.md) run
# for SECONDS on its corpus by fuzz/run.sh (which builds build-fuzz with
# clang), one test each: failed when it crashed, hung, leaked or one of
# its checks failed; prints its executions and coverage either way
fuzzers() {
  local seconds=$1 src name out
  for src in fuzz/*.c; do
    name=$(basename "$src" .c)
    [ "$name" = harness ] && continue
    out=$(mktemp)
    if fuzz/run.sh "$name" "$seconds" >"$out" 2>&1; then
      echo "fuzz $(tail -1 "$out"): 1 passed, 0 failed"
      PASSED=$((PASSED + 1))
    else
      tail -25 "$out"
      echo "fuzz $name: 0 passed, 1 failed"
      FAILED=$((FAILED + 1))
    fi
    rm -f "$out"
  done
}

# debs: the Debian packages (this script's deb case) built from the
# checkout and checked by lintian, one test
debs() {
  local out
  out=$(mktemp)
  if "./$(basename "$0")" deb >"$out" 2>&1; then
    echo "Debian packages: 1 passed, 0 failed"
    PASSED=$((PASSED + 1))
  else
    tail -40 "$out"
    echo "Debian packages: 0 passed, 1 failed"
    FAILED=$((FAILED + 1))
  fi
  rm -f "$out"
}

case "${1:-}" in
  demo)
    install_missing
    build build
    exec ./build/loom examples/demo.lua
    ;;
  deb)
    # built from a copy of the checkout, which dpkg-buildpackage leaves as
    # it found it; the packages land in build-deb/
    install_missing "${DEB_PACKAGES[@]}"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir "$work/loom"
    { git ls-files --cached --others --exclude-standard 2>/dev/null \
        || find . -path './build*' -prune -o -type f -print; } \
      | tar -cf - -T - | tar -xf - -C "$work/loom"
    (cd "$work/loom" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) \
      || { tail -40 "$work/build.log"; exit 1; }
    rm -rf build-deb
    mkdir build-deb
    cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo build-deb/
    lintian --fail-on error build-deb/*.changes
    ls build-deb/*.deb
    ;;
  bench)
    install_missing "${BENCH_PACKAGES[@]}"
    build build
    exec bench/run "${2:-all}"
    ;;
  soak)
    install_missing "${BENCH_PACKAGES[@]}"
    build build
    exec bench/soak/run "${2:-all}"
    ;;
  test)
    install_missing
    lint
    # the test builds fail on a compiler warning in loom's own code
    # (llhttp's sources are compiled with their warnings off)
    build build -Dwerror=true
    specs build "specs"
    ctests build "C tests under valgrind" --wrapper \
      "valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
      -Dbuildtype=debug -Dwerror=true
    specs build-asan "specs under ASan+UBSan" \
      ASAN_OPTIONS=detect_leaks=1 LOOM_CLOSE_AT_EXIT=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
      ctests build-asan "C tests under ASan+UBSan"
    fuzzers 25
    debs
    echo "$SKIPPED skipped"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    ;;
  *)
    echo "usage: $0 demo|test|deb|bench [name]|soak [name]" >&2
    exit 2
    ;;
esac
