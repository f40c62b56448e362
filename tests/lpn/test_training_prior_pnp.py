"""Training pieces, the learned regulariser and the plug-and-play solvers."""
import numpy as np
import pytest
import torch

from sciml.linalg import Identity
from sciml.linalg.imaging import GaussianBlur, InpaintingMask, random_mask
from sciml.nn.icnn import LPN
from sciml.train import TrainConfig
from solvers.lpn.laplace import laplace_sampler, soft_threshold
from solvers.lpn.pnp import lpn_denoiser, pnp_admm, pnp_pgd, psnr, tv_denoiser
from solvers.lpn.prior import prox_descent, regulariser
from solvers.lpn.training import Schedule, proximal_matching_loss, train_lpn

from ._nets import random_lpn


def test_schedule_follows_the_paper():
    s = Schedule(steps=100, loss="pm", gamma_min=2.0)
    assert s.phase(0) == ("l1", None, 1e-3) and s.phase(49) == ("l1", None, 1e-3)
    assert [s.phase(k)[1] for k in (50, 63, 75, 88, 99)] == [16.0, 8.0, 4.0, 2.0, 2.0]
    assert s.phase(99)[2] == 1e-4
    assert Schedule(steps=10, loss="l2").phase(9)[0] == "l2"
    with pytest.raises(ValueError, match="unknown loss"):
        Schedule(steps=10, loss="huber")


def test_proximal_matching_loss_values():
    x = torch.zeros(2, 1, 2, 2)
    y = x.clone()
    y[1] += 0.5  # ||y - x|| = 1 for the second sample
    assert float(proximal_matching_loss(x, x, 1.0)) == 0.0
    expected = torch.tensor(0.5 * (1 - np.exp(-1.0)), dtype=torch.float32)
    torch.testing.assert_close(proximal_matching_loss(y, x, 1.0), expected)


def test_training_keeps_weights_nonnegative_and_lowers_loss(tmp_path):
    torch.manual_seed(0)
    model = LPN(hidden=8, layers=2, kernel_size=1, beta=10.0)
    result = train_lpn(model, laplace_sampler(), 1.0, Schedule(steps=60, loss="pm", gamma_min=0.5),
                       TrainConfig(steps=60, batch_size=256, device="cpu", checkpoint_dir=tmp_path,
                                   checkpoint_every=30))
    assert model.potential.min_constrained_weight() >= 0.0
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10])
    assert (tmp_path / "last.safetensors").exists()


def _random_lpn(seed=0, **kw):
    return random_lpn(seed, hidden=6, layers=3, alpha=0.05, **kw).eval()


def test_inversion_recovers_preimage_and_solvers_agree():
    net = _random_lpn()
    y_true = torch.rand(2, 1, 7, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = net(y_true)
    r_lbfgs, inv = regulariser(net, x, maxiter=200, tol=1e-8)
    assert float(inv.residual.max()) < 1e-6
    torch.testing.assert_close(inv.y, y_true, rtol=1e-5, atol=1e-5)
    r_gd, inv_gd = regulariser(net, x, method="gd", maxiter=600, lr=5e-2)  # the reference repo's cvx_gd
    assert float(inv_gd.residual.max()) < 2e-3
    torch.testing.assert_close(r_gd, r_lbfgs, rtol=1e-3, atol=0.0)


def test_regulariser_prox_optimality():
    """f(y) = x must minimise 1/2 ||u - y||^2 + R(u) over u: check against random candidates."""
    net = _random_lpn(2)
    g = torch.Generator().manual_seed(3)
    y = torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64)
    x = net(y)
    r_x, inv = regulariser(net, x, tol=1e-10)
    assert float(inv.residual.max()) < 1e-7
    best = 0.5 * float((x - y).pow(2).sum()) + float(r_x)
    for _ in range(2):
        u = net(y + 0.3 * torch.randn(y.shape, generator=g, dtype=torch.float64))  # in the range of f
        r_u, _ = regulariser(net, u, tol=1e-10)
        assert best <= 0.5 * float((u - y).pow(2).sum()) + float(r_u) + 1e-6


def test_prox_descent_inequality():
    """R(f(x)) + ||f(x) - x||^2 / 2 <= R(x) for any x (why a smoothing prox ranks blur lower)."""
    net = _random_lpn(4)
    x = torch.rand(3, 1, 6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    d = prox_descent(net, x, tol=1e-10)
    assert float(d["residual"].max()) < 1e-6
    assert float(d["half_step"].min()) > 1e-6  # f(x) != x, so the check is not vacuous
    assert float(d["gap"].min()) >= -1e-6
    torch.testing.assert_close(d["gap"], d["R_x"] - d["R_fx"] - d["half_step"])
    assert bool((d["R_fx"] < d["R_x"]).all())


def test_soft_threshold():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0])
    torch.testing.assert_close(soft_threshold(x, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 1.0]))


def _scene(n=24, seed=0):
    yy, xx = np.mgrid[:n, :n]
    return ((xx > n // 4) & (xx < 3 * n // 4) & (yy > n // 3)).astype(np.float64) * 0.8 + 0.1


@pytest.mark.parametrize("solver", ["admm", "pgd"])
def test_pnp_with_exact_prox_converges_and_improves(solver, device):
    """With the TV prox, ADMM and PGD converge (steps -> 0) and improve on the degraded image."""
    clean = torch.as_tensor(_scene(), device=device)
    A = GaussianBlur(clean.shape, 1.0, device=device)
    y = A.matvec(clean.reshape(-1))
    y = y + 0.02 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=y.dtype).to(device)
    den = tv_denoiser(0.02)
    run = pnp_admm if solver == "admm" else pnp_pgd
    res = run(A, y, den, clean.shape, maxiter=60, reference=clean)
    steps = res.history["step"]
    assert steps[-1] < 0.05 * steps[0]
    assert res.history["psnr"][-1] > psnr(A.matvec(clean.reshape(-1)).reshape(clean.shape) + 0 * clean, clean) - 5
    assert res.history["psnr"][-1] > psnr(y.reshape(clean.shape), clean)
    assert res.x.device.type == torch.device(device).type


def test_pnp_denoising_with_identity_is_the_prox_at_rho_one():
    """min 1/2||x - y||^2 + R(x) with A = I is solved by one application of the prox."""
    net = _random_lpn(4)
    y = torch.rand(12, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    res = pnp_admm(Identity(144), y.reshape(-1), lpn_denoiser(net), (12, 12), rho=1.0, maxiter=200, tol=1e-12)
    torch.testing.assert_close(res.x, net(y[None, None])[0, 0], rtol=1e-6, atol=1e-6)


def test_pnp_inpainting_history_and_errors():
    clean = torch.as_tensor(_scene(16))
    A = InpaintingMask(random_mask((16, 16), 0.6, torch.Generator().manual_seed(0)))
    y = A.matvec(clean.reshape(-1))
    res = pnp_admm(A, y, tv_denoiser(0.05), (16, 16), maxiter=5)
    assert set(res.history) >= {"step", "relative_step", "data_misfit"} and len(res.history["step"]) == 5
    with pytest.raises(ValueError, match="flatten"):
        pnp_admm(A, y[None], tv_denoiser(0.05), (16, 16))


def test_proximal_matching_limit_tends_to_soft_thresholding():
    """The loss's own minimiser approaches soft-thresholding as gamma shrinks (and not before)."""
    from solvers.lpn.laplace import proximal_matching_limit
    y = torch.linspace(-4, 4, 81, dtype=torch.float64)
    errors = [float((proximal_matching_limit(y, g, grid=3001) - soft_threshold(y, 1.0)).abs().max())
              for g in (0.2, 0.1, 0.05)]  # grid 3001: the same errors (0.177, 0.112, 0.065) as 8001, 8x faster
    assert errors[0] > errors[1] > errors[2]
    assert 0.1 < errors[1] < 0.15 and errors[2] < 0.08
    with pytest.raises(ValueError, match="gamma must be positive"):
        proximal_matching_limit(y, 0.0)


def test_quadrature_training_moves_towards_the_loss_minimiser(tmp_path):
    """Proximal matching on the exact posterior expectation: a few steps lower the loss and the
    distance to the loss's own minimiser at that gamma; constrained weights stay >= 0."""
    from solvers.lpn.laplace import proximal_matching_limit, train_quadrature
    torch.manual_seed(0)
    model = LPN(hidden=8, layers=3, kernel_size=1, beta=10.0)
    y = torch.linspace(-4, 4, 81, dtype=torch.float64)
    target = proximal_matching_limit(y, 0.4, grid=3001)

    def distance():
        with torch.no_grad():
            return float((model(y.reshape(-1, 1, 1, 1)).reshape(-1) - target).abs().mean())
    schedule = Schedule(steps=40, loss="pm", gamma_min=0.4, pretrain_fraction=0.0, lr=3e-3, stages=1)
    model.double()
    before = distance()
    result = train_quadrature(model, schedule, TrainConfig(steps=40, batch_size=1, device="cpu",
                                                           checkpoint_dir=tmp_path, checkpoint_every=20),
                              y_points=201, grid=2001)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert distance() < 0.8 * before
    assert model.potential.min_constrained_weight() >= 0.0


def test_quadrature_l2_schedule_is_the_posterior_expected_squared_error(tmp_path):
    """With ``loss="l2"`` the quadrature loss is ``E[(f(y) - x)^2 | y]`` averaged over the y grid
    (minimised by the posterior mean), not the l1 loss of the pretraining phase."""
    from solvers.lpn.laplace import posterior_grid, train_quadrature
    torch.manual_seed(0)
    model = LPN(hidden=8, layers=3, kernel_size=1, beta=10.0).double()
    y = torch.linspace(-6, 6, 201, dtype=torch.float64)
    x, post = posterior_grid(y, grid=2001)
    keep = post.max(dim=0).values > 1e-14
    x, post = x[keep], post[:, keep]
    with torch.no_grad():
        d = model(y.reshape(-1, 1, 1, 1)).reshape(-1, 1) - x
    squared, absolute = float((post * d ** 2).sum(1).mean()), float((post * d.abs()).sum(1).mean())
    schedule = Schedule(steps=3, loss="l2", pretrain_fraction=0.0, lr=1e-3)
    result = train_quadrature(model, schedule, TrainConfig(steps=3, batch_size=1, device="cpu",
                                                           checkpoint_dir=tmp_path, checkpoint_every=0),
                              y_max=6.0, y_points=201, grid=2001)
    assert result.losses[0] == pytest.approx(squared, rel=1e-9)
    assert abs(squared - absolute) > 0.1 * squared


def _doubling(x: torch.Tensor) -> torch.Tensor:
    """``2 x``: the exact prox of the non-convex ``R(x) = -||x||^2 / 4`` (Jacobian 2 > 1)."""
    return 2.0 * x


@pytest.mark.parametrize("solver", ["admm", "pgd"])
def test_patience_rule_stops_an_expansive_prox_and_returns_the_calmest_iterate(solver):
    """Unobserved pixels see the prox alone; an expansive one drifts and the patience rule stops it."""
    clean = torch.as_tensor(_scene(16))
    A = InpaintingMask(random_mask((16, 16), 0.6, torch.Generator().manual_seed(0)))
    y = A.matvec(clean.reshape(-1))
    x0 = A.rmatvec(y).reshape(16, 16) + 0.1  # non-zero in the unobserved pixels
    run = pnp_admm if solver == "admm" else pnp_pgd
    plain = run(A, y, _doubling, (16, 16), maxiter=40, reference=clean, x0=x0)
    assert plain.stop_reason == "maxiter" and plain.returned_iteration == 40
    steps = plain.history["relative_step"]
    assert steps[-1] > steps[5]  # the plain run drifts
    guarded = run(A, y, _doubling, (16, 16), maxiter=40, reference=clean, x0=x0, patience=3)
    assert guarded.stop_reason == "diverging" and guarded.iterations < 40
    k = guarded.returned_iteration
    assert guarded.history["relative_step"][k - 1] == min(guarded.history["relative_step"])
    assert float(guarded.x.abs().max()) < float(plain.x.abs().max())
    with pytest.raises(ValueError, match="patience"):
        run(A, y, _doubling, (16, 16), patience=0)



def test_patience_off_is_plain_admm():
    clean = torch.as_tensor(_scene())
    A = GaussianBlur(clean.shape, 1.0)
    y = A.matvec(clean.reshape(-1))
    y = y + 0.02 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=y.dtype)
    plain = pnp_admm(A, y, tv_denoiser(0.05), clean.shape, maxiter=8, rho=0.5)
    guarded = pnp_admm(A, y, tv_denoiser(0.05), clean.shape, maxiter=8, rho=0.5, patience=3)
    assert plain.stop_reason == guarded.stop_reason == "maxiter"
    torch.testing.assert_close(plain.x, guarded.x)  # the TV prox settles: the rule never fires


def test_shipped_ct_model_beats_fbp_on_a_small_validation_phantom():
    """A small version of the CT benchmark (a random shell phantom, not Shepp-Logan): >= 2 dB over FBP."""
    from sciml.linalg.imaging import filtered_back_projection, radon_matrix
    from solvers.lpn.bench import SETTINGS
    from solvers.lpn.data import ellipse_phantom
    from solvers.lpn.experiments import operator_norm
    from solvers.lpn.model import load_lpn
    phantom = torch.as_tensor(ellipse_phantom(64, np.random.default_rng(9), shell_probability=1.0))
    A = radon_matrix(64, 20)
    scale = operator_norm(A)
    y = A.matvec(phantom.reshape(-1))
    y = y + 0.5 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=y.dtype)
    fbp = filtered_back_projection(A, y, "hann").reshape(64, 64)
    s = SETTINGS["ct"]
    res = pnp_admm(A * (1.0 / scale), y / scale, lpn_denoiser(load_lpn("lpn-ct"), s["clip"]), (64, 64),
                   rho=s["rho"], maxiter=25, x0=fbp, patience=s["patience"], tol=1e-5)
    assert psnr(res.x, phantom) > psnr(fbp, phantom) + 2.0


def test_prior_curves_report_each_probe_and_the_mix_needs_pairs():
    from solvers.lpn.experiments import prior_curves
    net = _random_lpn()
    clean = torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = prior_curves(net, clean, noises=(0.0, 0.3), blurs=(0.0, 1.0), mixes=(0.0, 0.5, 1.0), maxiter=200)
    assert set(out) == {"noise", "blur", "mix", "crops"} and out["crops"] == 4
    for kind in ("noise", "blur", "mix"):
        assert len(out[kind]["median_R"]) == len(out[kind]["levels"])
        assert max(out[kind]["max_inversion_residual"]) < 1e-3
    # noise and blur level 0 are the clean images; the mix pairs image i with image N-1-i
    assert out["noise"]["median_R"][0] == pytest.approx(out["blur"]["median_R"][0], rel=1e-6)
    assert out["mix"]["median_R"][0] == pytest.approx(out["mix"]["median_R"][-1], rel=1e-6)
    assert isinstance(out["mix"]["middle_above_ends"], bool)
    with pytest.raises(ValueError, match="even number"):
        prior_curves(net, clean[:3], noises=(), blurs=(), mixes=(0.0, 0.5))
