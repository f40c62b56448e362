"""Linear-algebra tests run torch (and, when threadpoolctl is installed, BLAS) on one CPU thread.

The test problems are small (at most 24^3 unknowns, 1000 x 1000 dense matrices), where
thread start-up and, on a busy machine, thread contention cost far more than they save
(a 1000 x 1000 ``eigvalsh`` went from 0.15 s to 10 s with two OpenBLAS threads on two busy
cores). One thread also makes the floating-point reductions, and so the iteration
counts, independent of the machine.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: only a speed-up
    threadpool_limits = None


@pytest.fixture(autouse=True, scope="package")
def _one_cpu_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1) if threadpool_limits is not None else contextlib.nullcontext():
        yield
    torch.set_num_threads(threads)
