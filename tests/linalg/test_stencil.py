"""PoissonStencil: exact agreement with its CSR assembly and an independent reference, structure, errors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given
from hypothesis import strategies as st

from sciml.linalg import FACES, PoissonStencil, SparseCSR, enclosed_fluid

from ._problems import PROPERTY, random_mask, reference_poisson_dense

grid_shapes = st.tuples(*(st.integers(1, 5),) * 3)
densities = st.floats(0.0, 0.7)
seeds = st.integers(0, 2**32 - 1)
face_sets = st.sets(st.sampled_from(FACES)).map(lambda s: tuple(sorted(s)))


def integer_vector(*shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-50, 51, shape, generator=g).to(dtype)


@PROPERTY
@given(shape=grid_shapes, density=densities, seed=seeds, faces=face_sets)
def test_stencil_equals_its_csr_and_the_reference_exactly(shape, density, seed, faces):
    solid = random_mask(shape, density, seed)
    A = PoissonStencil(shape, solid, faces, allow_singular=True)
    csr = A.to_csr()
    assert isinstance(csr, SparseCSR) and csr.symmetric and csr.shape == A.shape
    dense = A.to_dense()
    assert torch.equal(csr.to_dense(), dense)
    assert torch.equal(dense, torch.as_tensor(reference_poisson_dense(solid, faces)))
    assert csr.nnz == int((dense != 0).sum())  # no stored zeros

    x = integer_vector(A.shape[0], seed=seed)
    Ax = A.matvec(x)
    assert torch.equal(Ax, csr.matvec(x))
    assert torch.equal(Ax, dense @ x)
    X = integer_vector(A.shape[0], 3, seed=seed + 1)
    AX = A.matvec(X)
    assert AX.shape == X.shape
    for j in range(3):
        assert torch.equal(AX[:, j], A.matvec(X[:, j].contiguous()))
    assert torch.equal(AX, csr.matvec(X))


@PROPERTY
@given(shape=grid_shapes, density=densities, seed=seeds, faces=face_sets)
def test_structure_symmetry_solid_rows_and_diagonal(shape, density, seed, faces):
    solid = random_mask(shape, density, seed)
    A = PoissonStencil(shape, solid, faces, allow_singular=True)
    dense = A.to_dense()
    s = torch.as_tensor(solid.ravel())
    assert torch.equal(dense, dense.T)
    assert not dense[s].any() and not dense[:, s].any()
    assert torch.equal(A.diagonal(), torch.diagonal(dense))
    assert torch.equal(A.diagonal(), A.to_csr().diagonal())
    # off-diagonal entries are 0 or -1, rows of fluid cells sum to their number of Dirichlet faces
    off = dense - torch.diag(torch.diagonal(dense))
    assert set(off.unique().tolist()) <= {0.0, -1.0}
    dirichlet_count = np.zeros(shape)
    for face in faces:
        axis, side = "xyz".index(face[0]), (0 if face[1] == "-" else -1)
        index = [slice(None)] * 3
        index[axis] = side
        dirichlet_count[tuple(index)] += 1
    dirichlet_count[solid] = 0
    assert torch.equal(dense.sum(dim=1), torch.as_tensor(dirichlet_count.ravel()))
    # the matrix-free operator ignores whatever is stored at solid cells
    x = integer_vector(A.shape[0], seed=seed)
    assert torch.equal(A.matvec(x), A.matvec(torch.where(s, 0.0, x)))
    assert not A.matvec(x)[s].any()


@PROPERTY
@given(shape=grid_shapes, density=densities, seed=seeds, faces=face_sets.filter(bool))
def test_spd_on_fluid_cells_once_pockets_are_filled(shape, density, seed, faces):
    solid = random_mask(shape, density, seed)
    solid |= enclosed_fluid(solid, faces)
    assert not enclosed_fluid(solid, faces).any()
    A = PoissonStencil(shape, solid, faces)  # no pockets: no error
    fluid = torch.as_tensor(~solid.ravel())
    if not fluid.any():
        return
    block = A.to_dense()[fluid][:, fluid]
    assert float(torch.linalg.eigvalsh(block)[0]) > 1e-8


@PROPERTY
@given(shape=grid_shapes, density=densities, seed=seeds, faces=face_sets)
def test_psd_with_pockets_and_null_space_is_one_constant_per_pocket(shape, density, seed, faces):
    solid = random_mask(shape, density, seed)
    pockets = enclosed_fluid(solid, faces)
    assert not (pockets & solid).any()
    A = PoissonStencil(shape, solid, faces, allow_singular=True)
    fluid = torch.as_tensor(~solid.ravel())
    if not fluid.any():
        return
    eigenvalues = torch.linalg.eigvalsh(A.to_dense()[fluid][:, fluid])
    assert float(eigenvalues[0]) > -1e-10
    labels, n_pockets = ndi.label(pockets)
    assert int((eigenvalues < 1e-8).sum()) == n_pockets
    for label in range(1, n_pockets + 1):  # the indicator of each pocket is in the null space
        indicator = torch.as_tensor((labels == label).ravel(), dtype=torch.float64)
        assert torch.equal(A.matvec(indicator), torch.zeros_like(indicator))
    if n_pockets:
        with pytest.raises(ValueError, match=f"{int(pockets.sum())} fluid cells.*allow_singular=True"):
            PoissonStencil(shape, solid, faces)


def hollow_box(n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A solid shell (cells 1..n-2) around a 3^3 fluid pocket; returns (solid, pocket)."""
    solid = np.zeros((n, n, n), bool)
    solid[1:n - 1, 1:n - 1, 1:n - 1] = True
    pocket = np.zeros_like(solid)
    pocket[2:n - 2, 2:n - 2, 2:n - 2] = True
    solid[pocket] = False
    return solid, pocket


def test_enclosed_pocket_raises_unless_allowed():
    solid, pocket = hollow_box()
    assert np.array_equal(enclosed_fluid(solid, ("z+",)), pocket)
    assert np.array_equal(enclosed_fluid(solid, FACES), pocket)
    with pytest.raises(ValueError, match=r"27 fluid cells.*enclosed_fluid.*allow_singular=True"):
        PoissonStencil(7, solid, ("z+",))
    A = PoissonStencil(7, solid, ("z+",), allow_singular=True)
    ones = torch.as_tensor(pocket.ravel(), dtype=torch.float64)
    assert torch.equal(A.matvec(ones), torch.zeros_like(ones))
    PoissonStencil(7, solid | enclosed_fluid(solid, ("z+",)), ("z+",))  # the documented fix works


def test_no_dirichlet_face_means_everything_is_enclosed():
    assert enclosed_fluid(np.zeros((3, 3, 3), bool), ()).all()
    with pytest.raises(ValueError, match="27 fluid cells"):
        PoissonStencil(3, None, ())
    assert not enclosed_fluid(np.ones((3, 3, 3), bool), ("z+",)).any()  # no fluid at all
    assert not PoissonStencil(3, np.ones((3, 3, 3), bool), ("z+",)).to_dense().any()


def test_face_touching_regions_are_not_enclosed():
    solid = np.zeros((4, 4, 4), bool)
    solid[:, :, 2] = True  # a wall splits the box into z < 2 and z > 2
    assert np.array_equal(enclosed_fluid(solid, ("z+",)), ~solid & (np.arange(4) < 2)[None, None, :])
    assert not enclosed_fluid(solid, ("z+", "z-")).any()
    assert not enclosed_fluid(solid, ("x-",)).any()  # both halves touch the x- face


def test_flattening_is_c_order_on_a_non_cubic_grid():
    shape = (3, 4, 5)
    A = PoissonStencil(shape, None, ("x-",))
    e = torch.zeros(shape, dtype=torch.float64)
    e[1, 2, 3] = 1.0
    column = A.matvec(e.reshape(-1)).reshape(shape)
    expected = torch.zeros(shape, dtype=torch.float64)
    expected[1, 2, 3] = 6.0
    for nb in [(0, 2, 3), (2, 2, 3), (1, 1, 3), (1, 3, 3), (1, 2, 2), (1, 2, 4)]:
        expected[nb] = -1.0
    assert torch.equal(column, expected)
    corner = torch.zeros(shape, dtype=torch.float64)
    corner[0, 0, 0] = 1.0
    assert float(A.matvec(corner.reshape(-1))[0]) == 4.0  # 3 neighbours + the x- face


def test_default_is_closed_box_with_open_top_and_single_face_string():
    A = PoissonStencil(3)
    assert A.dirichlet == ("z+",) and A.shape == (27, 27) and A.grid == (3, 3, 3)
    diag = A.diagonal().reshape(3, 3, 3)
    links = 3 * (2 * 3 * 3)  # fluid-fluid faces of a 3^3 box
    assert float(diag.sum()) == 2 * links + 9  # each link counts twice, plus the 9 top cells
    assert float(diag[1, 1, 2]) == 6.0 and float(diag[1, 1, 0]) == 5.0 and float(diag[0, 0, 0]) == 3.0
    B = PoissonStencil((2, 3, 4), dirichlet="x-")
    assert B.dirichlet == ("x-",) and B.shape == (24, 24)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 3, 4), bool), r"solid mask has shape \(3, 3, 4\) but the grid is \(3, 3, 3\)"),
    (np.zeros((3, 3), bool), r"solid mask has shape \(3, 3\)"),
    (np.zeros((3, 3, 3)), r"must be boolean.*float64.*astype\(bool\)"),
    (np.zeros((3, 3, 3), np.int64), r"must be boolean.*int64"),
    (torch.zeros(3, 3, 3), r"must be boolean.*float32"),
])
def test_bad_masks_raise_helpful_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        PoissonStencil(3, bad, FACES)


def test_torch_bool_mask_is_accepted():
    solid = random_mask((3, 3, 3), 0.3, 0)
    A = PoissonStencil(3, torch.as_tensor(solid), FACES, allow_singular=True)
    assert torch.equal(A.to_dense(), PoissonStencil(3, solid, FACES, allow_singular=True).to_dense())
    assert torch.equal(A.solid.cpu(), torch.as_tensor(solid)) and torch.equal(A.fluid, ~A.solid)


@pytest.mark.parametrize("faces", [("top",), ("z+", "Z-"), "up"])
def test_unknown_faces_raise(faces):
    with pytest.raises(ValueError, match=r"unknown face.*chosen among \('x-', 'x\+'"):
        PoissonStencil(3, None, faces)
    with pytest.raises(ValueError, match="unknown face"):
        enclosed_fluid(np.zeros((3, 3, 3), bool), faces)


@pytest.mark.parametrize("shape", [0, (3, 3), (3, 0, 3), (1, 2, 3, 4)])
def test_bad_grid_shapes_raise(shape):
    with pytest.raises(ValueError, match="grid shape"):
        PoissonStencil(shape)


def test_to_float32(device):
    solid = random_mask((4, 3, 5), 0.2, 1)
    A = PoissonStencil((4, 3, 5), solid, FACES, allow_singular=True)
    B = A.to(dtype=torch.float32)
    assert B.dtype == torch.float32 and B.grid == A.grid and B.dirichlet == A.dirichlet
    assert B.diagonal().dtype == torch.float32
    x = integer_vector(A.shape[0], seed=0)
    assert torch.equal(B.matvec(x.float()).double(), A.matvec(x))
    assert B.to_csr().dtype == torch.float32
    assert torch.equal(B.to_csr().to_dense(), B.to_dense())
    C = A.to(device=device)
    assert C.device.type == device and C.dtype == torch.float64
    assert torch.equal(C.matvec(x.to(device)).cpu(), A.matvec(x))
    D = PoissonStencil((4, 3, 5), solid, FACES, dtype=torch.float32, device=device, allow_singular=True)
    assert torch.equal(D.to_csr().to_dense().cpu(), B.to_dense())
