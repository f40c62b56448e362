"""``sciml train dgno``: train DGNO on unlabelled two-phase coefficients and write shipped weights."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path

import numpy as np
import torch

from sciml.io import atomic_path
from sciml.pretrained import data_dir
from sciml.train import TrainConfig, reproducing_command
from solvers.dgno.darcy import generate_darcy
from solvers.dgno.model import DGNOConfig, train_dgno

logger = logging.getLogger(__name__)

DEFAULT_NAME = "dgno-two-phase"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml train dgno", description=__doc__.split("\n")[0])
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("--out", default=None, help="folder of NAME.safetensors / NAME.json (default: sciml data dir)")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--refine", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay-every", type=int, default=2000)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--n-centres", type=int, default=64)
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "sciml" / "dgno"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--time-limit", type=float, default=None, help="stop (with a checkpoint) after this many seconds")
    p.add_argument("--no-progress", action="store_true")
    return p


def train(argv: list[str] | None = None) -> int:
    """Train with the given options (resumable from ``--cache-dir``) and write ``NAME.safetensors`` + ``NAME.json``."""
    args = _parser().parse_args(argv)
    data = generate_darcy(args.n_train, seed=args.seed, refine=args.refine, cache_dir=args.cache_dir,
                          progress=not args.no_progress)
    config = DGNOConfig(latent=args.latent, width=args.width, depth=args.depth, n_centres=args.n_centres)
    tc = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed, device=args.device,
                     checkpoint_dir=Path(args.cache_dir) / f"train_{args.name}", checkpoint_every=500, resume=True,
                     progress=not args.no_progress, time_limit_s=args.time_limit)
    torch.manual_seed(args.seed)
    model, res = train_dgno(data.a, config, tc, lr_decay_every=args.decay_every)
    out = Path(args.out) if args.out else data_dir()
    recipe = {"command": "sciml train dgno " + " ".join(shlex.quote(a) for a in (argv or [])),
              "reproduce": reproducing_command("sciml train dgno", list(argv or []), res.steps),
              "data": {"kind": "two_phase", "n_train": args.n_train, "seed": args.seed, "refine": args.refine},
              "steps": res.steps, "final_loss_mean_last100": float(np.mean(res.losses[-100:])),
              "dgno_config": config.to_json()}
    model.cpu().save(out / f"{args.name}.safetensors", {"recipe": recipe})
    with atomic_path(out / f"{args.name}.json") as tmp:
        tmp.write_text(json.dumps(recipe, indent=2) + "\n")
    logger.info("wrote %s", out / f"{args.name}.safetensors")
    return 0
