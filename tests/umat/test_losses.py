"""UMat losses: zero at the ground truth, positive elsewhere, gradients reach the prediction."""
import pytest
import torch

from solvers.umat.losses import LossWeights, map_loss, rendering_loss, umat_loss
from solvers.umat.materials import generate_materials


@pytest.fixture(scope="module")
def maps():
    return generate_materials(2, 24, seed=5)


def _perturbed(target, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = scale * torch.randn(target.shape, generator=g)
    n = target[:, :3] + noise[:, :3]
    n = n / n.norm(dim=1, keepdim=True)
    return torch.cat([n, (target[:, 3:] + noise[:, 3:]).clamp(0.05, 1)], 1)


def test_map_loss_zero_at_truth_positive_elsewhere(maps):
    target = maps.targets()
    assert float(map_loss(target, target)) == 0.0
    assert float(map_loss(_perturbed(target), target)) > 0.01
    # each map counts: changing only the specular channel is seen
    other = target.clone()
    other[:, 4] += 0.1
    assert float(map_loss(other, target)) == pytest.approx(0.1, rel=1e-5)
    assert float(map_loss(other, target, LossWeights(specular=0.0))) == 0.0


def test_rendering_loss_zero_at_truth_positive_elsewhere(maps):
    target = maps.targets()
    g = torch.Generator().manual_seed(1)
    assert float(rendering_loss(target, maps, 3, g)) < 1e-6
    assert float(rendering_loss(_perturbed(target), maps, 3, torch.Generator().manual_seed(1))) > 0.01


def test_rendering_loss_fixed_lights_and_bad_shapes(maps):
    target = maps.targets()
    lights = torch.tensor([[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]])
    a = rendering_loss(_perturbed(target), maps, lights=lights)
    b = rendering_loss(_perturbed(target), maps, lights=lights.expand(2, -1, -1))
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="expected"):
        rendering_loss(target[:, :4], maps, 1)
    with pytest.raises(ValueError, match="lights"):
        rendering_loss(target, maps, lights=torch.ones(3, 3, 3))


def test_gradient_reaches_every_predicted_map(maps):
    pred = _perturbed(maps.targets()).requires_grad_(True)
    total, parts = umat_loss(pred, maps, generator=torch.Generator().manual_seed(0))
    total.backward()
    assert set(parts) == {"map", "render"}
    assert torch.isfinite(pred.grad).all()
    for c in range(5):
        assert pred.grad[:, c].abs().sum() > 0, f"no gradient in channel {c}"


def test_render_term_changes_the_gradient(maps):
    """The rendering loss is not a rescaled map loss: it weighs normals by their shading."""
    pred0 = _perturbed(maps.targets())
    grads = []
    for render in (0.0, 1.0):
        pred = pred0.clone().requires_grad_(True)
        umat_loss(pred, maps, LossWeights(render=render), generator=torch.Generator().manual_seed(0))[0].backward()
        grads.append(pred.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_adversarial_needs_discriminator_and_bad_weights(maps):
    with pytest.raises(ValueError, match="discriminator"):
        umat_loss(maps.targets(), maps, LossWeights(adversarial=0.1))
    with pytest.raises(ValueError, match="negative"):
        LossWeights(render=-1)


def test_adversarial_term_reaches_the_generator_only():
    from solvers.umat.discriminator import UNetDiscriminator
    maps = generate_materials(2, 16, seed=1)
    torch.manual_seed(0)
    disc = UNetDiscriminator(in_channels=5)
    pred = maps.targets().clone().requires_grad_(True)
    total, parts = umat_loss(pred, maps, LossWeights(adversarial=0.5), generator=torch.Generator().manual_seed(0),
                             discriminator=disc)
    total.backward()
    assert float(parts["map"]) == 0 and float(parts["adversarial"]) > 0  # truth is only "real" to a trained D
    assert float(pred.grad.abs().sum()) > 0
    assert all(p.grad is None for p in disc.parameters())
