"""The benchmarks' one timing loop."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[int], object], repeat: int, warmup: bool = True) -> float:
    """Median wall time in seconds of ``fn(k)`` for ``k = 0 .. repeat - 1`` (``k`` lets a
    call vary what it touches, e.g. a tile never rendered before), after one untimed call
    ``fn(0)`` when ``warmup``."""
    if warmup:
        fn(0)
    ts = []
    for k in range(repeat):
        t0 = time.perf_counter()
        fn(k)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
