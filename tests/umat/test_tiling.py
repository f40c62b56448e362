"""Tests for tiled inference: exactness for local models, any size, bounded memory, no seams."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from solvers.umat.model import UMatNet
from solvers.umat.tiling import blend_window, pad_reflect, reflect_indices, seam_ratio, tile_starts, tiled_apply


def _conv_stack(seed: int = 0, out_channels: int = 5) -> torch.nn.Module:
    """Local model: two 3x3 convs, receptive-field radius 2 (zero padding at its input border)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(),
                               torch.nn.Conv2d(8, out_channels, 3, padding=1)).double()


def _smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64),
                            torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij")
    g = torch.Generator().manual_seed(seed)
    img = torch.stack([torch.sin(6 * xx + 2 * yy), torch.cos(5 * yy - 3 * xx), torch.sin(12 * xx * yy)])[None]
    return 0.5 + 0.5 * img + 0.01 * torch.randn(img.shape, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------ helpers
def test_reflect_indices_match_torch_and_extend_periodically():
    x = torch.rand(1, 2, 5, 6)
    torch.testing.assert_close(pad_reflect(x, 4, 2, 3, 5), F.pad(x, (3, 5, 4, 2), mode="reflect"))
    assert reflect_indices(3, 5, 5).tolist() == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]
    assert reflect_indices(1, 2, 3).tolist() == [0] * 6
    y = torch.rand(2, 3, 4, 5)
    assert pad_reflect(y, 10, 11, 12, 13).shape == (2, 3, 25, 30)


@pytest.mark.parametrize("n, tile, overlap", [(97, 32, 8), (128, 32, 8), (33, 32, 8), (32, 32, 8), (500, 128, 32)])
def test_tile_starts_cover_the_axis(n, tile, overlap):
    starts = tile_starts(n, tile, overlap)
    assert starts[0] == 0 and starts[-1] == n - tile
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))
    covered = torch.zeros(n, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()


def test_blend_window_positive_partition_of_unity():
    w = blend_window(32, 8, dtype=torch.float64)
    assert w.min() > 0 and w.max() == 1
    # two tiles overlapping by exactly `overlap` sum to ~1 on the overlap
    torch.testing.assert_close(w[-8:] + w[:8], torch.ones(8, dtype=torch.float64), atol=1e-7, rtol=0)
    assert (w[:2] < 1e-6).all()                      # margin = overlap // 4 = 2 edge pixels ~ 0 weight
    assert blend_window(16, 0).eq(1).all()
    assert blend_window(16, 8, taper_start=False)[:8].eq(1).all()


# ----------------------------------------------------------------------- exactness
@pytest.mark.parametrize("size", [(97, 131), (128, 128), (32, 200), (129, 65)])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_tiled_equals_whole_for_local_model(size, batch_size):
    net = _conv_stack()
    x = torch.rand(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_apply(net, x, tile=32, overlap=8, batch_size=batch_size)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5


def test_tiled_umatnet_without_attention_is_close_to_whole():
    """attention='none', norm='layer': only the receptive field (~100 px) is non-local."""
    torch.manual_seed(0)
    model = UMatNet(attention="none", dropout=0.0).double().eval()
    torch.nn.init.normal_(model.head.weight, std=0.3)
    x = _smooth_image(96, 112)
    with torch.no_grad():
        whole = model(x)
        tiled = tiled_apply(model, x, tile=64, overlap=32, renormalize_channels=slice(0, 3))
    angle = torch.rad2deg(torch.acos((whole[:, :3] * tiled[:, :3]).sum(1).clamp(-1, 1)))
    assert angle.mean() < 1.0


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (20, 300), (97, 131)])
def test_any_size_pointwise_model_is_exact(size):
    """A pointwise model gives the whole-image result for any size, also smaller than a tile."""
    def fn(t):
        return torch.cat([torch.tanh(t), t.sum(1, keepdim=True) ** 2], 1)
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    out = tiled_apply(fn, x, tile=32, overlap=8)
    assert out.shape == (2, 4, *size)
    torch.testing.assert_close(out, fn(x))


def test_renormalize_channels_gives_unit_normals():
    torch.manual_seed(0)
    model = UMatNet(dropout=0.0).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    x = torch.rand(1, 3, 90, 70)
    with torch.no_grad():
        out = tiled_apply(model, x, tile=32, overlap=16, renormalize_channels=slice(0, 3))
    torch.testing.assert_close(out[:, :3].norm(dim=1), torch.ones(1, 90, 70))
    assert out[:, 3].min() >= 0.05 and out[:, 4].max() <= 1.0


def test_tiled_apply_is_differentiable():
    net = _conv_stack(out_channels=2)
    x = torch.rand(1, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: tiled_apply(net, t, tile=4, overlap=2, batch_size=3), (x,))


def test_bad_arguments_raise():
    x = torch.rand(1, 3, 10, 10)
    with pytest.raises(ValueError, match="overlap"):
        tiled_apply(lambda t: t, x, tile=8, overlap=8)
    with pytest.raises(ValueError, match="B, C, H, W"):
        tiled_apply(lambda t: t, x[0], tile=8, overlap=2)
    with pytest.raises(ValueError, match="fn must map"):
        tiled_apply(lambda t: t[..., :-1], x, tile=8, overlap=2)


# ------------------------------------------------------------------------- memory
def test_work_per_call_bounded_by_tile_not_image():
    seen = []

    def fn(t):
        seen.append(t.shape)
        return t[:, :2]

    for size in [(40, 40), (200, 330)]:
        seen.clear()
        tiled_apply(fn, torch.rand(2, 3, *size), tile=32, overlap=8, batch_size=3)
        assert all(s[0] <= 3 and s[-2:] == (32, 32) for s in seen)
        n_tiles = len(tile_starts(size[0], 32, 8)) * len(tile_starts(size[1], 32, 8)) * 2
        assert sum(s[0] for s in seen) == n_tiles


class _LargeStorages(TorchDispatchMode):
    """Record every tensor storage above ``threshold`` bytes that an op returns (views of
    storages in ``known`` are ignored)."""

    def __init__(self, threshold: int, known=()):
        super().__init__()
        self.threshold = threshold
        self.known = {t.untyped_storage().data_ptr() for t in known}
        self.found: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st.nbytes() > self.threshold and st.data_ptr() not in self.known:
                    self.found[st.data_ptr()] = st.nbytes()
        return out


def test_only_output_buffers_grow_with_the_image():
    """Apart from the output and weight buffers, no tensor is larger than the tile batch."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 5, 3, padding=1))
    tile_batch_bytes = 3 * 8 * 32 * 32 * 4                 # batch_size x widest layer x tile^2 x float32
    for size in [(40, 40), (200, 330)]:
        x = torch.rand(2, 3, *size)
        with torch.no_grad(), _LargeStorages(tile_batch_bytes, known=[x]) as mode:
            out = tiled_apply(net, x, tile=32, overlap=8, batch_size=3)
        expected = {out.numel() * 4, size[0] * size[1] * 4} if out.numel() * 4 > tile_batch_bytes else set()
        assert sorted(mode.found.values()) == sorted(expected)


# -------------------------------------------------------------------------- seams
def test_blending_removes_seams_of_a_tile_dependent_model():
    """A smooth model with a per-tile offset (like any per-tile statistic) shows hard seams
    without overlap; with overlap blending the border gradient energy is within 1.1x of the rest."""
    kernel = torch.ones(3, 1, 5, 5, dtype=torch.float64) / 25

    def fn(t):
        blurred = F.conv2d(F.pad(t, (2, 2, 2, 2), mode="reflect"), kernel, groups=3)
        return blurred - 0.5 * t.mean(dim=(2, 3), keepdim=True)

    x = _smooth_image(192, 224)
    hard = tiled_apply(fn, x, tile=64, overlap=0)
    blended = tiled_apply(fn, x, tile=64, overlap=16)
    assert seam_ratio(hard, 64, 0) > 5.0
    assert seam_ratio(blended, 64, 16) <= 1.1
    assert seam_ratio(fn(x), 64, 16) <= 1.1             # the statistic is ~1 on a seamless image
