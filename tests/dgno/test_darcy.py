import numpy as np
import pytest

from solvers.dgno.darcy import (
    DarcyFEM,
    gaussian_random_field,
    generate_darcy,
    sample_coefficient,
    self_check,
)


@pytest.fixture(scope="module")
def fem():
    return DarcyFEM(n_pix=15, refine=2)


def test_matches_scikit_fem_assembly(fem):
    from skfem import BilinearForm, ElementTriP0, LinearForm, condense, solve
    from skfem.helpers import dot, grad
    a = sample_coefficient("two_phase", 3, 0, n_pix=15)
    ae = fem.basis.with_element(ElementTriP0()).interpolate(fem.element_coefficient(a))

    @BilinearForm
    def k(u, v, w):
        return w["a"] * dot(grad(u), grad(v))

    @LinearForm
    def load(v, w):
        return 10.0 * v

    ref = solve(*condense(k.assemble(fem.basis, a=ae), load.assemble(fem.basis), D=fem.basis.get_dofs()))
    np.testing.assert_allclose(fem.solve_nodal(a), ref, atol=1e-12)


def test_constant_coefficient_torsion_value():
    # -Laplace u = 1 on the unit square: max u = 0.0736713532...
    fem = DarcyFEM(n_pix=9, refine=8, f=1.0)
    u = fem.solve(np.ones((9, 9)))
    assert abs(u[4, 4] - 0.07367135) < 2e-4


def test_two_phase_values_and_pixel_alignment(fem):
    a = sample_coefficient("two_phase", 0, 1, n_pix=15)
    assert set(np.unique(a)) == {5.0, 10.0}
    # mesh aligned with the coefficient grid: no triangle crosses a pixel edge
    pix = np.stack(np.divmod(fem.element_pixel, 15))                  # (2, n_elem)
    verts = fem.mesh.p[:, fem.mesh.t] * 14                            # (2, 3, n_elem) in pixel units
    assert np.all(np.abs(verts - pix[:, None, :]) <= 0.5 + 1e-12)
    a_el = fem.element_coefficient(a)
    assert set(np.unique(a_el)) == {5.0, 10.0}


def test_self_check_h_vs_h2_and_maximum_principle():
    a = np.stack([sample_coefficient(k, 1, 0, n_pix=15) for k in ("two_phase", "lognormal")])
    res = self_check(a, refine=1)
    assert res.passed, res
    assert res.rel_diff_h_h2 < 5e-3 and res.min_u >= 0.0


def test_generator_seeded_cached_and_prefix_stable(tmp_path):
    d3 = generate_darcy(3, seed=7, n_pix=15, refine=1, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["darcy_two_phase_n3_seed7_p15_r1.npz"]
    again = generate_darcy(3, seed=7, n_pix=15, refine=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(d3.u, again.u)
    d2 = generate_darcy(2, seed=7, n_pix=15, refine=1)
    np.testing.assert_array_equal(d3.a[:2], d2.a)
    other = generate_darcy(1, seed=8, n_pix=15, refine=1)
    assert not np.array_equal(other.a[0], d3.a[0])
    assert (d3.u > 0)[:, 1:-1, 1:-1].all() and np.all(d3.u[:, 0] == 0)
    assert d3.grid().shape == (225, 2)
    assert again.cached and not d3.cached and again.seconds == d3.seconds > 0


def test_grf_statistics_and_errors(fem):
    g = np.stack([gaussian_random_field(15, np.random.default_rng(i)) for i in range(200)])
    assert abs(g.mean()) < 0.01
    with pytest.raises(ValueError, match="shape"):
        fem.solve(np.ones((3, 3)))
    with pytest.raises(ValueError, match="positive"):
        fem.solve(-np.ones((15, 15)))
    with pytest.raises(ValueError, match="kind"):
        sample_coefficient("foo", 0, 0)
