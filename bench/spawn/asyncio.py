"""spawn peer: N asyncio tasks alive at once, then awaited in order.

Run as: python3 bench/spawn/asyncio.py [N]
Prints: tasks=N seconds=S cpu=C clock=perf_counter
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402
import time  # noqa: E402


async def work(i):
    return i


async def main(n):
    t0, c0 = time.perf_counter(), time.process_time()
    tasks = [asyncio.create_task(work(i)) for i in range(1, n + 1)]
    total = 0
    for task in tasks:
        total += await task
    t1, c1 = time.perf_counter(), time.process_time()

    # The checksum keeps every result observable and catches a broken run.
    assert total == n * (n + 1) // 2, "checksum mismatch"
    print(f"tasks={n} seconds={t1 - t0:.6f} cpu={c1 - c0:.6f} clock=perf_counter")


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_N", "1000000")
    asyncio.run(main(int(raw)))
