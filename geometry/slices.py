"""Planar cross-sections: planes of any orientation carrying closed contours with holes.

Data model
----------
* :class:`Plane` — ``normal . x + offset = 0`` with a unit normal, plus an in-plane
  orthonormal frame ``(u, v)`` (``u x v = normal``) for 2-D coordinates.
* :class:`Contour` — a closed ring of 3-D points on the plane; ``hole=True`` marks the
  boundary of a hole (material outside it). The inside of a cross-section is decided by
  the even-odd rule over all its contours, so holes and islands need no orientation;
  ``hole`` is kept as metadata (it must equal "nested an odd number of times").
* :class:`CrossSection` — one plane and its contours; a plane without contours is an
  *empty* slice (all of it outside the shape), which is information too.
* :class:`SliceSet` — a list of cross-sections; :meth:`SliceSet.validate`,
  :meth:`SliceSet.inside`, :meth:`SliceSet.normalized`.

Files
-----
* ``.csl`` (OReX / Zou et al.)::

      CSLC
      <n_planes> <n_labels>

      <plane_id> <n_vertices> <n_contours> <A> <B> <C> <D>      # A x + B y + C z + D = 0

      <x> <y> <z>                                                # n_vertices lines

      <n> <label> [h] <i_1> ... <i_n>                            # one line per contour

  ``h`` after the label marks a hole (written by :func:`write_csl`; when absent on read,
  holes are found from nesting).
* JSON: ``{"format": "sciml-slices", "version": 1, "sections": [{"plane": [A, B, C, D],
  "contours": [{"points": [[x, y, z], ...], "hole": false, "closed": true}]}]}``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from sciml.io.atomic import atomic_path

__all__ = ["Plane", "Contour", "CrossSection", "SliceSet", "SliceError", "read_csl", "write_csl", "read_json",
           "write_json", "read_slices", "write_slices"]


class SliceError(ValueError):
    """Invalid cross-section input (open or self-intersecting contour, contour off its plane, empty input)."""


def _frame(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(normal, u)


@dataclass(frozen=True)
class Plane:
    """The plane ``normal . x + offset = 0``.

    Attributes
    ----------
    normal : (3,) float64, unit length
    offset : float
    """

    normal: np.ndarray
    offset: float

    def __post_init__(self):
        n = np.asarray(self.normal, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(n)) if n.shape == (3,) else 0.0
        if n.shape != (3,) or not np.isfinite(n).all() or norm < 1e-12 or not np.isfinite(self.offset):
            raise SliceError(f"a plane needs a finite non-zero normal (3,) and a finite offset, "
                             f"got normal={self.normal!r}, offset={self.offset!r}")
        object.__setattr__(self, "normal", n / norm)
        object.__setattr__(self, "offset", float(self.offset) / norm)

    @classmethod
    def from_coefficients(cls, a: float, b: float, c: float, d: float) -> "Plane":
        """The plane ``a x + b y + c z + d = 0`` (the ``.csl`` convention)."""
        return cls(np.array([a, b, c], dtype=np.float64), d)

    @classmethod
    def from_point_normal(cls, point, normal) -> "Plane":
        n = np.asarray(normal, dtype=np.float64)
        n = n / np.linalg.norm(n)
        return cls(n, -float(np.dot(n, np.asarray(point, dtype=np.float64))))

    @property
    def coefficients(self) -> np.ndarray:
        """``(A, B, C, D)`` with a unit normal, shape ``(4,)``."""
        return np.append(self.normal, self.offset)

    @property
    def origin(self) -> np.ndarray:
        """The point of the plane closest to the coordinate origin, ``(3,)``."""
        return -self.offset * self.normal

    @property
    def frame(self) -> tuple[np.ndarray, np.ndarray]:
        """In-plane orthonormal axes ``(u, v)``, each ``(3,)``, with ``u x v = normal``."""
        return _frame(self.normal)

    def signed_distance(self, points) -> np.ndarray:
        """``normal . x + offset`` for ``points : (N, 3)``; returns ``(N,)``."""
        return np.asarray(points, dtype=np.float64) @ self.normal + self.offset

    def to_2d(self, points) -> np.ndarray:
        """In-plane coordinates ``(N, 2)`` of ``points : (N, 3)`` (projected onto the plane)."""
        u, v = self.frame
        rel = np.asarray(points, dtype=np.float64) - self.origin
        return np.stack([rel @ u, rel @ v], axis=-1)

    def to_3d(self, points2) -> np.ndarray:
        """3-D points ``(N, 3)`` of in-plane coordinates ``(N, 2)``."""
        u, v = self.frame
        p = np.asarray(points2, dtype=np.float64)
        return self.origin + p[:, :1] * u + p[:, 1:2] * v


@dataclass
class Contour:
    """A closed contour on a plane.

    Attributes
    ----------
    points : (N, 3) float64
        Vertices in order; the last joins the first (do not repeat the first vertex).
    hole : bool
        Boundary of a hole (nested inside an odd number of other contours).
    closed : bool
        ``False`` marks a polyline that failed to close; :meth:`SliceSet.validate` rejects it.
    """

    points: np.ndarray
    hole: bool = False
    closed: bool = True

    def __post_init__(self):
        p = np.asarray(self.points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise SliceError(f"contour points must have shape (N, 3), got {p.shape}")
        if len(p) > 1 and np.array_equal(p[0], p[-1]):
            p = p[:-1]  # a repeated closing vertex
        self.points = p


@dataclass
class CrossSection:
    """One plane and the contours on it (none: the whole plane is outside)."""

    plane: Plane
    contours: list[Contour] = field(default_factory=list)

    def rings_2d(self) -> list[np.ndarray]:
        """The contours in the plane's 2-D frame, a list of ``(N_r, 2)`` arrays."""
        return [self.plane.to_2d(c.points) for c in self.contours]

    def inside_2d(self, points2) -> np.ndarray:
        """Even-odd inside test of in-plane points ``(M, 2)``; returns ``(M,)`` bool."""
        from geometry.polygon import points_in_polygons
        if not self.contours:
            return np.zeros(len(points2), dtype=bool)
        return points_in_polygons(points2, self.rings_2d())


class SliceSet:
    """A list of :class:`CrossSection` with validation, normalisation and file I/O.

    Parameters
    ----------
    sections : sequence of CrossSection
    validate : bool
        Run :meth:`validate` (default).
    """

    def __init__(self, sections: Sequence[CrossSection], validate: bool = True):
        self.sections = list(sections)
        if validate:
            self.validate()

    def __len__(self) -> int:
        return len(self.sections)

    def __iter__(self) -> Iterator[CrossSection]:
        return iter(self.sections)

    def __getitem__(self, i: int) -> CrossSection:
        return self.sections[i]

    @property
    def n_contours(self) -> int:
        return sum(len(s.contours) for s in self.sections)

    def points(self) -> np.ndarray:
        """All contour vertices, ``(V, 3)``."""
        pts = [c.points for s in self.sections for c in s.contours]
        return np.concatenate(pts) if pts else np.zeros((0, 3))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corner ``(3,), (3,)`` of the contour vertices."""
        p = self.points()
        if len(p) == 0:
            raise SliceError("no contour vertices: every cross-section is empty")
        return p.min(axis=0), p.max(axis=0)

    def validate(self, tol: float = 1e-6, check_intersections: bool = True) -> "SliceSet":
        """Check the input; raise :class:`SliceError` naming the plane, the contour and the fix.

        Checks: at least one plane and one contour; every contour closed, with >= 3
        distinct vertices, on its plane (to ``tol`` times the size of the data), not
        self-intersecting and not crossing another contour of its plane; ``hole`` flags
        consistent with nesting.
        """
        if not self.sections:
            raise SliceError("empty input: no cross-sections; give at least one plane with a contour")
        if self.n_contours == 0:
            raise SliceError(f"empty input: all {len(self.sections)} planes have no contour, so nothing is inside; "
                             "give at least one closed contour")
        lo, hi = self.bounds()
        scale = max(float(np.max(hi - lo)), 1e-12)
        for k, sec in enumerate(self.sections):
            for j, c in enumerate(sec.contours):
                where = f"plane {k}, contour {j}"
                if not c.closed:
                    raise SliceError(f"open contour ({where}): its polyline does not return to its start; close it "
                                     "(the mesh it was cut from must be watertight) or drop it")
                if len(c.points) < 3 or len(np.unique(c.points, axis=0)) < 3:
                    raise SliceError(f"degenerate contour ({where}): {len(c.points)} vertices; a closed contour "
                                     "needs at least 3 distinct vertices")
                if not np.isfinite(c.points).all():
                    raise SliceError(f"contour has NaN or inf coordinates ({where})")
                off = float(np.max(np.abs(sec.plane.signed_distance(c.points))))
                if off > tol * scale:
                    raise SliceError(f"contour off its plane ({where}): a vertex lies {off:.3g} from the plane "
                                     f"{np.round(sec.plane.coefficients, 6).tolist()} (tolerance {tol * scale:.3g}); "
                                     "project the points onto the plane or fix the plane coefficients")
            if check_intersections and sec.contours:
                self._check_simple(k, sec)
        return self

    @staticmethod
    def _check_simple(k: int, sec: CrossSection) -> None:
        from geometry.polygon import pack_rings, points_in_polygons, ring_self_intersections
        rings = sec.rings_2d()
        vertices, starts = pack_rings(rings)
        pairs = ring_self_intersections(vertices, starts, limit=1)
        if len(pairs):
            a, b = (int(i) for i in pairs[0])
            ra, rb = (int(np.searchsorted(starts, i, side="right") - 1) for i in (a, b))
            what = "self-intersecting contour" if ra == rb else "contours crossing each other"
            raise SliceError(f"{what} (plane {k}, contour {ra} edge {a - starts[ra]} meets contour {rb} edge "
                             f"{b - starts[rb]} near {np.round(sec.plane.to_3d(vertices[[a]])[0], 6).tolist()}); "
                             "contours must be simple and disjoint: fix or resample the contour")
        for j, ring in enumerate(rings):
            others = [r for i, r in enumerate(rings) if i != j]
            depth_odd = bool(points_in_polygons(ring[:1], others)[0]) if others else False
            if depth_odd != sec.contours[j].hole:
                state = "inside" if depth_odd else "not inside"
                raise SliceError(f"hole flag inconsistent (plane {k}, contour {j}): hole={sec.contours[j].hole} but "
                                 f"it is {state} an odd number of other contours; use SliceSet.from_planes_and_rings "
                                 "or read_csl, which infer holes from nesting")

    # -------------------------------------------------------------------- helpers
    @staticmethod
    def infer_holes(sections: Sequence[CrossSection]) -> list[CrossSection]:
        """Set every contour's ``hole`` flag from its nesting depth (odd = hole)."""
        from geometry.polygon import points_in_polygons
        for sec in sections:
            rings = sec.rings_2d()
            for j, c in enumerate(sec.contours):
                others = [r for i, r in enumerate(rings) if i != j]
                c.hole = bool(points_in_polygons(rings[j][:1], others)[0]) if others else False
        return list(sections)

    def inside(self, k: int, points) -> np.ndarray:
        """Inside test of 3-D points ``(M, 3)`` projected onto plane ``k``; ``(M,)`` bool."""
        sec = self.sections[k]
        return sec.inside_2d(sec.plane.to_2d(points))

    def transformed(self, scale: float, shift) -> "SliceSet":
        """The slices under ``x -> scale * (x + shift)``."""
        shift = np.asarray(shift, dtype=np.float64)
        out = []
        for sec in self.sections:
            origin = scale * (sec.plane.origin + shift)
            plane = Plane.from_point_normal(origin, sec.plane.normal)
            out.append(CrossSection(plane, [Contour(scale * (c.points + shift), c.hole, c.closed)
                                            for c in sec.contours]))
        return SliceSet(out, validate=False)

    def normalization(self, extent: float = 1.0 / 1.1) -> tuple[float, np.ndarray]:
        """``(scale, shift)`` that centre the contours and bring them into ``[-extent, extent]^3``."""
        lo, hi = self.bounds()
        centre = 0.5 * (lo + hi)
        half = max(float(np.max(np.abs(self.points() - centre))), 1e-12)
        return extent / half, -centre

    def to_dict(self) -> dict:
        return {"format": "sciml-slices", "version": 1, "sections": [
            {"plane": sec.plane.coefficients.tolist(),
             "contours": [{"points": c.points.tolist(), "hole": bool(c.hole), "closed": bool(c.closed)}
                          for c in sec.contours]} for sec in self.sections]}

    @classmethod
    def from_dict(cls, data: dict, validate: bool = True) -> "SliceSet":
        if not isinstance(data, dict) or "sections" not in data:
            raise SliceError("JSON slices need a top-level object with a 'sections' list "
                             "(see geometry.slices for the format)")
        sections = []
        for k, sec in enumerate(data["sections"]):
            try:
                plane = Plane.from_coefficients(*[float(v) for v in sec["plane"]])
                contours = [Contour(np.asarray(c["points"], dtype=np.float64).reshape(-1, 3),
                                    bool(c.get("hole", False)), bool(c.get("closed", True)))
                            for c in sec.get("contours", [])]
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, SliceError):
                    raise
                raise SliceError(f"section {k} of the JSON slices is malformed ({exc}); each needs 'plane': "
                                 "[A, B, C, D] and 'contours': [{'points': [[x, y, z], ...]}]") from exc
            sections.append(CrossSection(plane, contours))
        if not any("hole" in c for s in data["sections"] for c in s.get("contours", [])):
            cls.infer_holes(sections)
        return cls(sections, validate=validate)


# ------------------------------------------------------------------------ files
def read_csl(path, validate: bool = True) -> SliceSet:
    """Read an OReX / Zou-style ``.csl`` file (see the module docstring for the layout)."""
    path = Path(path)
    tokens = path.read_text().split()
    if not tokens:
        raise SliceError(f"{path}: empty file; expected a .csl file starting with 'CSLC'")
    if tokens[0] != "CSLC":
        raise SliceError(f"{path}: not a .csl file (first token {tokens[0]!r}, expected 'CSLC')")
    pos = 1

    def take(n=1):
        nonlocal pos
        if pos + n > len(tokens):
            raise SliceError(f"{path}: truncated .csl file (ended after {len(tokens)} tokens); re-export it")
        out = tokens[pos:pos + n]
        pos += n
        return out
    try:
        n_planes = int(take()[0])
        take()  # number of labels
        sections, explicit_holes = [], False
        for k in range(n_planes):
            _, nv, nc = (int(t) for t in take(3))
            a, b, c, d = (float(t) for t in take(4))
            verts = np.asarray(take(3 * nv), dtype=np.float64).reshape(nv, 3)
            contours = []
            for _ in range(nc):
                n, _label = int(take()[0]), take()[0]
                hole = tokens[pos] == "h"
                if hole:
                    pos += 1
                    explicit_holes = True
                idx = np.asarray(take(n), dtype=np.int64)
                if n and (idx.min() < 0 or idx.max() >= nv):
                    raise SliceError(f"{path}: plane {k} has a contour index outside [0, {nv})")
                contours.append(Contour(verts[idx], hole))
            sections.append(CrossSection(Plane.from_coefficients(a, b, c, d), contours))
    except ValueError as exc:
        if isinstance(exc, SliceError):
            raise
        raise SliceError(f"{path}: malformed .csl file near token {pos} ({exc})") from exc
    if not explicit_holes:
        SliceSet.infer_holes(sections)
    return SliceSet(sections, validate=validate)


def write_csl(slices: SliceSet, path) -> Path:
    """Write a ``.csl`` file (atomically); holes get the ``h`` marker."""
    lines = ["CSLC", f"{len(slices)} 1", ""]
    for k, sec in enumerate(slices):
        pts = [c.points for c in sec.contours]
        nv = sum(len(p) for p in pts)
        lines.append(f"{k + 1} {nv} {len(pts)} " + " ".join(f"{v:.9g}" for v in sec.plane.coefficients))
        lines.append("")
        lines += [f"{x:.9g} {y:.9g} {z:.9g}" for p in pts for x, y, z in p]
        lines.append("")
        start = 0
        for c in sec.contours:
            idx = " ".join(str(i) for i in range(start, start + len(c.points)))
            lines.append(f"{len(c.points)} 1 {'h ' if c.hole else ''}{idx}")
            start += len(c.points)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(path)


def read_json(path, validate: bool = True) -> SliceSet:
    """Read slices from the JSON format of :meth:`SliceSet.to_dict`."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise SliceError(f"{path}: not valid JSON ({exc})") from exc
    return SliceSet.from_dict(data, validate=validate)


def write_json(slices: SliceSet, path) -> Path:
    """Write slices as JSON (atomically)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(slices.to_dict()))
    return Path(path)


def _by_suffix(path, csl, json_):
    """``csl`` for a ``.csl`` path, ``json_`` for ``.json``; a :class:`SliceError` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csl", ".json"):
        raise SliceError(f"unknown slice file type {suffix!r} ({path}); use .csl or .json")
    return csl if suffix == ".csl" else json_


def read_slices(path, validate: bool = True) -> SliceSet:
    """Read ``.csl`` or ``.json`` by suffix."""
    return _by_suffix(path, read_csl, read_json)(path, validate)


def write_slices(slices: SliceSet, path) -> Path:
    """Write ``.csl`` or ``.json`` by suffix."""
    return _by_suffix(path, write_csl, write_json)(slices, path)
