"""capture(): input validation, odd sizes, tiling, uncertainty maps, export and re-rendering."""
import json

import numpy as np
import pytest
import torch

from solvers.umat.capture import CaptureResult, capture, check_image
from solvers.umat.model import UMatNet


def assert_close(actual, expected, atol=1e-6, rtol=1e-5, msg=""):
    """Like torch.testing.assert_close (whose first call imports torch.distributed, seconds on a busy CPU)."""
    assert actual.shape == expected.shape, (msg, actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (msg, actual.dtype, expected.dtype)
    assert torch.allclose(actual, expected, atol=atol, rtol=rtol), (msg, float((actual - expected).abs().max()))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = UMatNet(base_channels=8, depth=2, dropout=0.2).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.2)  # not the flat zero-init prediction
    return model


@pytest.fixture(scope="module")
def image():
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import scanner_image
    return scanner_image(generate_materials(1, (45, 37), seed=2_000_500))


@pytest.mark.parametrize("bad, match", [
    (torch.rand(1, 4, 8, 8), "3 colour"),
    (torch.rand(8, 8), "expected"),
    (-torch.rand(3, 8, 8), "negative"),
    (torch.full((3, 8, 8), float("nan")), "NaN"),
    ((torch.rand(3, 8, 8) * 255).to(torch.uint8), "dtype"),
    (np.zeros((8, 8, 3), dtype=np.uint8), "dtype"),
])
def test_bad_input_raises_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        check_image(bad)


def test_non_array_raises_type_error():
    with pytest.raises(TypeError, match="tensor"):
        check_image([[1.0]])


def test_numpy_channel_last_is_accepted(image):
    arr = image[0].permute(1, 2, 0).numpy()
    assert_close(check_image(arr), image)


def test_capture_odd_size_with_uncertainty(tiny_model, image):
    for method in ("tta", "mc_dropout"):
        res = capture(image, tiny_model, tile=32, overlap=8, uncertainty=method)
        assert res.normal.shape == (1, 3, 45, 37) and res.roughness.shape == (1, 1, 45, 37)
        assert_close(res.normal.norm(dim=1), torch.ones(1, 45, 37))
        assert float(res.normal[:, 2].min()) > 0
        assert float(res.roughness.min()) >= 0.05 and float(res.specular.max()) <= 1
        assert res.uncertainty.shape == (1, 1, 45, 37) and float(res.uncertainty.min()) >= 0
        assert float(res.uncertainty.max()) > 0
        assert res.material_score.shape == (1,) and res.method == method
    plain = capture(image, tiny_model, tile=32, overlap=8, uncertainty=None)
    assert plain.uncertainty is None and plain.material_score is None
    with pytest.raises(ValueError, match="uncertainty"):
        capture(image, tiny_model, uncertainty="ensemble")


def test_capture_single_tile_equals_model(tiny_model, image):
    """An image inside one tile goes through the network once (up to the tile padding)."""
    crop = image[..., :32, :32]
    res = capture(crop, tiny_model, tile=32, overlap=8, uncertainty=None)
    with torch.no_grad():
        assert_close(res.prediction(), tiny_model(crop), atol=1e-5, rtol=0)


def test_export_and_rerender(tiny_model, image, tmp_path):
    from solvers.umat.export import load_png16
    res = capture(image, tiny_model, tile=32, overlap=8, uncertainty="tta")
    files = res.export(tmp_path)
    for name in ("normal", "roughness", "specular", "uncertainty", "albedo"):
        assert files[name].exists(), name
    meta = json.loads(files["maps_json"].read_text())
    assert meta["normal_convention"] == "opengl"
    normal = load_png16(files["normal"]) * 2 - 1
    np.testing.assert_allclose(normal, res.normal[0].permute(1, 2, 0).numpy(), atol=1e-4)
    out = res.rerender([[0.0, 0.0, 1.0], [0.3, 0.2, 0.9]])
    assert out.shape == (1, 3, 45, 37) and torch.isfinite(out).all() and float(out.min()) >= 0
    # a light straight above a flat captured surface without specular shows the albedo
    flat = CaptureResult(normal=torch.cat([torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 4)], 1),
                         roughness=torch.full((1, 1, 4, 4), 0.5), specular=torch.zeros(1, 1, 4, 4),
                         albedo=torch.full((1, 3, 4, 4), 0.3))
    assert_close(flat.rerender([0.0, 0.0, 1.0]), torch.full((1, 3, 4, 4), 0.3))


def test_capture_follows_the_image_dtype_and_leaves_the_model_alone(tiny_model, image):
    tiny_model.train()
    try:
        res = capture(image.double()[..., :20, :20], tiny_model, tile=16, overlap=4, uncertainty=None)
    finally:
        was_training = tiny_model.training
        tiny_model.eval()
    assert res.normal.dtype == torch.float64
    assert next(tiny_model.parameters()).dtype == torch.float32 and was_training
