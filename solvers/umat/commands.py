"""``sciml train umat``: train the UMat generator on procedural textiles and write the shipped weights.

Writes ``OUT.safetensors`` (weights; network settings and recipe in the metadata) and
``OUT.json`` (the recipe, with the exact ``sciml train umat ...`` command that reproduces the
file: a run stopped by ``--time-limit`` records the steps it did). Training is resumable from
``--checkpoint-dir`` (``--resume``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from sciml.io import atomic_path
from sciml.pretrained import data_dir
from sciml.train import reproducing_command
from solvers.umat.losses import LossWeights
from solvers.umat.training import (
    DEFAULT_NAME,
    TRAIN_SEED_LIMIT,
    UMatTrainConfig,
    heldout_set,
    save_model,
    train_umat,
)

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml train umat", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help="output path without suffix (default: the data dir's 'umat'): OUT.safetensors + OUT.json")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--time-limit", type=float, default=None,
                   help="stop after this many seconds (the recipe records the steps done)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-final", type=float, default=0.1, help="cosine decay to lr * this")
    p.add_argument("--schedule-steps", type=int, default=None,
                   help="length of the cosine schedule (default --steps; recorded in the recipe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--material-size", type=int, default=64)
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--kinds", nargs="+", default=None, help="material kinds (default: all)")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--attention", choices=["linear", "softmax", "none"], default="linear")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--norm", choices=["layer", "group", "none"], default="layer",
                   help="normalisation in the conv blocks ('layer': per pixel, so tiles match the whole image)")
    p.add_argument("--render-weight", type=float, default=1.0)
    p.add_argument("--n-lights", type=int, default=3)
    p.add_argument("--adversarial-weight", type=float, default=0.0,
                   help="U-Net GAN generator term (0 = off, the default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--checkpoint-dir", type=Path, default=Path("sciml_out/umat-train"))
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> UMatTrainConfig:
    """The :class:`UMatTrainConfig` described by parsed command-line options."""
    weights = LossWeights(render=args.render_weight, n_lights=args.n_lights, adversarial=args.adversarial_weight)
    return UMatTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_final=args.lr_final,
                           schedule_steps=args.schedule_steps,
                           seed=args.seed, device=args.device, material_size=args.material_size, crop=args.crop,
                           kinds=args.kinds, base_channels=args.base_channels, depth=args.depth,
                           attention=args.attention, dropout=args.dropout, norm=args.norm,
                           weights=weights,
                           checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                           resume=args.resume, progress=not args.no_progress, time_limit_s=args.time_limit)


def quick_eval(model: torch.nn.Module, n: int = 20, size: int = 64) -> dict:
    """Normal angular error (degrees) of ``model`` and of flat normals on ``n`` held-out materials."""
    from solvers.umat.uncertainty import angular_error_deg
    maps, image = heldout_set(n, size)
    with torch.no_grad():
        pred = model.cpu().eval()(image)
    flat = torch.zeros_like(maps.normal)
    flat[:, 2] = 1
    return {"n": n, "size": size, "normal_error_deg": float(angular_error_deg(pred[:, :3], maps.normal).mean()),
            "flat_normal_error_deg": float(angular_error_deg(flat, maps.normal).mean())}


_NO_EFFECT = {"--resume": 0, "--no-progress": 0, "--checkpoint-dir": 1, "--checkpoint-every": 1, "--out": 1}


def _result_argv(argv: list[str]) -> list[str]:
    """``argv`` without the options that do not change the trained weights (checkpointing, progress, output).

    The recorded command therefore writes to the default location (the data dir's ``umat``).
    """
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in _NO_EFFECT:
            skip = _NO_EFFECT[name] if "=" not in arg else 0
            continue
        kept.append(arg)
    return kept


def train(argv: list[str] | None = None) -> int:
    """Run the training described by ``argv``; returns 0 on success."""
    argv = list(argv or [])
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    started = time.perf_counter()
    result = train_umat(config)
    out = args.out if args.out is not None else data_dir() / DEFAULT_NAME
    out = out.with_suffix("") if out.suffix in (".safetensors", ".json") else out
    losses = result.losses
    if args.schedule_steps is None:  # pin the schedule so that '--steps DONE' reproduces a stopped run
        argv = [*argv, "--schedule-steps", str(args.steps)]
    recipe = {"command": reproducing_command("sciml train umat", _result_argv(argv), result.steps),
              "config": {**config.to_json(), "steps": result.steps,
                         "schedule_steps": config.schedule_steps or args.steps, "resume": False, "progress": False,
                         "time_limit_s": None},
              "steps": result.steps, "seed": args.seed, "train_seed_range": [0, TRAIN_SEED_LIMIT],
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "final_loss_mean_last20": float(np.mean(losses[-20:])) if losses else None,
              "loss_first_20": float(np.mean(losses[:20])) if losses else None,
              "train_s_this_call": time.perf_counter() - started, "resumed_from_step": result.start_step,
              "heldout": quick_eval(result.model)}
    path = save_model(result.model.cpu(), out.parent / f"{out.name}.safetensors", recipe)
    with atomic_path(out.parent / f"{out.name}.json") as tmp:
        tmp.write_text(json.dumps(recipe, indent=2) + "\n")
    logger.info("wrote %s (held-out normal error %.2f deg vs flat %.2f deg)", path,
                recipe["heldout"]["normal_error_deg"], recipe["heldout"]["flat_normal_error_deg"])
    return 0
