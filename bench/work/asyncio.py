"""work peer: N loop.run_in_executor calls of a small function on a
ThreadPoolExecutor (default workers), at most 64 in flight.

Run as: python3 bench/work/asyncio.py [N]
Prints: calls=N seconds=S cpu=C inflight=64 pool=P clock=perf_counter

64 caller tasks share one counter: each takes the next index, awaits
run_in_executor(pool, work, i) and adds the result, until N calls have been
made; the same shape as loom.lua. P is the executor's default max_workers,
min(32, cpu_count + 4). The function runs under the GIL, so the threads take
turns; that is what run_in_executor gives CPU-bound Python code.
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

INFLIGHT = 64


def work(i):
    """Sum of 1..1000, plus the index so every call's result differs."""
    s = 0
    for k in range(1, 1001):
        s += k
    return s + i


async def main(n):
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor() as pool:
        state = {"next": 1, "total": 0}

        async def caller():
            while state["next"] <= n:
                i = state["next"]
                state["next"] = i + 1
                # Await first: "total += await ..." would read total before
                # the suspension and lose the other callers' additions.
                r = await loop.run_in_executor(pool, work, i)
                state["total"] += r

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller() for _ in range(INFLIGHT)))
        t1, c1 = time.perf_counter(), time.process_time()
        workers = pool._max_workers

    total = state["total"]
    # The checksum keeps every result observable and catches a broken run.
    assert total == n * 500500 + n * (n + 1) // 2, "checksum mismatch"
    print(f"calls={n} seconds={t1 - t0:.6f} cpu={c1 - c0:.6f} inflight={INFLIGHT}"
          f" pool={workers} clock=perf_counter")


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_N", "10000")
    asyncio.run(main(int(raw)))
