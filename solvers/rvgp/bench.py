"""``sciml bench rvgp``: the acceptance numbers of issue 7, with the Euclidean GP peer in the same run.

Sections (each can be skipped or resized from the command line):

* ``spectrum`` -- symmetry / PSD of the connection Laplacian; sphere (``--spectrum-n``,
  default 10^4) multiplicities 6/10/14 and ratio bands [4.5, 5.5] and [10, 12.5]; exactly two
  near-zero eigenvalues on the flat torus in R^4 and the Swiss roll.
* ``superresolution`` -- 50 % random training points on analytic fields (sphere vortex and
  source, torus, flat torus in R^4): cosine >= 0.99, relative L2 <= 0.05, tangency, with the
  Euclidean RBF GP on the same data. Two RVGP configurations: ours (``--frames``, default
  ``jet`` frames, ``--sr-rank`` 200 eigenpairs) and the paper's (local PCA frames,
  ``--rank`` 100 eigenpairs, rows marked ``paper``).
* ``inpainting`` -- a 0.35 rad cap around the index +1 zero at the north pole removed: winding
  number on a ring inside the hole; noise-free and with 5 % noise, RVGP vs Euclidean GP on
  the earlier cases (a 0.8 rad cap on the sphere, a hole in one layer of the spiral sheet,
  where the fields are smooth in ambient space and the Euclidean GP wins) and on the hairpin
  cases of :func:`solvers.rvgp.experiments.hairpin_inpainting` (thin gap, large hole over the
  fold), with both frame methods.
* ``variational`` -- the sparse variational option on the sphere vortex.
* ``scale`` -- connection Laplacian of ``--scale-n`` points (default 10^5): time and memory;
  50 smallest eigenpairs; rank-100 GP fit.
"""
from __future__ import annotations

import argparse
import logging
import re
import time

import numpy as np
import torch

from sciml.benchmarks.table import format_table, number

logger = logging.getLogger(__name__)

SECTIONS = ("spectrum", "superresolution", "inpainting", "variational", "scale")

COLUMNS = [("case", -36, lambda r: str(r["case"])), ("frames", 6, lambda r: str(r.get("frames", "-"))),
           ("noise", 6, number("noise", ".2f")),
           ("n_train", 7, number("n_train", "d")), ("rvgp cos", 9, number("rvgp_cosine", ".4f")),
           ("rvgp relL2", 10, number("rvgp_rel_l2", ".4f")), ("eucl cos", 9, number("euclid_cosine", ".4f")),
           ("eucl relL2", 10, number("euclid_rel_l2", ".4f")), ("winding", 8, number("winding_rvgp", ".2f")),
           ("rvgp s", 7, number("rvgp_fit_s", ".1f")), ("eucl s", 7, number("euclid_fit_s", ".1f"))]


def _clean(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _split(n: int, seed: int, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    m = round(fraction * n)
    return np.sort(perm[:m]), np.sort(perm[m:])


def superresolution(n: int, rank: int, device: str, seed: int = 0, frames: str = "jet",
                    sr_rank: int = 200) -> list[dict]:
    """Our configuration (``frames``, ``sr_rank``) and the paper's (PCA, ``rank``) on the same split."""
    from solvers.rvgp.experiments import compare, make_case
    rows = []
    for name in ("sphere-vortex", "sphere-source", "torus", "flat-torus"):
        points, truth, _ = make_case(name, n, seed)
        train, test = _split(n, seed)
        full = compare(f"SR {name}", points, truth, train, test, rank=sr_rank, device=device, seed=seed,
                       frames=frames)
        paper = compare(f"SR {name} paper", points, truth, train, test, rank=rank, device=device, seed=seed,
                        frames="pca", euclid_row=full)
        for row, method in ((full, frames), (paper, "pca")):
            row = _clean(row)
            row["frames"] = method
            row["target_met"] = bool(row["rvgp_cosine"] >= 0.99 and row["rvgp_rel_l2"] <= 0.05)
            rows.append(row)
    return rows


INPAINT_CASES = ("caps", "sphere-hole", "spiral", "hairpin-gap", "hairpin-fold")


def inpainting(n: int, rank: int, device: str, noise: float, seed: int = 0, frames: str = "jet",
               cases=INPAINT_CASES) -> list[dict]:
    from solvers.rvgp.experiments import hairpin_inpainting, singularity_inpainting
    rows = []
    if "caps" in cases:
        rows += [_clean(singularity_inpainting(name, n=n, seed=seed, device=device, rank=rank, frames=frames))
                 for name in ("sphere-source", "sphere-vortex")]
    if "sphere-hole" in cases:
        rows += _sphere_hole(n, rank, device, noise, seed, frames)
    if "spiral" in cases:
        rows += _spiral(n, rank, device, noise, seed, frames)
    for row in rows:
        row["frames"] = frames
    others = (frames, "pca") if frames != "pca" else ("pca",)
    for hole in ("gap", "fold"):
        if f"hairpin-{hole}" in cases:
            rows += [_clean(r) for r in hairpin_inpainting("thin-gap" if hole == "gap" else "fold", n=n, rank=rank,
                                                           noises=(0.0, noise), frames=others, seed=seed,
                                                           device=device)]
    return rows


def _sphere_outside(n: int, seed: int):
    from solvers.rvgp import fields
    from solvers.rvgp.experiments import make_case
    points, truth, _ = make_case("sphere-source", n, seed)
    hole = fields.cap_mask(points, [1.0, 0.0, 0.0], 0.8)
    return points, truth, hole


def _inpaint_at_two_noise_levels(label, points, truth, train, test, rank, device, noise, seed, frames) -> list[dict]:
    """RVGP vs the Euclidean GP on one split, noise-free and at ``noise`` (one graph, one eigenbasis)."""
    from geometry.manifold import ManifoldGraph
    from solvers.rvgp.experiments import compare
    from solvers.rvgp.spectrum import connection_eigenpairs
    graph = ManifoldGraph.from_points(points, dim=2, frames=frames)
    pairs = connection_eigenpairs(graph, rank, device=device)
    return [_clean(compare(label, points, truth, train, test, noise=level, rank=rank, device=device, seed=seed,
                           graph=graph, eigenpairs=pairs)) for level in (0.0, noise)]


def _sphere_hole(n, rank, device, noise, seed, frames) -> list[dict]:
    rng = np.random.default_rng(seed)
    # large hole: 0.8 rad cap away from the zeros, on the source field
    points, truth, hole = _sphere_outside(n, seed)
    outside = np.flatnonzero(~hole)
    train, test = np.sort(rng.permutation(outside)[: len(outside) // 2]), np.flatnonzero(hole)
    return _inpaint_at_two_noise_levels("large hole sphere 0.8 rad", points, truth, train, test, rank, device,
                                        noise, seed, frames)


def _spiral(n, rank, device, noise, seed, frames) -> list[dict]:
    from solvers.rvgp.experiments import make_case
    rng = np.random.default_rng(seed)
    rng.permutation(int((~_sphere_outside(n, seed)[2]).sum()))   # the sphere hole's draw: same split as before
    # thin gap: spiral sheet with layers 0.3 apart, 1.2 long hole through the middle layer. Kept from
    # the first design although it does not separate the methods the way intended: the field on
    # the separate layers extends smoothly into R^3, and a noise-free RBF GP with a long length scale
    # fits that extension (0.006), while the intrinsic GP must bridge half a period of the field
    # across the full-width hole (0.18). With 5 % noise both degrade (0.13 vs 0.21).
    points, truth, extra = make_case("tight-roll", int(1.5 * n), seed)
    s = extra["s"]
    hole = np.abs(s - s.max() / 2) < 0.6
    outside = np.flatnonzero(~hole)
    train, test = np.sort(rng.permutation(outside)[:600]), np.flatnonzero(hole)
    return _inpaint_at_two_noise_levels("thin gap spiral (gap 0.3)", points, truth, train, test, rank, device,
                                        noise, seed, frames)


def variational(n: int, rank: int, device: str, seed: int = 0) -> dict:
    from solvers.rvgp.experiments import make_case
    from solvers.rvgp.metrics import cosine_similarity, relative_l2
    from solvers.rvgp.model import RVGP
    from solvers.rvgp.variational import VariationalRVGP
    points, truth, _ = make_case("sphere-vortex", n, seed)
    train, test = _split(n, seed)
    gp = RVGP.from_points(points, dim=2, n_eigenpairs=rank, device=device)
    start = time.perf_counter()
    svgp = VariationalRVGP(gp).fit(train, truth[train], steps=500)
    fit_s = time.perf_counter() - start
    mean = svgp.predict(test).mean.cpu().numpy()
    exact = gp.fit(train, truth[train]).predict(test).mean.cpu().numpy()
    return {"case": "SVI sphere-vortex", "n": n, "n_train": len(train), "rank": rank, "steps": 500, "fit_s": fit_s,
                "exact_rel_l2": relative_l2(exact, truth[test]),
                "cosine": cosine_similarity(mean, truth[test]), "rel_l2": relative_l2(mean, truth[test])}


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench rvgp`` options, run the sections, return the JSON-ready results."""
    from solvers.rvgp.experiments import scale_check, spectrum_check
    parser = argparse.ArgumentParser(prog="sciml bench rvgp", description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--spectrum-n", type=int, default=10_000, help="sphere points of the spectrum check")
    parser.add_argument("--flat-n", type=int, default=4000)
    parser.add_argument("--n", type=int, default=2000, help="points of the GP experiments")
    parser.add_argument("--rank", type=int, default=100, help="eigenpairs of the GP kernel (paper: 100)")
    parser.add_argument("--sr-rank", type=int, default=200, help="eigenpairs of our super-resolution configuration")
    parser.add_argument("--frames", default="jet", choices=("jet", "pca"),
                        help="tangent frames of our configuration (paper: pca)")
    parser.add_argument("--noise", type=float, default=0.05, help="relative noise of the noisy comparisons")
    parser.add_argument("--inpaint-cases", nargs="+", default=list(INPAINT_CASES), choices=INPAINT_CASES,
                        help="cases of the inpainting section")
    parser.add_argument("--scale-n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="threads of the kNN queries in the scale section")
    parser.add_argument("--device", default="cpu", help="device of the GP (the geometry is built on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes (spectrum 3000, n 600, scale 2e4)")
    args = parser.parse_args(argv)
    if args.quick:
        args.spectrum_n, args.flat_n, args.n, args.scale_n, args.rank, args.sr_rank = 3000, 1500, 600, 20_000, 60, 100
    started = time.perf_counter()
    out: dict = {"benchmark": "rvgp", "device": args.device, "torch": torch.__version__,
                 "threads": torch.get_num_threads(), "args": vars(args), "argv": list(argv or [])}
    rows: list[dict] = []
    if "spectrum" in args.sections:
        logger.info("rvgp bench: spectrum")
        out["spectrum"] = [spectrum_check("sphere", args.spectrum_n, args.seed, args.device),
                           spectrum_check("flat-torus", args.flat_n, args.seed, args.device),
                           spectrum_check("swiss-roll", args.flat_n, args.seed, args.device)]
    if "superresolution" in args.sections:
        logger.info("rvgp bench: super-resolution")
        out["superresolution"] = superresolution(args.n, args.rank, args.device, args.seed, args.frames, args.sr_rank)
        rows += out["superresolution"]
    if "inpainting" in args.sections:
        logger.info("rvgp bench: inpainting")
        out["inpainting"] = inpainting(args.n, args.rank, args.device, args.noise, args.seed, args.frames,
                                       args.inpaint_cases)
        rows += out["inpainting"]
    if "variational" in args.sections:
        logger.info("rvgp bench: variational")
        out["variational"] = variational(args.n, args.rank, args.device, args.seed)
    if "scale" in args.sections and args.scale_n > 0:
        logger.info("rvgp bench: scale at %d points", args.scale_n)
        out["scale"] = scale_check(args.scale_n, workers=args.workers, device=args.device)
    out["targets"] = targets(out)
    out["wall_s"] = time.perf_counter() - started
    out["table"] = _table(out, rows)
    return out


def targets(out: dict) -> dict:
    """Pass/fail of each "Done when" item that the run measured."""
    t = {}
    for row in out.get("spectrum", []):
        t[f"spectrum_{row['case']}"] = row["ok"]
    for row in out.get("superresolution", []):
        t[f"superresolution_{_slug(row['case'][3:])}"] = row["target_met"]
    inp = out.get("inpainting", [])
    for row in inp:
        if "winding_rvgp" in row:
            t[f"index_kept_{row['case']}"] = row["index_kept"]
    for row in inp:
        if row["case"].startswith(("large hole", "thin gap")):
            t[f"beats_euclid_{_slug(row['case'])}_{row['frames']}_noise{row['noise']:g}"] = row.get("rvgp_better")
    if "scale" in out:
        s = out["scale"]
        t["scale_build_15s_4GB"] = bool(s["build_s"] <= 15 and s["build_peak_gb"] <= 4)
        t["scale_eigsh50_180s"] = bool(s["eigsh_50_s"] <= 180)
        t["scale_gp_fit_60s"] = bool(s["gp_fit_s"] <= 60)
    return t


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "_", text.lower()).strip("_")


def _table(out: dict, rows: list[dict]) -> str:
    lines = []
    for row in out.get("spectrum", []):
        extra = (f"multiplicities {row['multiplicities']} "
                 f"ratios {row['ratio_band_5'][0]:.2f}-{row['ratio_band_5'][1]:.2f}"
                 f" / {row['ratio_band_11'][0]:.2f}-{row['ratio_band_11'][1]:.2f}" if "multiplicities" in row
                 else f"near-zero eigenvalues {row['near_zero']}")
        lines.append(f"spectrum {row['case']:<11} n={row['n']:<6} asym {row['symmetry_max_abs']:.1e} "
                     f"min eig {row['smallest_eigenvalue']:.1e} {extra} build {row['build_s']:.1f}s "
                     f"eigsh {row['eigsh_s']:.1f}s ok={row['ok']}")
    if rows:
        lines += ["", format_table(rows, COLUMNS)]
    if "variational" in out:
        v = out["variational"]
        lines.append(f"\nsparse variational (SVI, {v['steps']} steps): cos {v['cosine']:.4f} relL2 {v['rel_l2']:.4f} "
                     f"(exact {v['exact_rel_l2']:.4f}) fit {v['fit_s']:.1f}s")
    if "scale" in out:
        s = out["scale"]
        lines.append(f"\nscale n={s['n']}: build {s['build_s']:.1f}s peak {s['build_peak_gb']:.2f}GB, eigsh50 "
                     f"{s['eigsh_50_s']:.1f}s, eigsh100 {s['eigsh_100_s']:.1f}s, GP fit {s['gp_fit_s']:.1f}s, "
                     f"relL2 {s['rel_l2']:.4f}")
    lines.append("\ntargets: " + ", ".join(f"{k}={v}" for k, v in out["targets"].items()))
    return "\n".join(lines)
