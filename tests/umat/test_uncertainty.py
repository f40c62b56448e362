"""Uncertainty estimators: exact TTA inverses, MC dropout, ensembles and the calibration metrics."""
import numpy as np
import pytest
import torch

from solvers.umat.materials import normals_from_height
from solvers.umat.uncertainty import (
    ause,
    error_drop,
    per_material_score,
    predict_ensemble,
    predict_mc_dropout,
    predict_tta,
    predict_uncertain,
    sparsification_curve,
    spearman,
    summarize_samples,
)


def assert_close(actual, expected, atol=1e-6, rtol=1e-5, msg=""):
    """Like torch.testing.assert_close (whose first call imports torch.distributed, seconds on a busy CPU)."""
    assert actual.shape == expected.shape, (msg, actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (msg, actual.dtype, expected.dtype)
    assert torch.allclose(actual, expected, atol=atol, rtol=rtol), (msg, float((actual - expected).abs().max()))


def _image(h=21, w=26, seed=0):
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1


def pointwise_model(image):
    """Equivariant under u-flips and any shift: the normal has no x component, all maps are per pixel."""
    lum = image.mean(1, keepdim=True)
    n = torch.cat([torch.zeros_like(lum), lum - 0.5, torch.ones_like(lum)], 1)
    return torch.cat([n / n.norm(dim=1, keepdim=True), lum.clamp(0.05, 1), 0.5 * lum], 1)


def gradient_model(image):
    """Normals from the luminance gradient with circular differences: equivariant under u-flips
    (x slope changes sign) and circular shifts."""
    lum = image.mean(1, keepdim=True)
    return torch.cat([normals_from_height(3 * lum), lum.clamp(0.05, 1), 0.5 * lum], 1)


def biased_model(image):
    """Not flip-equivariant: always tilts the normal to +x."""
    out = pointwise_model(image).clone()
    n = out[:, :3] + torch.tensor([0.5, 0.0, 0.0], dtype=image.dtype).view(1, 3, 1, 1)
    out[:, :3] = n / n.norm(dim=1, keepdim=True)
    return out


def test_tta_inverse_is_exact_for_equivariant_models():
    image = _image()
    for model, mode in ((pointwise_model, "reflect"), (gradient_model, "circular")):
        mean, score = predict_tta(model, image, shift_mode=mode)
        assert score.shape == (2, 1, 21, 26)
        assert float(score.max()) < 1e-6, (model.__name__, float(score.max()))
        assert_close(mean, model(image), atol=1e-10, rtol=0)


def test_tta_detects_a_model_that_breaks_the_symmetry():
    mean, score = predict_tta(biased_model, _image())
    assert float(score.min()) > 0.1  # the flipped pass disagrees everywhere
    assert abs(float(mean[:, 0].mean())) < 1e-6  # the +x / -x tilts cancel in the mean


def test_tta_rejects_transforms_that_move_the_light():
    with pytest.raises(ValueError, match="horizontal"):
        predict_tta(pointwise_model, _image(), flips=("none", "v"))
    with pytest.raises(ValueError, match="shift_mode"):
        predict_tta(pointwise_model, _image(), shift_mode="wrap")
    with pytest.raises(ValueError, match="non-negative"):
        predict_tta(pointwise_model, _image(), shifts=((-1, 0),))


def test_tta_shift_larger_than_a_tiny_image():
    mean, score = predict_tta(pointwise_model, _image(3, 4), shifts=((0, 0), (5, 6)))
    assert mean.shape == (2, 5, 3, 4) and float(score.max()) < 1e-6


def test_mc_dropout_reproducible_and_restored():
    from solvers.umat.model import UMatNet
    torch.manual_seed(0)
    model = UMatNet(base_channels=8, depth=2, dropout=0.3).eval()
    with torch.no_grad():  # a zero head would hide the dropout: give it weights
        model.head.weight.normal_(0, 0.3)
    image = _image(16, 16).float()
    with torch.no_grad():
        a = predict_mc_dropout(model, image, 4, seed=3)
        b = predict_mc_dropout(model, image, 4, seed=3)
        plain = model(image)
    assert_close(a.mean, b.mean)
    assert float(a.score.mean()) > 0
    with torch.no_grad():
        assert_close(model(image), plain)  # dropout switched off again
    with pytest.raises(ValueError, match="set_mc_dropout"):
        predict_mc_dropout(pointwise_model, image)


def test_ensemble_and_dispatch():
    image = _image()
    same = predict_ensemble([pointwise_model, pointwise_model], image)
    assert float(same.score.max()) < 1e-6
    diff = predict_uncertain([pointwise_model, biased_model], image, "ensemble")
    assert float(diff.score.min()) > 0
    with pytest.raises(ValueError, match="choose one of"):
        predict_uncertain(pointwise_model, image, "bayes")
    with pytest.raises(ValueError, match=">= 2"):
        predict_ensemble([pointwise_model], image)


def test_score_units_and_per_material():
    """Two samples whose normals differ by 2a degrees have a spread of a degrees (a radians in the score)."""
    a = np.deg2rad(10.0)
    n1 = torch.tensor([np.sin(a), 0.0, np.cos(a)])
    n2 = torch.tensor([-np.sin(a), 0.0, np.cos(a)])
    s = torch.zeros(2, 1, 5, 2, 3, dtype=torch.float64)
    s[0, 0, :3] = n1.view(3, 1, 1)
    s[1, 0, :3] = n2.view(3, 1, 1)
    s[0, 0, 3], s[1, 0, 3] = 0.2, 0.4  # roughness std 0.1
    mean, score = summarize_samples(s, score="combined")
    assert_close(mean[0, :3, 0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert_close(score, torch.full((1, 1, 2, 3), a + 0.1, dtype=torch.float64))
    assert_close(per_material_score(score), torch.tensor([a + 0.1], dtype=torch.float64))
    _, normal_only = summarize_samples(s)  # the default: the normal spread alone
    assert_close(normal_only, torch.full((1, 1, 2, 3), a, dtype=torch.float64))
    with pytest.raises(ValueError, match="choose one of"):
        summarize_samples(s, score="roughness")


def test_calibration_metrics():
    rng = np.random.default_rng(0)
    error = rng.random(1000)
    assert spearman(error, error) == pytest.approx(1.0)
    assert spearman(-error, error) == pytest.approx(-1.0)
    assert abs(spearman(rng.random(1000), error)) < 0.1
    _, curve = sparsification_curve(error, error, [0.0, 0.5])
    assert curve[0] == pytest.approx(error.mean())
    assert curve[1] == pytest.approx(np.sort(error)[:500].mean())
    assert error_drop(error, error, 0.2) > 0.15
    assert abs(error_drop(error, rng.random(1000), 0.2)) < 0.05
    assert ause(error, error) == pytest.approx(0.0, abs=1e-12)
    assert ause(error, rng.random(1000)) > ause(error, error + 0.3 * rng.random(1000)) > 0
    with pytest.raises(ValueError, match="equal size"):
        sparsification_curve(error, error[:10])


def test_shrink_score_keeps_the_image_mean():
    from solvers.umat.uncertainty import shrink_score
    score = torch.rand(3, 1, 5, 7, generator=torch.Generator().manual_seed(0))
    assert_close(shrink_score(score, 0.0), score)
    shrunk = shrink_score(score, 0.75)
    assert_close(per_material_score(shrunk), per_material_score(score))
    assert_close(shrunk.std(dim=(2, 3)), 0.25 * score.std(dim=(2, 3)))
    with pytest.raises(ValueError, match="shrink"):
        shrink_score(score, 1.5)
