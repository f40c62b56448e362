"""``sciml bench orex``: OReX vs OReX without the refinement loop vs a classical baseline, in one run.

Every shape (analytic meshes and pyvista's bundled nut) is cut by random planes of random
orientation; every method reconstructs it from the same slices and is scored against the
ground-truth mesh: volumetric IoU, Chamfer and Hausdorff distance (over the bounding-box
diagonal), per-plane 2-D IoU against the input labels, genus, ripple (normal variation
near the input planes) and wall time. ``--ablations`` adds OReX without hierarchical
sampling and without the gradient hinge.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sciml.benchmarks.table import format_table, number
from solvers.orex.baseline import SliceDistanceInterpolation
from solvers.orex.metrics import genus, plane_iou, ripple, surface_distances, volume_iou
from solvers.orex.model import OReX, OReXConfig
from solvers.orex.shapes import make_shape, shape_planes

logger = logging.getLogger(__name__)

DEFAULT_SHAPES = ["sphere:10", "torus:15", "capsule:12", "two_spheres:15", "nut:15"]
NON_CONVEX = {"torus", "two_spheres", "nut"}


def polygon_speedup(n_points: int = 100000, n_vertices: int = 400, repeats: int = 3) -> dict:
    """Numba even-odd point-in-polygon (outer ring + hole) vs matplotlib ``Path.contains_points``."""
    from matplotlib.path import Path

    from geometry.polygon import pack_rings, points_in_polygons
    from sciml.benchmarks.timing import median_time
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    r = 1 + 0.2 * np.sin(7 * t)
    outer = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    rings = [outer, 0.3 * outer[::-1]]
    pts = rng.uniform(-1.3, 1.3, (n_points, 2))
    packed = pack_rings(rings)
    points_in_polygons(pts[:10], *packed)  # compile
    ours_s, ours = median_time(lambda: points_in_polygons(pts, *packed), repeats)
    paths = [Path(ring) for ring in rings]

    def reference():
        inside = np.zeros(len(pts), dtype=bool)
        for path in paths:
            inside ^= path.contains_points(pts)
        return inside
    ref_s, ref = median_time(reference, repeats)
    return {"points": n_points, "edges": 2 * n_vertices, "numba_s": ours_s, "matplotlib_s": ref_s,
            "speedup": ref_s / ours_s, "identical": bool(np.array_equal(ours, ref))}


def methods(config: OReXConfig, ablations: bool) -> dict:
    """Label -> config (``None`` for the classical baseline).

    Every ablation keeps all other settings, the same optimiser step count and batch size
    (the single-level run does all the hierarchical run's steps at the finest level), so the
    same number of samples is seen; the 1-loop net costs about 1/5 of the compute per step.
    """
    out = {"orex": config, "orex-1-loop": replace(config, n_iterations=1),
           "slice-sdf-idw": None}
    if ablations:
        out["orex-single-level"] = replace(config, hierarchical=False)
        out["orex-no-hinge"] = replace(config, hinge_weight=0.0)
    return out


def evaluate(label: str, method, reference, slices, resolution: int, seconds: float) -> dict:
    """Mesh a fitted method and score it against ``reference``."""
    start = time.perf_counter()
    if isinstance(method, OReX):
        mesh = method.mesh(resolution)
    else:
        from geometry.meshing import mesh_from_field
        lo, hi = reference.bounds
        pad = 0.1 * float(np.max(hi - lo))
        mesh, _ = mesh_from_field(method.field, resolution, (lo - pad, hi + pad))
    mesh_s = time.perf_counter() - start
    lo, hi = reference.bounds
    cell = float(np.max(hi - lo)) * 1.2 / resolution
    pious = plane_iou(slices, method.field)
    row = {"method": label, "fit_s": seconds, "mesh_s": mesh_s, "iou": volume_iou(reference, method.field),
           **surface_distances(reference, mesh), "plane_iou_min": float(pious.min()),
           "plane_iou_mean": float(pious.mean()), "genus": genus(mesh), "watertight": bool(mesh.is_watertight),
           "ripple_deg": ripple(mesh, slices, 2 * cell), "faces": int(len(mesh.faces))}
    return row


def bench_shape(spec: str, device: str, config: OReXConfig, ablations: bool, resolution: int, seed: int,
                only: list[str] | None = None) -> list[dict]:
    name, _, count = spec.partition(":")
    n_planes = int(count or 15)
    from geometry.mesh_slicing import slice_mesh
    reference, true_genus = make_shape(name)
    slices = slice_mesh(reference, shape_planes(reference, n_planes, seed=seed))
    rows = []
    for label, cfg in methods(config, ablations).items():
        if only and label not in only:
            continue
        logger.info("orex bench: %s with %d planes, %s", name, n_planes, label)
        # the baseline keeps its own 5 % hull: with OReX's CPU 20 % it scored worse (two spheres
        # Chamfer 0.0074 vs 0.0068), so the comparison uses its better setting
        method = SliceDistanceInterpolation() if cfg is None else OReX(cfg, device=device)
        start = time.perf_counter()
        method.fit(slices)
        seconds = time.perf_counter() - start
        row = evaluate(label, method, reference, slices, resolution, seconds)
        row.update(shape=name, planes=n_planes, contours=slices.n_contours, true_genus=true_genus, device=device)
        logger.info("orex bench: %s %s: IoU %.4f, Chamfer %.5f, Hausdorff %.4f, plane IoU min %.4f, fit %.1f s",
                    name, label, row["iou"], row["chamfer"], row["hausdorff"], row["plane_iou_min"], seconds)
        rows.append(row)
    return rows


def summarise(rows: list[dict], ablations: bool) -> dict:
    """The issue's acceptance checks, each with the measured numbers.

    A *case* is one shape fitted with one network seed (``row["network_seed"]``, 0 when absent);
    per-shape checks must hold in every case, and the ablation means run over all cases.
    """
    by = {(r["shape"], r.get("network_seed", 0), r["method"]): r for r in rows}
    cases = sorted({(r["shape"], r.get("network_seed", 0)) for r in rows})
    name = {case: case[0] if case[1] == 0 else f"{case[0]}@seed{case[1]}" for case in cases}
    out = {}

    def check(shape: str, key: str, test) -> dict:
        values = {name[c]: by[c + ("orex",)][key] for c in cases if c[0] == shape}
        return {"value": next(iter(values.values())) if len(values) == 1 else values,
                "met": all(map(test, values.values()))}
    if any(c[0] == "sphere" for c in cases):
        out["sphere_iou>=0.97"] = check("sphere", "iou", lambda v: v >= 0.97)
        out["sphere_hausdorff<=0.02"] = check("sphere", "hausdorff", lambda v: v <= 0.02)
    if any(c[0] == "torus" for c in cases):
        out["torus_genus==1"] = check("torus", "genus", lambda v: v == 1)
        out["torus_fit_s<300"] = check("torus", "fit_s", lambda v: v < 300)
    pmin = {name[c]: by[c + ("orex",)]["plane_iou_min"] for c in cases}
    out["plane_iou_min>=0.98"] = {"value": min(pmin.values()), "met": min(pmin.values()) >= 0.98,
                                  "per_shape": pmin}
    beat = {name[c]: {"orex": by[c + ("orex",)]["chamfer"], "baseline": by[c + ("slice-sdf-idw",)]["chamfer"]}
            for c in cases if c[0] in NON_CONVEX}
    out["orex_beats_baseline_chamfer_nonconvex"] = {"met": all(v["orex"] < v["baseline"] for v in beat.values()),
                                                    "per_shape": beat}
    others = ["orex-1-loop"] + (["orex-single-level", "orex-no-hinge"] if ablations else [])
    for other in others:
        cmp = {name[c]: {key: [by[c + ("orex",)][key], by[c + (other,)][key]]
                         for key in ("iou", "chamfer", "ripple_deg")} for c in cases}
        mean = {key: [float(np.mean([v[key][i] for v in cmp.values()])) for i in (0, 1)]
                for key in ("iou", "chamfer", "ripple_deg")}
        out[f"orex_vs_{other}"] = {"met_chamfer": all(v["chamfer"][0] <= v["chamfer"][1] for v in cmp.values()),
                                   "met_iou": all(v["iou"][0] >= v["iou"][1] for v in cmp.values()),
                                   "met_mean_chamfer": mean["chamfer"][0] <= mean["chamfer"][1],
                                   "met_mean_iou": mean["iou"][0] >= mean["iou"][1],
                                   "met_mean_ripple": mean["ripple_deg"][0] <= mean["ripple_deg"][1],
                                   "cases": len(cases),
                                   "mean_over_shapes [full, ablated]": mean,
                                   "per_shape [full, ablated]": cmp}
    return out


COLUMNS = [("shape", -11, lambda r: r["shape"]), ("P", 3, number("planes", "d")),
           ("seed", 4, number("network_seed", "d")),
           ("method", -17, lambda r: r["method"]), ("IoU", 6, number("iou", ".4f")),
           ("chamfer", 8, number("chamfer", ".5f")), ("hausd.", 7, number("hausdorff", ".4f")),
           ("pIoU min", 8, number("plane_iou_min", ".4f")), ("genus", 5, lambda r: str(r["genus"])),
           ("ripple", 6, number("ripple_deg", ".2f")), ("fit s", 7, number("fit_s", ".1f")),
           ("mesh s", 6, number("mesh_s", ".1f"))]


def merge(paths: list[str], ablations: bool, argv: list[str] | None = None) -> dict:
    """Summarise the rows of several ``sciml bench orex --json`` files as one run."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    rows = [row for run in runs for row in run["rows"]]
    cases = [(r["shape"], r.get("network_seed", 0), r["method"]) for r in rows]
    if len(set(cases)) != len(cases):
        raise ValueError(f"--merge: the files {paths} repeat a (shape, network seed, method) case; "
                         f"merge runs with different shapes or --network-seeds")
    needed = set(methods(OReXConfig(), ablations))
    missing = {f"{shape}@seed{seed}": sorted(needed - {m for sh, se, m in cases if (sh, se) == (shape, seed)})
               for shape, seed, _ in cases}
    missing = {case: names for case, names in missing.items() if names}
    if missing:
        raise ValueError(f"--merge: the summary needs every method for every case; missing {missing} "
                         f"(rerun those, or merge without --ablations if only the ablations are missing)")
    return {"benchmark": "orex", "argv": list(argv or []), "merged": list(paths),
            "config_values": [run.get("config_values") for run in runs], "rows": rows,
            "summary": summarise(rows, ablations), "table": format_table(rows, COLUMNS)}


def parse_overrides(items: list[str]) -> dict:
    """``["field=value", ...]`` -> ``{field: value}`` (values parsed as JSON, else kept as strings)."""
    known = set(OReXConfig.__dataclass_fields__)
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(known)}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench orex`` options, run, and return the JSON-ready results."""
    parser = argparse.ArgumentParser(prog="sciml bench orex", description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="NAME:PLANES (sphere, torus, capsule, "
                        "two_spheres, nut)")
    parser.add_argument("--config", choices=["cpu", "paper", "tiny"], default="cpu")
    parser.add_argument("--ablations", action="store_true", help="also OReX without hierarchy / without hinge")
    parser.add_argument("--methods", nargs="+", default=None, help="run only these methods (the summary then "
                        "skips the comparisons that miss one)")
    parser.add_argument("--resolution", type=int, default=64, help="marching-cubes grid points per axis")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random planes")
    parser.add_argument("--network-seeds", type=int, nargs="+", default=None,
                        help="fit every OReX variant once per network seed (OReXConfig.seed; default: the "
                             "config's); the summary's per-shape checks must hold for each, means run over all")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="override OReXConfig fields of --config, e.g. box_outside_count=8192 (JSON values)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="fit nothing: summarise the rows of these earlier --json outputs together (e.g. one "
                             "run per network seed in parallel processes)")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.ablations, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = getattr(OReXConfig, args.config)(**parse_overrides(args.set))
    started = time.perf_counter()
    rows = []
    for network_seed in args.network_seeds or [config.seed]:
        seeded = replace(config, seed=network_seed)
        for spec in args.shapes:
            for row in bench_shape(spec, args.device, seeded, args.ablations, args.resolution, args.seed,
                                   args.methods):
                rows.append({**row, "network_seed": network_seed})
    speed = polygon_speedup()
    return {"benchmark": "orex", "argv": list(argv or []),
            "device": args.device, "point_in_polygon": speed, "config": args.config,
            "config_values": config.__dict__,
            "resolution": args.resolution, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "ablation_budget": "same optimiser steps, batch size and sample rules for every OReX variant "
                               "(single-level: all steps at the finest radius); fit_s gives the compute",
            "rows": rows, "summary": summarise(rows, args.ablations) if args.methods is None else {},
            "wall_s": time.perf_counter() - started,
            "table": format_table(rows, COLUMNS)}
