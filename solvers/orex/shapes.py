"""Test shapes for OReX, all available offline: analytic meshes and meshes bundled with pyvista.

Each shape is a watertight, consistently oriented ``trimesh.Trimesh`` plus its genus.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SHAPES", "make_shape", "shape_planes", "analytic_sdf"]


TORUS = {"major_radius": 0.6, "minor_radius": 0.25}
CAPSULE = {"height": 1.2, "radius": 0.4}
TWO_SPHERES = {"centres": [[-0.35, 0, 0], [0.4, 0.1, 0.05]], "radii": [0.55, 0.45]}


def analytic_sdf(name: str):
    """Signed distance ``(N, 3) -> (N,)`` (negative inside) of an analytic test shape:
    ``"sphere"``, ``"torus"``, ``"capsule"`` or ``"two_spheres"`` (a union of two balls)."""
    if name == "sphere":
        return lambda p: np.linalg.norm(p, axis=1) - 1.0
    if name == "torus":
        major, minor = TORUS["major_radius"], TORUS["minor_radius"]
        return lambda p: np.hypot(np.hypot(p[:, 0], p[:, 1]) - major, p[:, 2]) - minor
    if name == "capsule":
        half, radius = 0.5 * CAPSULE["height"], CAPSULE["radius"]
        return lambda p: np.linalg.norm(p - np.clip(p, [0, 0, -half], [0, 0, half]), axis=1) - radius
    if name == "two_spheres":
        centres, radii = np.asarray(TWO_SPHERES["centres"], float), np.asarray(TWO_SPHERES["radii"], float)
        return lambda p: np.min(np.linalg.norm(p[:, None, :] - centres[None], axis=2) - radii[None], axis=1)
    raise KeyError(f"no analytic signed distance for {name!r}; known: sphere, torus, capsule, two_spheres")


def _two_spheres_mesh(resolution: int = 64):
    from geometry.meshing import mesh_from_field
    centres, radii = np.asarray(TWO_SPHERES["centres"], float), np.asarray(TWO_SPHERES["radii"], float)
    lo = (centres - radii[:, None]).min(axis=0) - 0.1
    hi = (centres + radii[:, None]).max(axis=0) + 0.1
    mesh, _ = mesh_from_field(analytic_sdf("two_spheres"), resolution, (lo, hi))
    return mesh


def _pyvista(name: str):
    import trimesh
    from pyvista import examples
    surface = getattr(examples, f"load_{name}")().triangulate()
    mesh = trimesh.Trimesh(np.asarray(surface.points, float), np.asarray(surface.regular_faces), process=True)
    trimesh.repair.fix_normals(mesh)
    return mesh


def make_shape(name: str):
    """``(mesh, genus)`` of a named test shape (see :data:`SHAPES`).

    The analytic shapes are tessellated finely enough that their slices match the analytic
    sections (torus 256 x 128, capsule 128 x 128 sections; worst plane, polygon against the
    analytic section: 0.996, 0.998, sphere 0.998). A network fits a smooth surface, so facet
    depth counts as its error against the slices, magnified ``1 / sin(angle)`` times on a plane
    that meets the surface at a shallow angle: at 128 x 64 one torus plane's polygon was 0.984
    from the analytic section.
    """
    import trimesh
    if name == "sphere":
        return trimesh.creation.icosphere(subdivisions=4, radius=1.0), 0
    if name == "torus":
        return trimesh.creation.torus(**TORUS, major_sections=256, minor_sections=128), 1
    if name == "capsule":
        return trimesh.creation.capsule(**CAPSULE, count=[128, 128]), 0
    if name == "two_spheres":
        return _two_spheres_mesh(), 0
    if name == "nut":  # pyvista's bundled nut.ply (a hexagonal nut: genus 1)
        return _pyvista("nut"), 1
    raise KeyError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")


SHAPES = ("sphere", "torus", "capsule", "two_spheres", "nut")


def shape_planes(mesh, n_planes: int, seed: int = 0, spread: float = 0.6):
    """``n_planes`` random planes (random orientation) through the mesh's bounding box centre region."""
    from geometry.mesh_slicing import random_planes
    lo, hi = mesh.bounds
    radius = 0.5 * float(np.max(hi - lo))
    return random_planes(n_planes, centre=0.5 * (lo + hi), radius=radius, spread=spread, seed=seed)
