"""The registry of solvers and benchmarks behind the ``sciml`` command.

Solvers live outside the core (the ``solvers`` package, or any third-party
package) and are found through the entry-point group ``sciml.solvers``: each entry
point names a module that calls :func:`register` when imported. The core never
imports ``solvers`` by name, so a plug-in registers exactly like a built-in::

    [project.entry-points."sciml.solvers"]
    mysolver = "mypackage.mysolver"

Benchmarks of the core itself (``sciml bench linalg``) register directly.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sciml.solvers"


@dataclass
class DemoRow:
    """One line of the ``sciml demo`` summary table.

    Attributes
    ----------
    solver, problem : str
    metric : str
        Name of the quality metric, e.g. ``"true rel. residual"`` or ``"PSNR [dB]"``.
    value : float
        The solver's value of the metric.
    baseline : str
        What it is compared with, e.g. ``"scipy cg"``.
    baseline_value : float
    seconds : float
        Wall time of the solver's own work.
    files : list of Path
        Files written (ParaView, PNG).
    """

    solver: str
    problem: str
    metric: str
    value: float
    baseline: str
    baseline_value: float
    seconds: float
    files: list[Path] = field(default_factory=list)


@dataclass
class SolverEntry:
    """What a solver contributes to the ``sciml`` command.

    Attributes
    ----------
    name : str
        Registry key, used on the command line (``sciml demo NAME``).
    summary : str
        One line for ``sciml list``.
    demo : callable ``(out_dir: Path, device: str) -> list[DemoRow]``, optional
        Runs the small embedded default problem and writes its files to ``out_dir``.
    bench : callable ``(argv: list[str]) -> dict``, optional
        Runs the benchmark, parsing its own options; returns a JSON-serialisable dict.
    train : callable ``(argv: list[str]) -> int``, optional
        Reproduces the shipped weights; returns an exit status.
    api : str
        Import path of the main Python entry point, e.g. ``"solvers.dcdm:DCDMSolver"``.
    """

    name: str
    summary: str
    demo: Callable | None = None
    bench: Callable | None = None
    train: Callable | None = None
    api: str = ""


_REGISTRY: dict[str, SolverEntry] = {}
_loaded = False


def lazy(target: str) -> Callable:
    """A function that imports ``"package.module:function"`` when first called, then calls it.

    Solvers register their ``demo``/``bench``/``train`` with it, so ``sciml list`` does not
    import their heavy modules: ``SolverEntry(..., bench=lazy("solvers.dcdm.bench:run"))``.
    """
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"lazy() needs 'package.module:function', got {target!r}")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    call.__name__, call.__qualname__ = name, target
    return call


def register(entry: SolverEntry) -> SolverEntry:
    """Add (or replace) a registry entry; returns it so modules can keep a handle."""
    if not entry.name or not entry.name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"registry names must be non-empty identifiers, got {entry.name!r}")
    _REGISTRY[entry.name] = entry
    return entry


def load_plugins() -> None:
    """Import every module named in the ``sciml.solvers`` entry-point group (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module("sciml.benchmarks")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plug-in must not take the others down
            logger.warning("could not load solver plug-in %r (%s): %s", ep.name, ep.value, exc)


def entries() -> dict[str, SolverEntry]:
    """All registered entries, by name, after loading the plug-ins."""
    load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> SolverEntry:
    """The entry called ``name``; a ``KeyError`` lists the known names."""
    known = entries()
    if name not in known:
        raise KeyError(f"no solver or benchmark named {name!r}; known: {', '.join(known) or 'none'} "
                       "(run 'sciml list')")
    return known[name]
