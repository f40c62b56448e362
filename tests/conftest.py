"""Shared test configuration: the device list and the automatic skip of ``gpu`` tests.

The markers ``slow`` and ``gpu`` are declared in ``pyproject.toml``; nothing is registered here.

* ``DEVICES`` is ``["cpu"]`` plus a ``"cuda"`` entry (marked ``gpu``) when CUDA is available.
* The ``device`` fixture is parametrised over ``DEVICES``; ``devices`` returns the plain list.
* Tests marked ``gpu`` are skipped when CUDA is absent.
* Every test runs torch (and BLAS, when threadpoolctl is installed) on one CPU thread.
  The test problems are small, where thread start-up and, on a busy machine, thread
  contention cost far more than they save (a 1000 x 1000 ``eigvalsh`` went from 0.15 s
  to 10 s with two threads on two busy cores); one thread also makes floating-point
  reductions, and so iteration counts, independent of the machine.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: only a speed-up
    threadpool_limits = None

CUDA = torch.cuda.is_available()

DEVICES = [pytest.param("cpu", id="cpu")]
if CUDA:
    DEVICES.append(pytest.param("cuda", id="cuda", marks=pytest.mark.gpu))


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each available device in turn: ``"cpu"``, then ``"cuda"`` when present."""
    return request.param


@pytest.fixture(scope="session")
def devices() -> list[str]:
    """All available devices as strings, ``["cpu"]`` or ``["cpu", "cuda"]``."""
    return [p.values[0] for p in DEVICES]


def pytest_collection_modifyitems(config, items):
    if CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _one_cpu_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1) if threadpool_limits is not None else contextlib.nullcontext():
        yield
    torch.set_num_threads(threads)
