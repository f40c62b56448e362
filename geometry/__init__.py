"""Geometry: meshes, voxel grids, slices and point clouds (may import ``sciml``, never ``solvers``).

* :func:`voxelize` / :func:`voxelize_mesh` — inside/outside of a closed triangle mesh at
  cell centres (numba ray-parity / winding kernel); :func:`check_closed_mesh` validates a
  mesh; :func:`cell_centres` gives the grid coordinates.
"""
from geometry.voxelize import cell_centres, check_closed_mesh, voxelize, voxelize_mesh

__all__ = ["voxelize", "voxelize_mesh", "check_closed_mesh", "cell_centres"]
