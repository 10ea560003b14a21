#!/usr/bin/env bash
# fuzz/run.sh TARGET SECONDS [libFuzzer options...]: runs the fuzz target
# TARGET (fuzz/TARGET.c) for SECONDS on a copy of its corpus
# (fuzz/corpus/TARGET), building build-fuzz first when it is not there
# (CC=clang, -Dfuzz=true).  Prints the executions and the features
# (cov, ft) of libFuzzer's last stats line; exits non-zero when the
# target crashed or hung, leaving the input that did it in
# build-fuzz/crashes/TARGET/, or leaked.  Leaks are checked once, at
# exit, after the harness has closed its host (the host keeps what it
# caches between inputs, which would set off libFuzzer's check after
# each input, slowly and for nothing).  New inputs found stay in the copy
# (build-fuzz/corpus/TARGET); fuzz/corpus keeps only the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer options...]" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
[ -f "fuzz/$target.c" ] || { echo "$0: no target fuzz/$target.c" >&2; exit 2; }

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz "fuzz/fuzz_$target" >/dev/null

corpus=build-fuzz/corpus/$target
crashes=build-fuzz/crashes/$target
mkdir -p "$corpus" "$crashes"
cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "build-fuzz/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=20 \
  -rss_limit_mb=2048 -detect_leaks=0 -print_final_stats=1 \
  -artifact_prefix="$crashes/" \
  "$@" "$corpus" >"$log" 2>&1 || status=$?

stats=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
if [ "$status" -ne 0 ]; then
  grep -E 'ERROR|runtime error|fuzz: |SUMMARY|Test unit written|leak of' \
    "$log" | head -20 || true
  echo "$target: FAILED (exit $status) after ${execs:-?} executions," \
    "cov ${cov:-?} ft ${ft:-?}"
  exit 1
fi
echo "$target: ${execs:-?} executions in ${seconds}s, cov ${cov:-?}" \
  "ft ${ft:-?}, corpus $(ls "$corpus" | wc -l) inputs"
