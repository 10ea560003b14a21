#!/bin/sh
# files peer: dd with 64 KiB blocks, the standard tool.
#
#   usage: sh bench/files/dd.sh IN OUT [BYTES]
#   prints: bytes=N read_s=R write_s=W chunk=65536 clock=date
#
# 1. read phase (timed): dd if=IN of=/dev/null bs=64k.
# 2. write phase (timed): dd if=IN of=OUT bs=64k: IN is in the page cache,
#    so this is a 64 KiB read(2) from memory and a write(2) per block, where
#    the other contenders write from a copy already in memory.
# No check sum (dd computes none): bench/run compares OUT with IN.
set -eu
in=$1 out=$2
now() { date +%s.%N; }
t0=$(now)
dd if="$in" of=/dev/null bs=65536 status=none
t1=$(now)
dd if="$in" of="$out" bs=65536 status=none
t2=$(now)
bytes=$(stat -c %s "$in")
awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  printf "bytes=%d read_s=%.6f write_s=%.6f chunk=65536 clock=date\n", b, t1 - t0, t2 - t1 }'
