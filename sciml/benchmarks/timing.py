"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch


def synchronize(device) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1, device="cpu") -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs; returns (seconds, last result)."""
    for _ in range(warmup):
        fn()
    result, times = None, []
    for _ in range(max(repeats, 1)):
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
