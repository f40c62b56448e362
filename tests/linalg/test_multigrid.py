"""GeometricMultigrid: SPD V-cycle, exact Galerkin coarsening, fast h-independent MG-PCG, dtypes, odd grids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sciml.linalg import PoissonStencil, cg, enclosed_fluid, pcg
from sciml.linalg.multigrid import GeometricMultigrid, coarsen, level_from_stencil, mgpcg

from ._problems import random_mask, randn, sphere_mask

FACE_SETS = [("z+",), ("x-", "x+"), ("x-", "x+", "y-", "y+", "z-", "z+"), ("y-",)]


def obstacle_problem(shape, faces=("z+",), seed=0, dtype=torch.float64, device="cpu"):
    """A sphere plus a thin plate (one cell thick, with a gap) in an ``nx x ny x nz`` box; random rhs."""
    nx, ny, nz = shape
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    solid = (i - nx / 2) ** 2 + (j - ny / 2) ** 2 + (k - 0.4 * nz) ** 2 <= (min(shape) / 5) ** 2
    solid |= (k == int(0.75 * nz)) & (i < 0.6 * nx)
    solid |= enclosed_fluid(solid, faces)
    A = PoissonStencil(shape, solid, faces, dtype=dtype, device=device)
    b = randn(A.shape[0], seed=seed, device=device, dtype=dtype) * A.fluid.reshape(-1)
    return A, b


def fluid_vector(A, seed, k=None):
    shape = (A.shape[0],) if k is None else (A.shape[0], k)
    x = randn(*shape, seed=seed, device=A.device, dtype=A.dtype)
    mask = A.fluid.reshape(-1).to(A.dtype)
    return x * (mask if k is None else mask[:, None])


@pytest.mark.parametrize("smoother, extra", [("rbgs", {}), ("jacobi", {}), ("rbgs", {"boundary_sweeps": 1}),
                                             ("jacobi", {"pre": 3, "post": 3, "omega": 2 / 3})])
@pytest.mark.parametrize("shape, faces", [((12, 12, 12), ("z+",)), ((11, 8, 13), ("x-", "y+"))])
def test_vcycle_is_symmetric(smoother, extra, shape, faces):
    A, _ = obstacle_problem(shape, faces)
    M = GeometricMultigrid(A, smoother=smoother, **extra)
    for seed in range(3):
        x, y = fluid_vector(A, seed), fluid_vector(A, seed + 10)
        lhs, rhs = torch.dot(M.matvec(x), y), torch.dot(x, M.matvec(y))
        assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


@pytest.mark.parametrize("smoother", ["rbgs", "jacobi"])
def test_vcycle_is_spd_on_fluid_cells_and_zero_on_solid(smoother):
    A, _ = obstacle_problem((7, 6, 9), ("x-", "z+"))
    M = GeometricMultigrid(A, smoother=smoother)
    fluid = A.fluid.reshape(-1)
    dense = M.matvec(torch.eye(A.shape[0], dtype=A.dtype))
    assert torch.all(dense[~fluid] == 0) and torch.all(dense[:, ~fluid] == 0)
    block = dense[fluid][:, fluid]
    assert torch.allclose(block, block.T, rtol=0, atol=1e-12 * block.abs().max())
    assert torch.linalg.eigvalsh(0.5 * (block + block.T)).min() > 0
    for seed in range(5):
        x = fluid_vector(A, seed)
        assert torch.dot(x, M.matvec(x)) > 0


def test_output_ignores_and_zeroes_solid_cells():
    A, b = obstacle_problem((10, 9, 8))
    M = GeometricMultigrid(A)
    junk = randn(A.shape[0], seed=3) * A.solid.reshape(-1)
    z = M.matvec(b + junk)
    assert torch.all(z[A.solid.reshape(-1)] == 0)
    assert torch.equal(z, M.matvec(b))


def test_block_of_vectors_equals_columns():
    A, _ = obstacle_problem((9, 10, 8), ("x+",))
    M = GeometricMultigrid(A)
    X = fluid_vector(A, 0, k=3)
    Z = M.matvec(X)
    assert Z.shape == X.shape
    for j in range(3):
        assert torch.allclose(Z[:, j], M.matvec(X[:, j].contiguous()), rtol=1e-12, atol=1e-12)


def test_single_level_is_the_exact_inverse():
    A, b = obstacle_problem((6, 5, 7), ("y-",))
    z = GeometricMultigrid(A, levels=1).matvec(b)
    assert torch.allclose(A.matvec(z), b, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_coarse_operator_is_half_the_galerkin_product(seed):
    shape = [(4, 4, 4), (5, 6, 3), (7, 3, 5), (3, 4, 6)][seed]
    solid = random_mask(shape, 0.3, seed)
    A = PoissonStencil(shape, solid, FACE_SETS[seed], allow_singular=True)
    coarse = coarsen(level_from_stencil(A))
    P = np.zeros((A.shape[0], int(np.prod(coarse.grid))))
    for c, (i, j, k) in enumerate(np.ndindex(*shape)):
        if not solid[i, j, k]:
            P[c, np.ravel_multi_index((i // 2, j // 2, k // 2), coarse.grid)] = 1.0
    galerkin = P.T @ A.to_dense().numpy() @ P
    n_c = P.shape[1]
    dense = coarse.apply(torch.eye(n_c, dtype=torch.float64).reshape(*coarse.grid, n_c)).reshape(n_c, n_c)
    np.testing.assert_array_equal(dense.numpy(), 0.5 * galerkin)


def _iterations(A, b, **kwargs) -> int:
    result = mgpcg(A, b, rtol=1e-6, **kwargs)
    assert result.converged and result.residual <= 1e-6
    return result.iterations


@pytest.mark.parametrize("faces", FACE_SETS)
def test_mgpcg_converges_fast_and_h_independently(faces):
    its = {}
    for n in (16, 32):
        A, b = obstacle_problem((n, n, n), faces)
        its[n] = _iterations(A, b)
        plain = cg(A, b, rtol=1e-6)
        assert its[n] <= 15 and its[n] < plain.iterations / 5
    assert its[32] <= its[16] + 3


def test_jacobi_smoother_converges_fast():
    A, b = obstacle_problem((32, 32, 32))
    assert _iterations(A, b, smoother="jacobi") <= 20


@pytest.mark.parametrize("shape", [(15, 15, 15), (20, 24, 17), (33, 9, 5), (1, 12, 12)])
def test_odd_and_flat_grids(shape):
    A, b = obstacle_problem(shape, ("x+", "z-"))
    assert _iterations(A, b) <= 15


def test_float32_operator():
    A, b = obstacle_problem((24, 24, 24), dtype=torch.float32)
    M = GeometricMultigrid(A)
    assert M.dtype == torch.float32 and M.matvec(b).dtype == torch.float32
    # float32 A x limits the true residual to ~1e-6 here, whatever the Krylov precision
    result = pcg(A, b, M=M, rtol=1e-5)  # float64 Krylov vectors, float32 V-cycle
    assert result.converged and result.iterations <= 12
    single = pcg(A, b, M=M, rtol=1e-5, dtype=None)  # all in float32
    assert single.converged and single.iterations <= 12


def test_float32_cycle_under_float64_operator():
    A, b = obstacle_problem((24, 24, 24))
    M = GeometricMultigrid(A, dtype=torch.float32)
    assert M.dtype == torch.float64 and M.matvec(b).dtype == torch.float64
    x, y = fluid_vector(A, 1), fluid_vector(A, 2)
    assert abs(torch.dot(M.matvec(x), y) - torch.dot(x, M.matvec(y))) <= 1e-5 * abs(torch.dot(M.matvec(x), y))
    reference = mgpcg(A, b, rtol=1e-8).iterations
    assert abs(mgpcg(A, b, rtol=1e-8, mg_dtype=torch.float32).iterations - reference) <= 1


def test_mgpcg_reports_setup_and_matches_pcg():
    A, b = obstacle_problem((16, 16, 16))
    result = mgpcg(A, b, rtol=1e-8, smoother="jacobi", maxiter=50)
    assert result.info["setup_time"] > 0 and result.info["grids"][0] == (16, 16, 16)
    again = pcg(A, b, M=GeometricMultigrid(A, smoother="jacobi"), rtol=1e-8)
    assert again.iterations == result.iterations and torch.allclose(again.x, result.x)


def test_to_rebuilds_the_hierarchy():
    A, b = obstacle_problem((8, 8, 8))
    M32 = GeometricMultigrid(A).to(dtype=torch.float32)
    assert M32.dtype == torch.float32
    assert torch.allclose(M32.matvec(b.float()).double(), GeometricMultigrid(A).matvec(b), rtol=1e-4, atol=1e-5)


def test_errors_name_the_fix():
    A, _ = obstacle_problem((8, 8, 8))
    with pytest.raises(ValueError, match="must be equal"):
        GeometricMultigrid(A, pre=2, post=1)
    with pytest.raises(ValueError, match="rbgs"):
        GeometricMultigrid(A, smoother="sor")
    with pytest.raises(TypeError, match="PoissonStencil"):
        GeometricMultigrid(A.to_csr())
    with pytest.raises(ValueError, match="dtype mismatch"):
        GeometricMultigrid(A).matvec(torch.ones(A.shape[0], dtype=torch.float32))
    pocket = sphere_mask(8, radius=2.5) & ~sphere_mask(8, radius=1.5)
    singular = PoissonStencil(8, pocket, ("z+",), allow_singular=True)
    with pytest.raises(ValueError, match="singular"):
        GeometricMultigrid(singular, levels=1)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    A, b = obstacle_problem((20, 24, 17), ("x+", "z-"))
    Ac, bc = obstacle_problem((20, 24, 17), ("x+", "z-"), device="cuda")
    z, zc = GeometricMultigrid(A).matvec(b), GeometricMultigrid(Ac).matvec(bc)
    assert zc.device.type == "cuda" and torch.allclose(zc.cpu(), z, rtol=1e-10, atol=1e-10)
    result = mgpcg(Ac, bc, rtol=1e-6)
    assert result.converged and result.iterations <= 15
