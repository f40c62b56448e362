import numpy as np
import pytest
import torch

from solvers.dgno.darcy import DarcyFEM, sample_coefficient
from solvers.dgno.model import DGNO, DGNOConfig, grid_points, pixel_lookup, train_dgno

SMALL = {"n_pix": 9, "latent": 8, "encoder_hidden": (16,), "width": 12, "depth": 3, "n_centres": 6, "radius": 0.1}


def _graph_leaves(t):
    seen, stack, leaves = set(), [t.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.append(fn.variable)
        stack.extend(f for f, _ in fn.next_functions)
    return leaves


@pytest.mark.parametrize("kind,form", [("two_phase", "mixed"), ("two_phase", "primal"), ("lognormal", "mixed")])
def test_u_labels_are_not_in_the_loss_graph(kind, form):
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(kind=kind, form=form, **SMALL), dtype=torch.float64)
    a = torch.tensor(np.stack([sample_coefficient(kind, 0, i, 9) for i in range(3)]))
    u_labels = torch.rand(3, 9, 9, dtype=torch.float64, requires_grad=True)
    a_in = a.clone().requires_grad_(True)
    batch = {"a": a_in, "u": u_labels, "centres": model.tests.sample_centres(6, dtype=torch.float64)}
    loss = model.loss(batch)
    leaves = _graph_leaves(loss)
    assert not any(leaf is u_labels for leaf in leaves)
    assert any(leaf is a_in for leaf in leaves)      # the traversal does find real inputs
    assert torch.autograd.grad(loss, u_labels, allow_unused=True)[0] is None
    # every parameter of the encoder and both decoders is trained by the loss
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert all(g is not None for g in grads)


def test_hard_dirichlet_condition_and_gradient():
    torch.manual_seed(1)
    model = DGNO(DGNOConfig(**SMALL), dtype=torch.float64)
    beta = torch.tanh(torch.randn(2, 8, dtype=torch.float64))
    t = torch.rand(10, dtype=torch.float64)
    edge = torch.cat([torch.stack([t, 0 * t], 1), torch.stack([t, 0 * t + 1], 1),
                      torch.stack([0 * t, t], 1), torch.stack([0 * t + 1, t], 1)])
    assert model.u(beta, edge).abs().max() < 1e-14
    x = torch.rand(7, 2, dtype=torch.float64)
    u, g = model.u_and_grad(beta, x)
    xb = x.expand(2, 7, 2).clone().requires_grad_(True)
    ref = model.u(beta, xb)
    (gr,) = torch.autograd.grad(ref.sum(), xb)
    torch.testing.assert_close(u, ref.detach())
    torch.testing.assert_close(g, gr)


def test_pixel_lookup_matches_fem_cells():
    fem = DarcyFEM(9, refine=1)
    a = sample_coefficient("two_phase", 2, 0, 9)
    centroids = torch.tensor(fem.mesh.p[:, fem.mesh.t].mean(axis=1).T)
    looked = pixel_lookup(torch.tensor(a)[None], centroids)[0].numpy()
    np.testing.assert_array_equal(looked, fem.element_coefficient(a))
    assert grid_points(9).shape == (81, 2)


def test_short_training_reduces_loss_and_is_reproducible():
    from sciml.train import TrainConfig
    a = np.stack([sample_coefficient("two_phase", 0, i, 9) for i in range(8)])
    cfg = DGNOConfig(**SMALL)
    tc = TrainConfig(steps=40, batch_size=4, lr=1e-2, device="cpu", seed=3)
    torch.manual_seed(0)
    m1, r1 = train_dgno(a, cfg, tc)
    torch.manual_seed(0)
    _, r2 = train_dgno(a, cfg, tc)
    assert r1.losses == r2.losses
    assert np.mean(r1.losses[-5:]) < 0.8 * np.mean(r1.losses[:5])
    assert m1.predict(torch.tensor(a, dtype=torch.float32)).shape == (8, 9, 9)


def test_bad_config():
    with pytest.raises(ValueError, match="kind"):
        DGNOConfig(kind="nope")
    with pytest.raises(ValueError, match="form"):
        DGNOConfig(form="strong")
    with pytest.raises(ValueError, match="mixed"):
        DGNO(DGNOConfig(form="primal", **SMALL)).flux(torch.zeros(1, 8), torch.zeros(3, 2))
    model = DGNO(DGNOConfig(**SMALL))
    with pytest.raises(ValueError, match="expected"):
        model.encode(torch.ones(2, 5, 5))


def test_coefficient_decoder_size_and_old_configs(tmp_path):
    """a_width / a_depth size the a-decoder only (the authors: 256 against 100); configs saved before
    these fields existed load with the shared width."""
    cfg = DGNOConfig(**{**SMALL, "a_width": 12, "a_depth": 3})
    model = DGNO(cfg)
    assert model.a_decoder.branch.layers[0].out_features == 12 and len(model.a_decoder.branch.layers) == 3
    assert model.u_decoder.branch.layers[0].out_features == SMALL["width"]
    back = DGNO.load(model.save(tmp_path / "m.safetensors"))
    assert back.config == cfg
    old = {k: v for k, v in DGNOConfig(**SMALL).to_json().items() if k not in ("a_width", "a_depth")}
    assert DGNOConfig(**old).a_width is None


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(kind="lognormal", **SMALL))
    path = model.save(tmp_path / "m.safetensors")
    back = DGNO.load(path)
    assert back.config == model.config
    a = torch.rand(2, 9, 9) + 1.0
    torch.testing.assert_close(back.predict(a), model.predict(a), rtol=0, atol=0)


def test_solution_decoder_refinement_freezes_the_latent():
    """Stage 3 trains only the u- and flux decoders, with the physics loss (no u labels)."""
    from sciml.train import TrainConfig
    from solvers.dgno.darcy import sample_coefficient
    from solvers.dgno.refine import refine_solution_decoders
    torch.manual_seed(0)
    cfg = DGNOConfig(n_pix=9, latent=4, encoder_hidden=(8,), width=8, depth=2, n_centres=4, radius=0.1)
    model = DGNO(cfg)
    a = np.stack([sample_coefficient("two_phase", 0, s, 9) for s in range(6)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model, res = refine_solution_decoders(model, a, TrainConfig(steps=40, batch_size=4, lr=1e-2, seed=0))
    after = model.state_dict()
    for k in before:
        frozen = k.startswith(("encoder.", "a_decoder.", "prior_"))
        assert torch.equal(before[k], after[k]) == frozen or not after[k].numel(), k
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5])
    assert all(p.requires_grad for p in model.parameters())
