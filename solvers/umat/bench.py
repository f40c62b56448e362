"""``sciml bench umat``: accuracy, uncertainty, active learning, tiling and timing in one run.

Sections of the JSON result (all on fixed-seed held-out materials, seeds no training step draws):

* ``accuracy`` -- normal angular error of the shipped model vs flat normals and a
  shape-from-shading heuristic (luminance as height, its strength fitted on training seeds);
  roughness / specular RMSE vs the constant training mean; log-space re-render RMSE under the
  3 held-out lights vs "flat normals + mean parameters" (true albedo in both);
* ``uncertainty`` -- for TTA, MC dropout and a small ensemble (members trained here, cached):
  Spearman(score, normal error) per pixel (pooled and mean per image) and per material, the
  error drop after removing the 20 % most uncertain pixels, AUSE (vs a random score);
* ``active`` -- uncertainty vs random selection, 2 rounds, mean of 3 seeds
  (:mod:`solvers.umat.active`);
* ``tiling`` -- tiled vs whole-image normals (degrees), seam statistic, an odd image size;
* ``timing`` -- :func:`~solvers.umat.capture.capture` on a 1024 x 1024 image;
* ``targets`` -- the issue's acceptance numbers next to the measured ones.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from sciml.benchmarks.table import TARGET_COLUMNS, TargetRows, format_table
from solvers.umat.training import (
    HELDOUT_SEED,
    UMatTrainConfig,
    heldout_set,
    load_model,
    save_model,
    train_umat,
)
from solvers.umat.uncertainty import (
    DEFAULT_SHRINK,
    SCORES,
    angular_error_deg,
    ause,
    error_drop,
    per_material_score,
    predict_ensemble,
    predict_mc_dropout,
    predict_tta,
    random_ause,
    shrink_score,
    spearman,
)

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path.home() / ".cache" / "sciml" / "umat"
TRAIN_REFERENCE_SEED = 424_242  # training-range seed used to fit baselines (mean parameters, SfS strength)
SHRINKS = (0.0, 0.25, 0.5, 0.75, 0.9)


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.sqrt(((a - b) ** 2).mean()))


def _flat_like(normal: torch.Tensor) -> torch.Tensor:
    flat = torch.zeros_like(normal)
    flat[:, 2] = 1
    return flat


def sfs_normals(image: torch.Tensor, strength: float) -> torch.Tensor:
    """Shape-from-shading heuristic: luminance (minus its mean) as height, normals from its gradient."""
    from solvers.umat.materials import normals_from_height
    lum = (0.2126 * image[:, 0:1] + 0.7152 * image[:, 1:2] + 0.0722 * image[:, 2:3])
    lum = lum / lum.mean(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return normals_from_height(lum - lum.mean(dim=(2, 3), keepdim=True), strength)


def fit_baselines(n: int = 32, size: int = 64) -> dict:
    """Constant mean roughness/specular and the best SfS strength, from training-range materials."""
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import scanner_image
    maps = generate_materials(n, size, seed=TRAIN_REFERENCE_SEED)
    image = scanner_image(maps)
    strengths = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    errors = [float(angular_error_deg(sfs_normals(image, s), maps.normal).mean()) for s in strengths]
    return {"roughness_mean": float(maps.roughness.mean()), "specular_mean": float(maps.specular.mean()),
            "sfs_strength": strengths[int(np.argmin(errors))], "sfs_fit_errors_deg": dict(zip(map(str, strengths),
                                                                                             errors))}


def _log_render_rmse(pred: torch.Tensor, maps, lights: torch.Tensor) -> float:
    from solvers.umat.losses import LOG_EPS
    from solvers.umat.materials import MaterialMaps
    from solvers.umat.render import render
    fake = MaterialMaps.from_targets(pred, maps.albedo)
    errs = [((torch.log(render(fake, lights[k:k + 1]) + LOG_EPS)
              - torch.log(render(maps, lights[k:k + 1]) + LOG_EPS)) ** 2).mean() for k in range(lights.shape[0])]
    return float(torch.sqrt(torch.stack(errs).mean()))


def accuracy_section(model, maps, image, base: dict) -> dict:
    """Map errors and re-render errors of the model and the baselines."""
    from solvers.umat.render import heldout_lights
    with torch.no_grad():
        pred = model(image)
    target = maps.targets()
    flat = _flat_like(maps.normal)
    const = torch.cat([flat, torch.full_like(maps.roughness, base["roughness_mean"]),
                       torch.full_like(maps.specular, base["specular_mean"])], 1)
    sfs = sfs_normals(image, base["sfs_strength"])
    err = {name: float(angular_error_deg(n, maps.normal).mean()) for name, n in
           (("model", pred[:, :3]), ("flat", flat), ("sfs", sfs))}
    lights = heldout_lights(dtype=image.dtype)
    out = {"normal_error_deg": err, "normal_ratio_model_over_flat": err["model"] / err["flat"],
           "normal_ratio_model_over_sfs": err["model"] / err["sfs"]}
    for k, name in ((3, "roughness"), (4, "specular")):
        m, c = _rmse(pred[:, k], target[:, k]), _rmse(const[:, k], target[:, k])
        out[f"{name}_rmse"] = {"model": m, "constant_mean": c, "ratio": m / c}
    r_model, r_base = _log_render_rmse(pred, maps, lights), _log_render_rmse(const, maps, lights)
    out["rerender_log_rmse"] = {"model": r_model, "flat_mean_params": r_base, "ratio": r_model / r_base,
                                "lights": lights.tolist()}
    return out


def _metrics(score: torch.Tensor, error: torch.Tensor) -> dict:
    per_image = [spearman(score[i], error[i]) for i in range(error.shape[0])]
    return {"spearman_pixel": spearman(score, error), "spearman_pixel_mean_per_image": float(np.nanmean(per_image)),
            "error_drop_20pct": error_drop(error, score, 0.2), "ause": ause(error, score)}


def _calibration(mean: torch.Tensor, raw_score: torch.Tensor, maps, shrink: float = DEFAULT_SHRINK) -> dict:
    """Calibration of a raw (unshrunk) pixel score against the normal angular error of ``mean``."""
    error = angular_error_deg(mean[:, :3], maps.normal)
    return {"normal_error_deg": float(error.mean()), "shrink": shrink,
            **_metrics(shrink_score(raw_score, shrink), error),
            "spearman_material": spearman(per_material_score(raw_score), error.flatten(1).mean(1)),
            "raw_pixel_score": _metrics(raw_score, error),
            "by_shrink": {str(a): _metrics(shrink_score(raw_score, a), error) for a in SHRINKS},
            "ause_random_score": random_ause(error), "oracle_error_drop_20pct": error_drop(error, error, 0.2)}


def shrink_sweep(model, n: int = 16, size: int = 64) -> dict:
    """Spearman and error drop of the TTA score vs ``shrink`` and the score type on *training-range* seeds.

    This is where ``DEFAULT_SHRINK`` and ``DEFAULT_SCORE`` were chosen (not on the held-out set).
    """
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import scanner_image
    maps = generate_materials(n, size, seed=TRAIN_REFERENCE_SEED + 1)
    image = scanner_image(maps)
    by_score = {}
    for kind in SCORES:
        with torch.no_grad():
            mean, raw = predict_tta(model, image, shrink=0.0, score=kind)
        error = angular_error_deg(mean[:, :3], maps.normal)
        by_score[kind] = {str(a): {"spearman_pixel": spearman(shrink_score(raw, a), error),
                                   "error_drop_20pct": error_drop(error, shrink_score(raw, a), 0.2)} for a in SHRINKS}
    return {"seed": TRAIN_REFERENCE_SEED + 1, "n": n, "size": size, "by_score": by_score}


def _ensemble_members(args, reference) -> list:
    members = []
    for k in range(args.ensemble_members):
        tag = "_".join(f"{key}{reference.config[key]}" for key in ("base_channels", "depth", "norm"))
        path = Path(args.cache_dir) / f"ensemble_{tag}_s{args.ensemble_steps}_m{k}.safetensors"
        if path.exists():
            members.append(load_model(path))
            continue
        cfg = UMatTrainConfig(steps=args.ensemble_steps, seed=101 + k, **{
            key: reference.config[key] for key in ("base_channels", "depth", "attention", "dropout", "norm")},
            checkpoint_dir=Path(args.cache_dir) / f"ensemble_ck_{tag}_s{args.ensemble_steps}_{k}", checkpoint_every=50,
            resume=True,
            progress=args.progress)
        model = train_umat(cfg).model
        save_model(model, path, {"ensemble_member": k, "steps": args.ensemble_steps})
        members.append(model)
    return members


def uncertainty_section(args, model, maps, image) -> dict:
    """Calibration of every estimator on the held-out set."""
    out = {}
    with torch.no_grad():
        t0 = time.perf_counter()
        out["tta"] = _calibration(*predict_tta(model, image, shrink=0.0), maps)
        out["tta"]["seconds"] = time.perf_counter() - t0
        out["tta (combined score)"] = _calibration(*predict_tta(model, image, shrink=0.0, score="combined"), maps)
        t0 = time.perf_counter()
        out["mc_dropout"] = _calibration(*predict_mc_dropout(model, image, args.mc_samples, shrink=0.0), maps)
        out["mc_dropout"]["seconds"] = time.perf_counter() - t0
    if args.ensemble_members >= 2:
        members = _ensemble_members(args, model)
        with torch.no_grad():
            t0 = time.perf_counter()
            out["ensemble"] = _calibration(*predict_ensemble(members, image, shrink=0.0), maps)
            out["ensemble"]["seconds"] = time.perf_counter() - t0
            out["ensemble"]["members"] = len(members)
            out["ensemble"]["member_steps"] = args.ensemble_steps
    return out


def tiling_section(args, model) -> dict:
    """Tiled vs whole-image prediction and the seam statistic for each ``--tiles`` setting; an odd size."""
    from solvers.umat.capture import capture
    from solvers.umat.tiling import seam_ratio
    maps, image = heldout_set(1, args.tile_image, seed=HELDOUT_SEED + 1)
    with torch.no_grad():
        whole = model(image)
    out = {"image": args.tile_image,
           "normal_error_deg_whole": float(angular_error_deg(whole[:, :3], maps.normal).mean()),
           "flat_error_deg": float(angular_error_deg(_flat_like(maps.normal), maps.normal).mean()), "settings": []}
    for tile, overlap in args.tiles:
        tiled = capture(image, model, tile=tile, overlap=overlap, uncertainty=None)
        diff = angular_error_deg(tiled.normal, whole[:, :3])
        out["settings"].append({
            "tile": tile, "overlap": overlap, "tiled_vs_whole_deg_mean": float(diff.mean()),
            "tiled_vs_whole_deg_p99": float(torch.quantile(diff.flatten(), 0.99)),
            "seam_ratio_tiled": seam_ratio(tiled.normal, tile, overlap),
            "seam_ratio_whole_same_positions": seam_ratio(whole[:, :3], tile, overlap),
            "normal_error_deg_tiled": float(angular_error_deg(tiled.normal, maps.normal).mean())})
    tile, overlap = args.tiles[0]
    odd_maps, odd_image = heldout_set(1, (args.odd_size[0], args.odd_size[1]), seed=HELDOUT_SEED + 2)
    odd = capture(odd_image, model, tile=tile, overlap=overlap, uncertainty="tta")
    out.update({"odd_size": list(args.odd_size), "odd_shape_ok": tuple(odd.normal.shape[-2:]) == tuple(args.odd_size),
                "odd_normal_error_deg": float(angular_error_deg(odd.normal, odd_maps.normal).mean()),
                "odd_flat_error_deg": float(angular_error_deg(_flat_like(odd_maps.normal), odd_maps.normal).mean())})
    return out


def timing_section(args, model) -> dict:
    """Wall time of capture at ``--timing-size`` (one run each, after a small warm-up)."""
    from solvers.umat.capture import capture
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import scanner_image
    size = args.timing_size
    t0 = time.perf_counter()
    image = scanner_image(generate_materials(1, size, kinds=("twill",), seed=HELDOUT_SEED + 3))
    out = {"size": size, "generate_s": time.perf_counter() - t0, "threads": torch.get_num_threads()}
    capture(image[..., :args.tile, :args.tile], model, uncertainty=None)  # warm-up
    for method in ("none", "tta", "mc_dropout"):
        t0 = time.perf_counter()
        capture(image, model, tile=args.tile, overlap=args.overlap, uncertainty=None if method == "none" else method)
        out[f"capture_{method}_s"] = time.perf_counter() - t0
    return out


def targets(result: dict) -> list[dict]:
    """The issue's acceptance numbers next to the measured ones."""
    rows = TargetRows()
    add = rows.add
    if "accuracy" in result:
        a = result["accuracy"]
        ratio = a["normal_ratio_model_over_flat"]
        add("normal error model/flat", ratio, "<= 0.5", ratio <= 0.5)
        add("normal error model/SfS heuristic", a["normal_ratio_model_over_sfs"], "< 1 (report)",
            a["normal_ratio_model_over_sfs"] < 1)
        for name in ("roughness", "specular"):
            r = a[f"{name}_rmse"]["ratio"]
            add(f"{name} RMSE model/constant mean", r, "report (<=0.95 good)", r <= 0.95)
        r = a["rerender_log_rmse"]["ratio"]
        add("re-render log RMSE model/(flat+mean)", r, "< 1", r < 1)
    for method, u in result.get("uncertainty", {}).items():
        add(f"{method}: Spearman(score, error) per pixel", u["spearman_pixel"], ">= 0.25", u["spearman_pixel"] >= 0.25)
        add(f"{method}: error drop, 20% most uncertain removed", u["error_drop_20pct"], ">= 0.15",
            u["error_drop_20pct"] >= 0.15)
        raw = u["raw_pixel_score"]
        add(f"{method} (raw spread, shrink 0): Spearman per pixel", raw["spearman_pixel"], ">= 0.25",
            raw["spearman_pixel"] >= 0.25)
        add(f"{method} (raw spread, shrink 0): error drop 20%", raw["error_drop_20pct"], ">= 0.15",
            raw["error_drop_20pct"] >= 0.15)
    if "active" in result:
        r = result["active"]["uncertainty_over_random"]
        add("active learning error uncertainty/random (3 seeds)", r, "<= 1", r <= 1)
    if "tiling" in result:
        t = result["tiling"]
        for row in t["settings"]:
            setting = f"tile {row['tile']}/overlap {row['overlap']}"
            add(f"tiled vs whole normals [deg], {setting}", row["tiled_vs_whole_deg_mean"], "<= 0.5",
                row["tiled_vs_whole_deg_mean"] <= 0.5)
            add(f"seam statistic (border/interior), {setting}", row["seam_ratio_tiled"], "<= 1.1",
                row["seam_ratio_tiled"] <= 1.1)
        add(f"odd size {t['odd_size']} works", float(t["odd_shape_ok"]), "1", t["odd_shape_ok"])
    if "timing" in result:
        t = result["timing"]
        add(f"capture {t['size']}^2 with TTA [s]", t["capture_tta_s"], "report", True)
    return rows


def _pair(text: str) -> tuple[int, int]:
    tile, _, overlap = text.partition(":")
    return int(tile), int(overlap or 0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml bench umat", description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="umat", help="shipped name or .safetensors path")
    p.add_argument("--n-test", type=int, default=20, help="held-out materials (the 5 kinds cycle)")
    p.add_argument("--size", type=int, default=64, help="held-out material size")
    p.add_argument("--mc-samples", type=int, default=8)
    p.add_argument("--ensemble-members", type=int, default=3, help="0: no ensemble")
    p.add_argument("--ensemble-steps", type=int, default=150)
    p.add_argument("--active-seeds", type=int, nargs="*", default=[0, 1, 2], help="none: skip active learning")
    p.add_argument("--active-steps", type=int, nargs=2, default=[80, 40], metavar=("INITIAL", "ROUND"))
    p.add_argument("--tile", type=int, default=128, help="tile of the timing and odd-size captures")
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--tiles", type=_pair, nargs="+", default=[(128, 32), (256, 64)], metavar="TILE:OVERLAP",
                   help="tiling settings compared with whole-image inference")
    p.add_argument("--tile-image", type=int, default=512)
    p.add_argument("--odd-size", type=int, nargs=2, default=[257, 199])
    p.add_argument("--timing-size", type=int, default=1024, help="0: skip timing")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--progress", action="store_true")
    p.add_argument("--skip", nargs="*", default=[], choices=["uncertainty", "active", "tiling", "timing"])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the whole pipeline")
    return p


QUICK = {"n_test": 4, "size": 48, "mc_samples": 3, "ensemble_members": 2, "ensemble_steps": 3, "active_seeds": [0],
         "active_steps": [3, 2], "tile": 64, "overlap": 16, "tiles": [(64, 16)], "tile_image": 96, "odd_size": [71, 53],
         "timing_size": 96}


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench umat`` options, run every section, return the JSON-ready results."""
    args = _parser().parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.cache_dir = str(Path(args.cache_dir) / "quick")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_model(args.weights)
    maps, image = heldout_set(args.n_test, args.size)
    base = fit_baselines()
    result = {"benchmark": "umat", "device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "args": vars(args), "heldout": {"seed": HELDOUT_SEED, "n": args.n_test, "size": args.size},
              "model": {"weights": str(args.weights), "config": dict(model.config),
                        "params": sum(p.numel() for p in model.parameters())},
              "baselines": base}
    t0 = time.perf_counter()
    result["accuracy"] = accuracy_section(model, maps, image, base)
    result["accuracy"]["seconds"] = time.perf_counter() - t0
    if "uncertainty" not in args.skip:
        result["uncertainty"] = uncertainty_section(args, model, maps, image)
        result["shrink_sweep_training_seeds"] = shrink_sweep(model, args.n_test, args.size)
    if args.active_seeds and "active" not in args.skip:
        from solvers.umat.active import ActiveConfig, active_learning
        cfg = ActiveConfig(seeds=tuple(args.active_seeds), steps_initial=args.active_steps[0],
                           steps_round=args.active_steps[1])
        if args.quick:
            cfg = ActiveConfig(seeds=tuple(args.active_seeds), steps_initial=args.active_steps[0],
                               steps_round=args.active_steps[1], pool_size=8, initial=2, per_round=2,
                               n_test=2, material_size=32, test_size=32, base_channels=8)
        result["active"] = active_learning(cfg)
    if "tiling" not in args.skip:
        t0 = time.perf_counter()
        result["tiling"] = tiling_section(args, model)
        result["tiling"]["seconds"] = time.perf_counter() - t0
    if args.timing_size and "timing" not in args.skip:
        result["timing"] = timing_section(args, model)
    result["targets"] = targets(result)
    result["wall_s"] = time.perf_counter() - started
    result["table"] = format_table(result["targets"], TARGET_COLUMNS)
    return result
