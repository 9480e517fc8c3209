"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

import time

import numpy as np


def median_seconds(fn, repeats: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after one warm-up call
    (which also fills first-use caches)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
