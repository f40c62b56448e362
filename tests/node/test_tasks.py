"""Tasks, demo and a small version of the benchmark (slow ones marked)."""
import pytest

from solvers.node.tasks import DigitsClassifier, Variant, digits_data, dynamics_data


def test_data_ship_without_downloads():
    x, y, xt, _yt = digits_data()
    assert x.shape[1] == 64 and len(x) + len(xt) == 1797 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(y.tolist()) == set(range(10))
    d = dynamics_data(n_train=4, n_test=3, n_times=5)
    assert d["train"].shape == (5, 4, 2) and d["test"].shape == (5, 3, 2)
    with pytest.raises(ValueError, match="oscillator"):
        dynamics_data("pendulum")


def test_classifier_forward_shapes():
    model = DigitsClassifier(width=8, hidden=16, variant=Variant("g", "global"))
    logits, sol = model(digits_data()[0][:5])
    assert logits.shape == (5, 10) and sol.error.ndim == 0 and sol.stats.nfe > 0


@pytest.mark.slow
def test_small_benchmark_global_reduces_digits_nfe():
    from solvers.node.bench import run
    result = run(["--seeds", "0", "--tasks", "digits", "--digits-steps", "100", "--timing-steps", "4"])
    summary = result["summary"]["digits"]
    assert summary["global"]["nfe_ratio_of_means"] < 0.9
    assert result["checks"]["fd_passed"] and result["checks"]["weight0_global_bitwise_equal"]
    assert result["adjoint_local_step_cost"]["same_state"]["ratio"] < 1.5


@pytest.mark.slow
def test_demo_writes_png(tmp_path):
    from solvers.node.demo import demo
    rows = demo(tmp_path, steps=5)
    assert rows[0].files[0].exists() and rows[0].files[0].stat().st_size > 10_000
