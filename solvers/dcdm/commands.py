"""``sciml train dcdm``: reproduce the shipped DCDM weights."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from sciml.train import TrainConfig, reproducing_command, resolve_device
from solvers.dcdm.network import PaperDCDMNet, RecursiveUNetDCDMNet, UNetDCDMNet
from sciml.pretrained import data_dir
from solvers.dcdm.solver import DCDMSolver
from solvers.dcdm.training import DCDMTrainingSetup, train_dcdm

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml train dcdm", description="Train a DCDM direction network on Ritz "
                                "vectors of the training scenes and save it (safetensors + JSON recipe).")
    p.add_argument("--arch", choices=["unet", "paper", "recursive"], default="unet")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32],
                   help="training grid sizes, cells per side (default 16 32)")
    p.add_argument("--scenes", nargs="+", default=None, help="training scene names (default: all)")
    p.add_argument("--lanczos-steps", type=int, nargs="+", default=[500],
                   help="Lanczos steps per training matrix: one count, or one per size (default 500)")
    p.add_argument("--lanczos-memory-gb", type=float, default=2.0,
                   help="memory budget of one float64 Lanczos basis (the paper's 10,000 steps at 64^3 need 21 GB)")
    p.add_argument("--prolong", type=int, default=0,
                   help="add the lowest K Ritz vectors of the next coarser training size, interpolated, to each "
                        "larger size's basis (default 0; with --lanczos-steps 0 for a size, they are its basis)")
    p.add_argument("--noise", type=float, default=None,
                   help="white-noise level mixed into the Ritz samples "
                        "(default 0.5 for unet and recursive, 0 = the paper for paper)")
    p.add_argument("--unroll", type=int, default=1,
                   help="solver iterations per loss (default 1, the paper's loss; see dcdm_unrolled_loss)")
    p.add_argument("--on-policy", type=float, default=0.0,
                   help="fraction of each batch replaced by the network's own one-step residuals (default 0)")
    p.add_argument("--init", type=Path, default=None, help="start from these weights (fine-tuning)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--time-limit", type=float, default=None,
                   help="stop after this many seconds of training (the recipe records the steps done)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="output .safetensors (default data/dcdm-ARCH.safetensors)")
    p.add_argument("--checkpoint-dir", type=Path, default=Path("sciml_out/dcdm-train"))
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    return p


def _one_or_list(values: list[int]) -> int | list[int]:
    """A single value as itself (as older recipes record it), several as a list."""
    return values[0] if len(values) == 1 else values


def train(argv: list[str]) -> int:
    """Run the training described by ``argv``; returns 0 on success."""
    from solvers.dcdm.scenes import training_scenes
    args = _parser().parse_args(argv)
    torch.manual_seed(args.seed)  # network initialisation
    model = {"unet": UNetDCDMNet, "paper": PaperDCDMNet, "recursive": RecursiveUNetDCDMNet}[args.arch]()
    scenes = args.scenes or [s if isinstance(s, str) else s.name for s in training_scenes()]
    started = time.perf_counter()
    noise = args.noise if args.noise is not None else (0.0 if args.arch == "paper" else 0.5)
    unroll = args.unroll
    if args.init is not None:
        model = DCDMSolver.from_pretrained(args.init).model.float().train()
    device = resolve_device(args.device)
    setup = DCDMTrainingSetup.build(scenes, args.sizes, args.lanczos_steps, seed=args.seed, noise=noise,
                                    unroll=unroll, on_policy=args.on_policy, device=device,
                                    lanczos_memory_gb=args.lanczos_memory_gb, prolong=args.prolong)
    data_s = time.perf_counter() - started
    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         device=args.device, checkpoint_dir=args.checkpoint_dir / args.arch,
                         checkpoint_every=args.checkpoint_every, resume=args.resume, progress=True,
                         time_limit_s=args.time_limit)
    result = train_dcdm(model, setup, config)
    out = args.out or data_dir() / f"dcdm-{args.arch}.safetensors"
    first, last = result.losses[:100], result.losses[-100:]
    recipe = {"command": reproducing_command("sciml train dcdm", argv, result.steps), "training_scenes": scenes,
              "sizes": args.sizes, "lanczos_steps": _one_or_list(args.lanczos_steps),
              "lanczos_memory_gb": args.lanczos_memory_gb, "prolong": args.prolong, "noise": noise,
              "unroll": unroll, "on_policy": args.on_policy,
              "init": str(args.init) if args.init else None, "steps": result.steps, "lr": args.lr,
              "batch_size": args.batch_size, "seed": args.seed, "final_loss": result.losses[-1],
              "loss_first_100": sum(first) / max(len(first), 1), "loss_last_100": sum(last) / max(len(last), 1),
              "lanczos_s": data_s, "train_s": result.wall_time}
    DCDMSolver(result.model).save(out, **recipe)
    logger.info("saved %s (final loss %.4f)", out, result.losses[-1])
    return 0
