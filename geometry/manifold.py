"""A manifold known through points: kNN graph, tangent frames, transport, Laplacians.

:class:`ManifoldGraph` bundles the sparse geometry RVGP needs, all with O(N k) memory:

* :mod:`geometry.knn` -- the undirected kNN graph and the scalar graph Laplacian;
* :mod:`geometry.tangent` -- tangent frames by local PCA (dimension given or estimated);
* :mod:`geometry.connection_laplacian` -- Procrustes transport and the connection Laplacian.

Build it from a point cloud (:meth:`ManifoldGraph.from_points`) or a triangle mesh
(:meth:`ManifoldGraph.from_mesh`, trimesh).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from geometry.connection_laplacian import (
    connection_laplacian,
    edge_weights,
    procrustes_transport,
)
from geometry.knn import _as_points, graph_laplacian, knn_edges
from geometry.tangent import frames_from_normals, tangent_frames

__all__ = ["ManifoldGraph"]

logger = logging.getLogger(__name__)


@dataclass
class ManifoldGraph:
    """Sparse geometry of a sampled manifold.

    Attributes
    ----------
    points : (N, D) float64
    edges : (E, 2) int64
        Unique undirected edges, ``i < j``.
    frames : (N, D, d) float64
        Orthonormal tangent frames.
    transport : (E, d, d) float64
        ``O_ij`` mapping frame-``j`` to frame-``i`` coordinates.
    weights : (E,) float64
    timings : dict
        Seconds spent per stage.
    """

    points: np.ndarray
    edges: np.ndarray
    frames: np.ndarray
    transport: np.ndarray
    weights: np.ndarray
    timings: dict = field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_points(cls, points, dim: int | None = None, k: int = 10, k_pca: int = 15, threshold: float = 0.8,
                    weights: str = "unweighted", workers: int = -1, frames: str = "pca") -> ManifoldGraph:
        """Geometry of a point cloud (RVGP defaults: ``k = 10``, PCA on 15 points, 0.8 variance).

        Parameters
        ----------
        points : (N, D) array or tensor
        dim : int, optional
            Manifold dimension; estimated from the local PCA when ``None``.
        k : int
            Graph neighbours per point.
        k_pca : int
            PCA neighbourhood size (the point included).
        threshold : float
            Explained variance of the dimension estimate.
        weights : {"unweighted", "gaussian"}
        workers : int
            Threads of the neighbour queries (``-1``: all).
        frames : {"pca", "jet"}
            Local PCA (RVGP) or PCA refined by a local quadratic fit centred at each point
            (:func:`geometry.tangent.jet_refine`; an order more accurate, our addition).
        """
        pts = _as_points(points)
        timings = {}
        start = time.perf_counter()
        edges = knn_edges(pts, k, workers)
        timings["graph_s"] = time.perf_counter() - start
        start = time.perf_counter()
        tangent = tangent_frames(pts, dim=dim, k=k_pca, threshold=threshold, workers=workers, method=frames)
        timings["frames_s"] = time.perf_counter() - start
        return cls._finish(pts, edges, tangent, weights, timings)

    @classmethod
    def from_mesh(cls, mesh, k: int | None = None, frames: str = "normals",
                  weights: str = "unweighted") -> ManifoldGraph:
        """Geometry of a triangle mesh's vertices.

        Parameters
        ----------
        mesh : trimesh.Trimesh
        k : int, optional
            ``None``: the graph is the mesh's edges; an integer: a kNN graph on the vertices.
        frames : {"normals", "pca", "jet"}
            Tangent frames orthogonal to the vertex normals, or by local PCA (``d = 2``), or
            PCA refined by a local quadratic fit.
        weights : {"unweighted", "gaussian"}
        """
        vertices = getattr(mesh, "vertices", None)
        if vertices is None or getattr(mesh, "faces", None) is None:
            raise ValueError(f"from_mesh expects a trimesh.Trimesh, got {type(mesh).__name__}; "
                             "use from_points for point clouds")
        pts = _as_points(vertices)
        timings = {}
        start = time.perf_counter()
        if k is None:
            edges = np.unique(np.sort(np.asarray(mesh.edges_unique, dtype=np.int64), axis=1), axis=0)
        else:
            edges = knn_edges(pts, k)
        timings["graph_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if frames == "normals":
            tangent = frames_from_normals(np.asarray(mesh.vertex_normals))
        elif frames in ("pca", "jet"):
            tangent = tangent_frames(pts, dim=2, method=frames)
        else:
            raise ValueError(f"unknown frames {frames!r}; use 'normals', 'pca' or 'jet'")
        timings["frames_s"] = time.perf_counter() - start
        return cls._finish(pts, edges, tangent, weights, timings)

    @classmethod
    def _finish(cls, pts, edges, frames, weights, timings) -> ManifoldGraph:
        start = time.perf_counter()
        transport = procrustes_transport(frames, edges)
        timings["transport_s"] = time.perf_counter() - start
        w = edge_weights(pts, edges, weights)
        logger.debug("manifold graph: %d points, %d edges, dim %d, %s", len(pts), len(edges), frames.shape[2],
                     timings)
        return cls(pts, edges, frames, transport, w, timings)

    # -- properties -----------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of points ``N``."""
        return self.points.shape[0]

    @property
    def ambient_dim(self) -> int:
        """Ambient dimension ``D``."""
        return self.points.shape[1]

    @property
    def dim(self) -> int:
        """Manifold (frame) dimension ``d``."""
        return self.frames.shape[2]

    # -- operators ------------------------------------------------------------------------
    def connection_laplacian(self, normalization: str | None = None) -> sp.csr_matrix:
        """Connection Laplacian ``(N d, N d)``, symmetric PSD (see :mod:`geometry.connection_laplacian`)."""
        return connection_laplacian(self.transport, self.edges, self.n, self.weights, normalization)

    def graph_laplacian(self) -> sp.csr_matrix:
        """Scalar graph Laplacian ``D - A`` ``(N, N)`` with the same edges and weights."""
        return graph_laplacian(self.edges, self.n, self.weights)

    # -- vector fields --------------------------------------------------------------------
    def to_frame(self, vectors) -> np.ndarray:
        """Ambient vectors ``(N, D)`` to frame coordinates ``(N, d)`` (projection onto ``T_i``)."""
        return np.einsum("nad,na->nd", self.frames, np.asarray(vectors, dtype=np.float64))

    def to_ambient(self, coords) -> np.ndarray:
        """Frame coordinates ``(N, d)`` to ambient vectors ``(N, D)``, tangent to the frames."""
        return np.einsum("nad,nd->na", self.frames, np.asarray(coords, dtype=np.float64))

    def project(self, vectors) -> np.ndarray:
        """Tangential part ``T_i T_i^T v_i`` of ambient vectors ``(N, D)``."""
        return self.to_ambient(self.to_frame(vectors))
