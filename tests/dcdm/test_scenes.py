"""DCDM scenes: rasterisation, sealing of pockets, right-hand sides, solvability, splits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sciml.linalg import cg, enclosed_fluid
from solvers.dcdm.scenes import (Box, Plate, Scene, SceneSpec, Sphere, get_scene, heldout_scenes,
                                 training_scenes)

ALL = training_scenes() + heldout_scenes()
NAMES = [spec.name for spec in ALL]


@pytest.fixture(scope="module")
def built():
    """Every scene at 16^3 and 32^3, built once."""
    return {(spec.name, n): spec.at(n) for spec in ALL for n in (16, 32)}


def test_training_and_heldout_are_disjoint_and_named_uniquely():
    train, held = {s.name for s in training_scenes()}, {s.name for s in heldout_scenes()}
    assert len(train) == len(training_scenes()) >= 6
    assert len(held) == len(heldout_scenes()) >= 6
    assert not train & held
    for name in NAMES:
        assert get_scene(name).name == name
    with pytest.raises(KeyError, match="available"):
        get_scene("teapot")


@pytest.mark.parametrize("n", [16, 32])
@pytest.mark.parametrize("name", NAMES)
def test_scene_builds_sealed_with_open_fluid(built, name, n):
    scene = built[(name, n)]
    assert scene.shape == (n, n, n) and scene.solid.dtype == bool and scene.solid.shape == (n, n, n)
    assert scene.dirichlet == ("z+",)
    assert not enclosed_fluid(scene.solid, scene.dirichlet).any()
    assert scene.fluid[:, :, -1].any(), "no fluid touches the open top"
    if name != "empty":
        assert scene.solid.any(), f"{name} lost its obstacles at {n}^3"


@pytest.mark.parametrize("name", NAMES)
def test_rhs_zero_on_solid_unit_norm_deterministic(built, name):
    scene = built[(name, 16)]
    b = scene.rhs(3)
    assert b.shape == (16 ** 3,) and b.dtype == torch.float64
    assert torch.linalg.vector_norm(b).item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(b.reshape(scene.shape)[torch.as_tensor(scene.solid)] == 0)
    assert torch.equal(b, scene.rhs(3))
    assert not torch.allclose(b, scene.rhs(4))


@pytest.mark.parametrize("name", NAMES)
def test_cg_converges_on_every_scene(built, name):
    scene = built[(name, 16)]
    A, b = scene.stencil(), scene.rhs(0)
    result = cg(A, b, rtol=1e-8)
    assert result.converged, result
    assert torch.linalg.vector_norm(b - A.matvec(result.x)).item() < 1e-7


def test_stencil_follows_dtype_and_matches_the_mask(built):
    scene = built[("sphere", 16)]
    A = scene.stencil(torch.float32)
    assert A.dtype == torch.float32 and A.shape == (16 ** 3, 16 ** 3)
    assert torch.equal(A.solid.cpu(), torch.as_tensor(scene.solid))
    assert torch.all(A.diagonal().reshape(scene.shape)[torch.as_tensor(scene.solid)] == 0)


def test_rhs_is_divergence_of_a_wall_respecting_velocity(built):
    scene = built[("box_plate", 16)]
    u, v, w = scene.velocity(0)
    assert u.shape == (17, 16, 16) and v.shape == (16, 17, 16) and w.shape == (16, 16, 17)
    assert not u[0].any() and not u[-1].any() and not v[:, 0].any() and not v[:, -1].any() and not w[:, :, 0].any()
    assert np.abs(w[:, :, -1]).max() > 0, "the open top must let fluid through"
    solid = scene.solid
    assert not u[1:-1][solid[1:] | solid[:-1]].any()
    assert not w[:, :, 1:-1][solid[:, :, 1:] | solid[:, :, :-1]].any()
    div = np.diff(u, axis=0) + np.diff(v, axis=1) + np.diff(w, axis=2)
    b = scene.rhs(0).numpy().reshape(scene.shape)
    np.testing.assert_allclose(b, -div / np.linalg.norm(div), atol=1e-14)


def test_rhs_options():
    scene = get_scene("sphere").at(12)
    smooth, noisy = scene.rhs(0), scene.rhs(0, noise=0.5)
    assert not torch.allclose(smooth, noisy)
    assert torch.equal(scene.rhs(np.random.default_rng(5)), scene.rhs(5))
    assert scene.rhs(0, dtype=torch.float32).dtype == torch.float32


def test_closed_box_rhs_is_in_the_range():
    scene = SceneSpec("closed", (Sphere((0.5, 0.5, 0.5), 0.2),), dirichlet=()).at(12)
    b = scene.rhs(1)
    assert abs(b.sum().item()) < 1e-12  # orthogonal to the constants, the null space
    result = cg(scene.stencil(), b, rtol=1e-8)
    assert result.converged


def test_resolution_independence():
    fractions = [get_scene("sphere").at(n).solid.mean() for n in (32, 64)]
    exact = 4 / 3 * np.pi * 0.2 ** 3
    assert fractions == pytest.approx([exact, exact], rel=0.06)


def test_pockets_are_sealed_and_a_full_plate_never_leaks():
    n = 16
    shell = np.zeros((n, n, n), bool)
    shell[4:12, 4:12, 4:12] = True
    shell[6:10, 6:10, 6:10] = False  # a cavity
    assert Scene("shell", (n, n, n), shell).solid[6:10, 6:10, 6:10].all()
    for n in (12, 20, 33):  # a tilted plate across the whole box shuts off everything below it
        plate = Plate((0.5, 0.5, 0.5), (1.0, 1.0), 0.001, (20.0, 10.0, 0.0))
        scene = SceneSpec("lid", (plate,)).at(n)
        assert scene.solid[:, :, 0].all()
        assert scene.fluid[:, :, -1].any()
    with pytest.raises(ValueError, match="no fluid"):
        SceneSpec("full", (Box((0.5, 0.5, 0.5), (0.6, 0.6, 0.6)),)).at(8)
