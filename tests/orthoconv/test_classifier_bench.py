"""1-Lipschitz classifier, certificates, and small fast versions of the bench and demo."""
import math

import pytest
import torch

from solvers.orthoconv.classifier import (
    LipschitzConvNet,
    MaxMin,
    OrthoLinear,
    certified_accuracy,
    load_digits,
    train_classifier,
)


def test_maxmin_is_norm_preserving_and_one_lipschitz():
    x, y = torch.randn(16, 8, 4, 4, dtype=torch.float64), torch.randn(16, 8, 4, 4, dtype=torch.float64)
    act = MaxMin()
    assert torch.allclose(act(x).flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
    assert ((act(x) - act(y)).flatten(1).norm(dim=1) <= (x - y).flatten(1).norm(dim=1) + 1e-12).all()


def test_exact_network_is_one_lipschitz():
    net = LipschitzConvNet("exact", width=8, generator=torch.Generator().manual_seed(0)).double()
    assert net.lipschitz_bound() == pytest.approx(1.0, abs=1e-12)
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64)
    d = 1e-2 * torch.randn_like(x)
    with torch.no_grad():
        ratio = (net(x + d) - net(x)).norm(dim=1) / d.flatten(1).norm(dim=1)
    assert float(ratio.max()) <= 1 + 1e-9


def test_plain_network_lipschitz_bound_is_an_upper_bound():
    net = LipschitzConvNet("plain", width=8, generator=torch.Generator().manual_seed(1)).double()
    lip = net.lipschitz_bound()
    x = torch.randn(256, 1, 8, 8, dtype=torch.float64)
    d = 1e-3 * torch.randn_like(x)
    with torch.no_grad():
        ratio = (net(x + d) - net(x)).norm(dim=1) / d.flatten(1).norm(dim=1)
    assert float(ratio.max()) <= lip


def test_certificate_is_sound_against_attack_direction():
    """No point certified at radius r changes class under a perturbation of norm r along the margin gradient."""
    net = LipschitzConvNet("exact", width=8, generator=torch.Generator().manual_seed(2)).double().eval()
    x = torch.randn(128, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = net(x).argmax(1)
    r = 0.05
    cert = certified_accuracy(net, x, y, r)
    assert cert.clean == 1.0 and cert.lipschitz == pytest.approx(1.0)
    x.requires_grad_(True)
    logits = net(x)
    top2 = logits.topk(2, dim=1).indices
    margin = logits.gather(1, top2[:, :1]) - logits.gather(1, top2[:, 1:])
    (g,) = torch.autograd.grad(margin.sum(), x)
    adv = x.detach() - r * g / g.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    with torch.no_grad():
        flipped = net(adv).argmax(1) != y
        m = margin.detach().squeeze(1)
    certified = m > math.sqrt(2) * r
    assert not (flipped & certified).any()


def test_ortho_linear_rows_orthonormal():
    lin = OrthoLinear(32, 10).double()
    w = lin.weight
    assert torch.allclose(w @ w.T, torch.eye(10, dtype=torch.float64), atol=1e-12)


def test_short_training_learns_digits():
    pytest.importorskip("sklearn")
    xtr, ytr, xte, yte = load_digits()
    assert xtr.shape[1:] == (1, 8, 8) and float(xtr.max()) <= 1.0
    model = train_classifier("exact", xtr, ytr, steps=60, width=8)
    cert = certified_accuracy(model, xte, yte, 0.1)
    assert cert.clean > 0.6
    assert cert.certified <= cert.clean
    assert cert.lipschitz == pytest.approx(1.0, abs=1e-5)


def test_compare_small_runs_with_orthogonium():
    pytest.importorskip("orthogonium")
    from solvers.orthoconv.compare import compare
    result = compare("cpu", channels=8, n=8, batch=2, repeats=1, drift_steps=2)
    methods = {r["method"] for r in result["rows"]}
    assert "orthogonium AOC default" in methods and "sciml OrthoConv2d exact" in methods
    s = result["summary"]
    assert s["our_error_f32"] < 1e-6
    assert result["error_f64"]["sciml OrthoConv2d exact"] < 1e-12


@pytest.mark.slow
def test_demo_runs(tmp_path):
    pytest.importorskip("sklearn")
    from solvers.orthoconv.demo import demo
    rows = demo(tmp_path, "cpu", steps=100)
    assert (tmp_path / "singular_values.png").exists() and (tmp_path / "certified.txt").exists()
    assert rows[0].value < 1e-12 < rows[0].baseline_value
