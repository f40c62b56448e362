"""The registry and the ``sciml`` command: list, demo, bench, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sciml import registry
from sciml.cli import main
from sciml.io import read_vtk


def test_registry_finds_builtin_solver_and_benchmark():
    known = registry.entries()
    assert known["poisson"].demo is not None
    assert known["linalg"].bench is not None


def test_registry_rejects_bad_names_and_lists_known_ones():
    with pytest.raises(ValueError, match="identifiers"):
        registry.register(registry.SolverEntry(name="bad name!", summary=""))
    with pytest.raises(KeyError, match="poisson"):
        registry.get("no-such-solver")


def test_list_prints_every_entry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "poisson" in out and "linalg" in out


def test_demo_writes_paraview_volume_plots_and_summary(tmp_path, capsys):
    assert main(["demo", "poisson", "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "poisson" in out and "scipy cg" in out
    volume = read_vtk(tmp_path / "poisson" / "poisson.vti")
    pressure, solid = volume["cell_data"]["pressure"], volume["cell_data"]["solid"]
    assert pressure.shape == (32, 32, 32) and np.isfinite(pressure).all()
    assert (pressure[solid.astype(bool)] == 0).all() and np.abs(pressure).max() > 0
    assert (tmp_path / "poisson" / "convergence.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    row = summary[0]
    assert row["solver"] == "poisson" and abs(row["value"] - row["baseline_value"]) <= 2


def test_a_failing_demo_does_not_hide_the_others(tmp_path, capsys, monkeypatch):
    def broken(out, device):
        raise RuntimeError("no weights")
    monkeypatch.setitem(registry._REGISTRY, "broken", registry.SolverEntry(name="broken", summary="", demo=broken))
    assert main(["demo", "broken", "poisson", "--out", str(tmp_path), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "scipy cg" in captured.out and "demos that failed: broken" in captured.err
    assert json.loads((tmp_path / "summary.json").read_text())[0]["solver"] == "poisson"


def test_bench_linalg_small_run_writes_json(tmp_path, capsys):
    path = tmp_path / "linalg.json"
    assert main(["bench", "linalg", "--json", str(path), "--sizes", "12", "--repeats", "1"]) == 0
    data = json.loads(path.read_text())
    rows = {r["method"]: r for r in data["rows"] if r["device"] == "cpu"}
    assert {"sciml cg (CSR)", "sciml cg (stencil)", "scipy cg"} <= set(rows)
    for row in rows.values():
        assert row["true_residual"] <= 1e-6 * 1.001
    assert abs(rows["sciml cg (CSR)"]["iterations"] - rows["scipy cg"]["iterations"]) <= 2
    assert rows["scipy cg"]["ms_per_iteration_vs_scipy"] == 1.0
    assert "ms/iter" in capsys.readouterr().out


def test_unknown_names_give_clear_errors():
    with pytest.raises(SystemExit, match="sciml list"):
        main(["bench", "nope"])
    with pytest.raises(SystemExit, match="no benchmark"):
        main(["bench", "poisson"])
    with pytest.raises(SystemExit, match="nothing to train"):
        main(["train", "poisson"])


def test_bench_and_train_help_show_the_solvers_own_options(capsys):
    """``sciml train NAME --help`` reaches NAME's parser instead of the generic subcommand help."""
    for command, option in ((["train", "lpn", "--help"], "--stages"), (["bench", "linalg", "-h"], "--sizes")):
        with pytest.raises(SystemExit) as stop:
            main(command)
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert f"sciml {command[0]} {command[1]}" in out and option in out, out
