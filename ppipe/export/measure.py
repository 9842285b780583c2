"""Latency and throughput of an exported model on the machine that exported it, for every target.

    from ppipe.export.measure import measure_speed
    m = measure_speed(lambda batch: predict(p, batch), (3, 224, 224))
    # {"latency_ms_b1": 7.9, "throughput_b32": 120.4, "cpu": "Intel(R) Xeon(R) ...", "load_avg_1m": 0.4, ...}

Each figure is the median of timed runs after warm-up runs (oneDNN builds its primitives on the first runs of
a shape, several times slower than the steady state). The CPU model and the load average are recorded with the
numbers because other processes on a shared machine skew them.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ppipe.host import cpu_model

__all__ = ["cpu_model", "load_average", "time_runs", "measure_speed"]


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def time_runs(run: Callable[[np.ndarray], Any], batch: np.ndarray, *, warmup: int, min_runs: int,
              min_seconds: float) -> list[float]:
    """Seconds per call of ``run(batch)``: `warmup` untimed calls, then at least `min_runs` timed calls and at
    least `min_seconds` of them."""
    for _ in range(warmup):
        run(batch)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - t0)
    return times


def measure_speed(run: Callable[[np.ndarray], Any], input_shape: tuple[int, int, int], *,
                  latency_batch: int = 1, throughput_batch: int = 32, warmup: int = 2, min_runs: int = 3,
                  min_seconds: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """``{"latency_ms_b1", "throughput_b32", "cpu", "cpu_count", "load_avg_1m", "runs"}`` for ``run(batch)``
    (a float32 [N, C, H, W] array in, anything out), on random inputs of `input_shape`."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in input_shape)
    small = rng.standard_normal((latency_batch, *shape)).astype(np.float32)
    large = rng.standard_normal((throughput_batch, *shape)).astype(np.float32)
    lat = time_runs(run, small, warmup=warmup, min_runs=min_runs, min_seconds=min_seconds)
    thr = time_runs(run, large, warmup=warmup, min_runs=min_runs, min_seconds=min_seconds)
    return {
        f"latency_ms_b{latency_batch}": round(statistics.median(lat) * 1e3, 3),
        f"throughput_b{throughput_batch}": round(throughput_batch / statistics.median(thr), 2),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": load_average(),
        "runs": {f"b{latency_batch}": len(lat), f"b{throughput_batch}": len(thr)},
    }
