"""Shared test configuration: the device list and the automatic skip of ``gpu`` tests.

The markers ``slow`` and ``gpu`` are declared in ``pyproject.toml``; nothing is registered here.

* ``DEVICES`` is ``["cpu"]`` plus a ``"cuda"`` entry (marked ``gpu``) when CUDA is available.
* The ``device`` fixture is parametrised over ``DEVICES``; ``devices`` returns the plain list.
* Tests marked ``gpu`` are skipped when CUDA is absent.
"""
from __future__ import annotations

import pytest
import torch

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
