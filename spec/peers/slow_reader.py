#!/usr/bin/env python3
"""spec/peers/slow_reader.py: the reader at the other end of a pipe
that keeps its writer waiting, for the specs of loom's standard
streams and log.

    slow_reader.py OUT [--after PATH] [--chunk N] [--pause S]

It reads its stdin to the end and writes what it read to OUT.  Before
it reads anything it waits until the file PATH exists (the writer says
it has filled the pipe; with no PATH it starts at once); then it reads
N bytes at a time (default 4096), pausing S seconds (default 0) after
each, so that the writer finds the pipe full again and again.  It never
runs longer than 60 s.
"""
import argparse
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--after")
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--pause", type=float, default=0.0)
    a = ap.parse_args()
    deadline = time.monotonic() + 60
    if a.after:
        while not os.path.exists(a.after) and time.monotonic() < deadline:
            time.sleep(0.01)
    src = sys.stdin.buffer
    with open(a.out, "wb") as out:
        while time.monotonic() < deadline:
            data = os.read(src.fileno(), a.chunk)
            if not data:
                break
            out.write(data)
            if a.pause:
                time.sleep(a.pause)


if __name__ == "__main__":
    main()
