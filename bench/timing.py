"""One timing helper for the benchmark scripts: a function run twice to warm up, then timed n times."""
import statistics
import time


def timed(fn, n=5, pick=statistics.median):
    """`pick` (median by default; min for a machine's best rate) of n timings of fn(), in seconds,
    after two untimed calls (oneDNN builds its kernels and the allocator fills on the first ones)."""
    fn(), fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return pick(times)
