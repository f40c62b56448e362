"""Geometry: meshes, voxel grids, slices and point clouds (may import ``sciml``, never ``solvers``).

* :func:`voxelize` / :func:`voxelize_mesh` — inside/outside of a closed triangle mesh at
  cell centres (numba ray-parity / winding kernel); :func:`check_closed_mesh` validates a
  mesh; :func:`cell_centres` gives the grid coordinates.
* Cross-sections (:mod:`geometry.slices`): :class:`Plane`, :class:`Contour`,
  :class:`CrossSection`, :class:`SliceSet`, ``.csl`` / JSON files through
  :func:`read_slices` / :func:`write_slices`, validation errors as :class:`SliceError`.
* :func:`slice_mesh` cuts a triangle mesh by planes into contours (:func:`random_planes`
  draws planes); :func:`points_in_polygons` is the numba in/out test with holes.
* Point-cloud manifolds (:mod:`geometry.manifold`): :class:`ManifoldGraph` holds the kNN
  graph, local-PCA tangent frames, Procrustes transports and the sparse connection and
  scalar graph Laplacians, in ``O(N k)`` memory.
* Meshing (:mod:`geometry.meshing`): :func:`extract_mesh` / :func:`mesh_from_field`
  (marching cubes on a batched grid) and :func:`export_mesh` (.ply/.obj/.stl/.vtp).
"""
from geometry.manifold import ManifoldGraph
from geometry.mesh_slicing import random_planes, slice_mesh
from geometry.meshing import export_mesh, extract_mesh, mesh_from_field
from geometry.polygon import points_in_polygons
from geometry.slices import Contour, CrossSection, Plane, SliceError, SliceSet, read_slices, write_slices
from geometry.voxelize import cell_centres, check_closed_mesh, voxelize, voxelize_mesh

__all__ = ["voxelize", "voxelize_mesh", "check_closed_mesh", "cell_centres", "Plane", "Contour", "CrossSection",
           "SliceSet", "SliceError", "read_slices", "write_slices", "slice_mesh", "random_planes",
           "points_in_polygons", "extract_mesh", "mesh_from_field", "export_mesh", "ManifoldGraph"]
