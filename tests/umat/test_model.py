"""Tests for the UMat generator, its attention blocks and the U-Net discriminator."""
import time

import pytest
import torch

from solvers.umat.attention import EfficientAttention, SoftmaxAttention, efficient_attention, softmax_attention
from solvers.umat.discriminator import (
    UNetDiscriminator,
    cutmix,
    cutmix_loss,
    discriminator_loss,
    generator_adversarial_loss,
)
from solvers.umat.model import UMatNet, activate, count_parameters, split_prediction


def _randomise_head(model: UMatNet, std: float = 0.5, seed: int = 0) -> UMatNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * std)
        model.head.bias.copy_(torch.randn(model.head.bias.shape, generator=g) * std)
    return model


# ----------------------------------------------------------------------- attention
def test_efficient_attention_matches_explicit_formula():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 4, 10, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, 10, generator=g,
                                                                                     dtype=torch.float64)
    v = torch.randn(2, 3, 5, 10, generator=g, dtype=torch.float64)
    out = efficient_attention(q, k, v)
    ref = torch.zeros_like(out)
    for b in range(2):
        for h in range(3):
            rho_q = torch.softmax(q[b, h], dim=0)          # (d_k, N) softmax over channels
            rho_k = torch.softmax(k[b, h], dim=1)          # (d_k, N) softmax over positions
            attn = rho_q.T @ rho_k                         # explicit (N, N) matrix, the O(N^2) order
            ref[b, h] = v[b, h] @ attn.T
    torch.testing.assert_close(out, ref)


def test_softmax_attention_matches_torch_sdpa():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 4, 9, generator=g, dtype=torch.float64) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                                           v.transpose(-1, -2)).transpose(-1, -2)
    torch.testing.assert_close(softmax_attention(q, k, v), ref)


@pytest.mark.parametrize("cls", [EfficientAttention, SoftmaxAttention])
def test_attention_block_identity_at_init_and_permutation_equivariant(cls):
    torch.manual_seed(0)
    block = cls(16, heads=4).double()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(block(x), x)                    # zero-initialised projection
    torch.nn.init.normal_(block.proj.weight)
    y = block(x)
    assert (y - x).abs().max() > 1e-3
    perm = torch.randperm(35)
    xp = x.flatten(2)[:, :, perm].reshape(2, 16, 5, 7)
    yp = block(xp)
    torch.testing.assert_close(yp.flatten(2), y.flatten(2)[:, :, perm])


def test_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="divisible"):
        EfficientAttention(10, heads=4)


# ----------------------------------------------------------------------- generator
@pytest.mark.parametrize("attention", ["linear", "softmax", "none"])
def test_umatnet_size_and_output_ranges(attention):
    torch.manual_seed(0)
    model = _randomise_head(UMatNet(attention=attention, dropout=0.1)).eval()
    assert 200_000 <= count_parameters(model) <= 500_000
    for size in [(1, 1), (5, 3), (33, 47), (64, 64)]:
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, 5, *size)
        normal, rough, spec = split_prediction(y)
        torch.testing.assert_close(normal.norm(dim=1), torch.ones(2, *size))
        assert normal[:, 2].min() > 0
        assert rough.min() >= 0.05 and rough.max() <= 1.0
        assert spec.min() >= 0.0 and spec.max() <= 1.0


def test_fresh_model_predicts_flat_normal_and_activation_limits():
    model = UMatNet().eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 16, 16))
    torch.testing.assert_close(y[:, :3], torch.tensor([0.0, 0.0, 1.0])[None, :, None, None].expand(1, 3, 16, 16))
    raw = torch.tensor([[0.0, 0.0, -1e4, -1e4, 1e4]]).reshape(1, 5, 1, 1)
    out = activate(raw)
    assert out[0, 2, 0, 0] > 0                       # z stays positive even for a very negative raw z
    torch.testing.assert_close(out[0, 3:, 0, 0], torch.tensor([0.05, 1.0]))


@pytest.mark.parametrize("norm, local", [("layer", True), ("none", True), ("group", False)])
def test_conv_part_is_local_unless_groupnorm(norm, local):
    """Without attention, a change in one corner leaves the far corner untouched (receptive field
    ~100 px) -- except with GroupNorm, whose statistics span the image. Locality is what makes
    tiled inference agree with whole-image inference."""
    torch.manual_seed(0)
    model = _randomise_head(UMatNet(attention="none", norm=norm, dropout=0.0)).double().eval()
    x = torch.rand(1, 3, 128, 128, dtype=torch.float64)
    x2 = x.clone()
    x2[..., :8, :8] += 1.0
    with torch.no_grad():
        far = (model(x) - model(x2))[..., 96:, 96:].abs().max()
    assert (far == 0) if local else (far > 1e-6)


def test_pixel_layer_norm_matches_layer_norm():
    from solvers.umat.model import PixelLayerNorm
    norm = PixelLayerNorm(6).double()
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    ref = torch.nn.functional.layer_norm(x.movedim(1, -1), (6,), norm.weight, norm.bias).movedim(-1, 1)
    torch.testing.assert_close(norm(x), ref)


def test_split_prediction_checks_shape():
    n, r, s = split_prediction(torch.rand(2, 5, 4, 3))
    assert n.shape == (2, 3, 4, 3) and r.shape == s.shape == (2, 1, 4, 3)
    with pytest.raises(ValueError, match="B, 5, H, W"):
        split_prediction(torch.rand(2, 4, 4, 3))


def test_unknown_options_raise():
    with pytest.raises(ValueError, match="attention"):
        UMatNet(attention="global")
    with pytest.raises(ValueError, match="norm"):
        UMatNet(norm="batch")


def test_mc_dropout_independent_of_train_eval():
    torch.manual_seed(0)
    model = _randomise_head(UMatNet(dropout=0.2)).eval()
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        a, b = model(x), model(x)
        torch.testing.assert_close(a, b)                     # eval: deterministic
        model.set_mc_dropout(True, torch.Generator().manual_seed(5))
        c, d = model(x), model(x)
        assert not model.training
        assert (c - d).abs().max() > 1e-4                    # MC samples differ
        model.set_mc_dropout(True, torch.Generator().manual_seed(5))
        torch.testing.assert_close(model(x), c)              # reproducible with a generator
        model.set_mc_dropout(False)
        torch.testing.assert_close(model(x), a)
        model.train()
        assert (model(x) - a).abs().max() > 1e-4             # ordinary training-mode dropout


def test_umatnet_learns_a_small_mapping():
    """A few Adam steps reduce an L1 map loss on one image: gradients reach every part."""
    torch.manual_seed(0)
    model = UMatNet(base_channels=8, depth=2, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 12, generator=g)
    normal = torch.nn.functional.normalize(torch.cat([x[:, :2] - 0.5, torch.ones(2, 1, 12, 12)], 1), dim=1)
    target = torch.cat([normal, 0.05 + 0.9 * x[:, 2:3], x[:, 0:1]], 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = (model(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.slow
def test_umatnet_forward_time_cpu():
    torch.manual_seed(0)
    model = UMatNet().eval()
    x = torch.rand(16, 3, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            model(x)
            times = []
            for _ in range(3):
                t = time.process_time()             # CPU time: robust to other processes' load
                model(x)
                times.append(time.process_time() - t)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < 0.3


# ------------------------------------------------------------------- discriminator
def test_discriminator_shapes_any_size():
    torch.manual_seed(0)
    d = UNetDiscriminator(in_channels=5)
    for size in [(16, 16), (33, 47), (3, 5)]:
        g, p = d(torch.rand(2, 5, *size))
        assert g.shape == (2,) and p.shape == (2, 1, *size)


def test_discriminator_losses_gradients_and_both_call_forms():
    torch.manual_seed(0)
    d = UNetDiscriminator(in_channels=5).eval()     # eval: spectral norm's power iteration is frozen
    real = torch.rand(3, 5, 20, 20)
    fake = torch.rand(3, 5, 20, 20, requires_grad=True)
    for kind in ("bce", "hinge"):
        ld = discriminator_loss(d, real, fake, kind=kind)
        torch.testing.assert_close(ld, discriminator_loss(d(real), d(fake.detach()), kind=kind))
        ld.backward()
        assert fake.grad is None                                   # fake is detached
        lg = generator_adversarial_loss(d, fake, kind=kind)
        torch.testing.assert_close(lg, generator_adversarial_loss(*d(fake), kind=kind))
        lg.backward()
        assert fake.grad is not None and fake.grad.abs().sum() > 0
        fake.grad = None
    with pytest.raises(ValueError, match="hinge"):
        discriminator_loss(d, real, fake, kind="wgan")


def test_discriminator_learns_to_separate_smooth_from_noise():
    """Real = smooth maps, fake = noise: a few steps push D(real) above D(fake) on both heads."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    d = UNetDiscriminator(in_channels=5, base_channels=8, depth=2)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    base = torch.rand(8, 5, 4, 4, generator=g)
    real = torch.nn.functional.interpolate(base, size=(16, 16), mode="bilinear", align_corners=False)
    fake = torch.rand(8, 5, 16, 16, generator=g)
    first = discriminator_loss(d, real, fake).item()
    for _ in range(30):
        loss = discriminator_loss(d, real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    (g_real, p_real), (g_fake, p_fake) = d(real), d(fake)
    assert g_real.min() > g_fake.max()
    assert p_real.mean() > p_fake.mean()


def test_cutmix_mask_and_loss():
    real, fake = torch.zeros(6, 5, 12, 10), torch.ones(6, 5, 12, 10)
    gen = torch.Generator().manual_seed(3)
    mixed, mask = cutmix(real, fake, generator=gen)
    assert mask.shape == (6, 1, 12, 10)
    torch.testing.assert_close(mixed, (1 - mask).expand_as(mixed))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    _, mask2 = cutmix(real, fake, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mask, mask2)                        # deterministic with a generator
    d = UNetDiscriminator(in_channels=5, base_channels=8, depth=2)
    loss = cutmix_loss(d, real, fake, generator=gen)
    assert torch.isfinite(loss)
    loss.backward()
