"""The import direction of the three packages: solvers -> geometry -> sciml, never back."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"sciml": {"solvers", "geometry"}, "geometry": {"solvers"}}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_reverse_imports_in_source(package):
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_top_levels(p) & FORBIDDEN[package])
                 for p in (ROOT / package).rglob("*.py")}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{package}/ must not import {FORBIDDEN[package]}: {offenders}"


def test_importing_the_core_loads_no_solver_or_heavy_optional_library():
    code = ("import sys, importlib, pkgutil, sciml\n"
            "for m in pkgutil.walk_packages(sciml.__path__, 'sciml.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
            "{'solvers', 'geometry', 'pyvista', 'vtk', 'gpytorch', 'trimesh', 'numba', 'skimage', 'pyamg'})\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing sciml.* pulled in: {out.stdout.strip()}"


def test_solvers_are_declared_as_entry_points():
    from importlib.metadata import entry_points
    names = {ep.name for ep in entry_points(group="sciml.solvers")}
    assert "poisson" in names
