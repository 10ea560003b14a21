"""sleepers peer: N concurrent asyncio.sleep(1) under one gather.

Run as: python3 bench/sleepers/asyncio.py [N]
Prints: sleepers=N seconds=S clock=perf_counter
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402
import time  # noqa: E402


async def main(n):
    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(1) for _ in range(n)))
    print(f"sleepers={n} seconds={time.perf_counter() - t0:.6f} clock=perf_counter")


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_N", "100000")
    asyncio.run(main(int(raw)))
