"""``sciml train dgno``: train DGNO on unlabelled two-phase coefficients and write shipped weights."""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
from pathlib import Path

import numpy as np
import torch

from sciml.io import atomic_path
from sciml.pretrained import data_dir
from sciml.train import TrainConfig, reproducing_command
from solvers.dgno.darcy import generate_darcy, sample_coefficient
from solvers.dgno.latent import LatentPrior
from solvers.dgno.model import DGNO, DGNOConfig, train_dgno
from solvers.dgno.refine import refine_latent, refine_solution_decoders

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
    p.add_argument("--a-width", type=int, default=None,
                   help="width of the coefficient decoder (default: --width; the authors use 256 against 100)")
    p.add_argument("--a-depth", type=int, default=None, help="depth of the coefficient decoder (default: --depth)")
    p.add_argument("--n-centres", type=int, default=64)
    p.add_argument("--w-data", type=float, default=1.0, help="weight of the reconstruction of a (authors: 1)")
    p.add_argument("--n-unlabelled", type=int, default=0,
                   help="train on this many coefficients of the seed's stream (no FEM solves needed; the "
                        "authors use 10000); 0: the --n-train coefficients of the FEM dataset")
    p.add_argument("--refine-steps", type=int, default=0,
                   help="then refine the latent (solvers.dgno.refine; not the authors' method) for this many steps")
    p.add_argument("--refine-lr", type=float, default=1e-3)
    p.add_argument("--refine-batch", type=int, default=32)
    p.add_argument("--refine-decay-every", type=int, default=0)
    p.add_argument("--refine-w-u", type=float, default=100.0, help="weight keeping u(Enc(a)) on its value before")
    p.add_argument("--physics-steps", type=int, default=0,
                   help="then continue the physics training of the u- and flux decoders only, encoder and "
                        "a-decoder frozen (solvers.dgno.refine.refine_solution_decoders) for this many steps")
    p.add_argument("--physics-lr", type=float, default=3e-4)
    p.add_argument("--physics-batch", type=int, default=16)
    p.add_argument("--physics-decay-every", type=int, default=2500)
    p.add_argument("--init-weights", default=None,
                   help="start from these DGNO weights (same sizes) instead of at random")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "sciml" / "dgno"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--time-limit", type=float, default=None, help="stop (with a checkpoint) after this many seconds")
    p.add_argument("--no-progress", action="store_true")
    return p


_STAGES = ("train", "refine", "physics")
_NOT_STATE = {"name", "out", "cache_dir", "device", "time_limit", "no_progress"}


def _stage_dir(args, stage: str, start: DGNO | None) -> Path:
    """``CACHE_DIR/STAGE_NAME-FINGERPRINT``: the checkpoint folder of one training stage.

    The fingerprint hashes every option that decides the stage's starting point and data (not its
    own step count, so a run can be resumed with more steps, nor later stages' options) and the
    weights it starts from, so a resume never picks up a checkpoint of another run that had the
    same ``--name`` but, say, other ``--init-weights``.
    """
    later = _STAGES[_STAGES.index(stage) + 1:]
    own_steps = "steps" if stage == "train" else f"{stage}_steps"
    options = {k: v for k, v in sorted(vars(args).items())
               if k not in _NOT_STATE and k != own_steps and not k.startswith(tuple(f"{s}_" for s in later))}
    digest = hashlib.sha256(json.dumps(options, default=str).encode())
    if start is not None:
        for key, value in sorted(start.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return Path(args.cache_dir) / f"{stage}_{args.name}-{digest.hexdigest()[:12]}"


def _stage_config(args, stage: str, every: int, time_limit: float | None, start: DGNO) -> TrainConfig:
    """The resumable :class:`TrainConfig` of stage ``refine`` or ``physics`` from its ``--STAGE-*``
    options (checkpoints in :func:`_stage_dir`); also seeds torch as the stages expect."""
    torch.manual_seed(args.seed)
    return TrainConfig(steps=getattr(args, f"{stage}_steps"), batch_size=getattr(args, f"{stage}_batch"),
                       lr=getattr(args, f"{stage}_lr"), seed=args.seed, device=args.device,
                       checkpoint_dir=_stage_dir(args, stage, start), checkpoint_every=every,
                       resume=True, progress=not args.no_progress, time_limit_s=time_limit)


def _stage_summary(res) -> dict:
    """Steps, mean loss of the last 100 steps and wall time of a finished stage (for the recipe)."""
    return {"steps": res.steps, "final_loss_mean_last100": float(np.mean(res.losses[-100:])),
            "wall_s": res.wall_time}


def _initial_model(args, config: DGNOConfig) -> DGNO | None:
    """The ``--init-weights`` model, or ``None``. If only the coefficient decoder's size differs
    (``--a-width`` / ``--a-depth``), every other weight is kept and the coefficient decoder starts
    afresh; it then needs ``--steps`` or ``--refine-steps`` to be trained."""
    if not args.init_weights:
        return None
    model = DGNO.load(args.init_weights)
    have, want = model.config.to_json(), {**config.to_json(), "w_data": model.config.w_data}
    if have == want:
        return model
    decoder_sizes = ("a_width", "a_depth")
    if any(have[k] != want[k] for k in want if k not in decoder_sizes):
        raise ValueError(f"--init-weights {args.init_weights} has other sizes than the options; pass matching ones")
    if not (args.steps or args.refine_steps):
        raise ValueError("--a-width/--a-depth give a new, untrained coefficient decoder: "
                         "pass --refine-steps (or --steps) to train it")
    torch.manual_seed(args.seed)
    wider = DGNO(DGNOConfig(**want))
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("a_decoder.")}
    wider.load_state_dict(kept, strict=False)
    logger.info("coefficient decoder re-initialised at width %s, depth %s", want["a_width"], want["a_depth"])
    return wider


def train(argv: list[str] | None = None) -> int:
    """Train with the given options (resumable from ``--cache-dir``) and write ``NAME.safetensors`` + ``NAME.json``.

    Stage 1 is the authors' DGNO loss (skipped with ``--steps 0 --init-weights W``); stage 2, with
    ``--refine-steps N``, is the latent refinement of :mod:`solvers.dgno.refine`; stage 3, with
    ``--physics-steps N``, continues the physics training of the u- and flux decoders with the latent frozen
    (:func:`solvers.dgno.refine.refine_solution_decoders`). The latent prior
    of the inverse solve is then fitted to the training encodings and stored with the weights.
    """
    args = _parser().parse_args(argv)
    data = generate_darcy(args.n_train, seed=args.seed, refine=args.refine, cache_dir=args.cache_dir,
                          progress=not args.no_progress)
    a_train = data.a
    if args.n_unlabelled:
        a_train = np.stack([sample_coefficient("two_phase", args.seed, s, data.n_pix)
                            for s in range(args.n_unlabelled)])
    config = DGNOConfig(latent=args.latent, width=args.width, depth=args.depth, a_width=args.a_width,
                        a_depth=args.a_depth, n_centres=args.n_centres, w_data=args.w_data)
    model = _initial_model(args, config)
    if model is None and args.steps == 0:
        raise ValueError("--steps 0 skips DGNO training: pass --init-weights with a trained model")
    steps, final_loss = 0, None
    if args.steps:
        if model is not None:
            model.config.w_data = args.w_data
        tc = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed, device=args.device,
                         checkpoint_dir=_stage_dir(args, "train", model), checkpoint_every=500,
                         resume=True, progress=not args.no_progress, time_limit_s=args.time_limit)
        torch.manual_seed(args.seed)
        model, res = train_dgno(a_train, config, tc, lr_decay_every=args.decay_every, model=model)
        steps, final_loss = res.steps, float(np.mean(res.losses[-100:]))
    refined = None
    if args.refine_steps:
        tc = _stage_config(args, "refine", every=1000, time_limit=None, start=model)
        model, res = refine_latent(model, a_train, tc, w_u=args.refine_w_u, lr_decay_every=args.refine_decay_every)
        refined = _stage_summary(res)
    physics = None
    if args.physics_steps:
        tc = _stage_config(args, "physics", every=250, time_limit=args.time_limit, start=model)
        model, res = refine_solution_decoders(model, a_train, tc, lr_decay_every=args.physics_decay_every)
        physics = _stage_summary(res)
    model = model.cpu().eval()
    model.set_latent_prior(LatentPrior.fit(model, a_train))  # for solve_inverse(prior=model.latent_prior())
    out = Path(args.out) if args.out else data_dir()
    recipe = {"command": "sciml train dgno " + " ".join(shlex.quote(a) for a in (argv or [])),
              "reproduce": reproducing_command("sciml train dgno", list(argv or []), steps),
              "data": {"kind": "two_phase", "n_train": args.n_train, "seed": args.seed, "refine": args.refine,
                       "n_unlabelled": args.n_unlabelled},
              "init_weights": args.init_weights, "latent_prior": f"fitted to the {len(a_train)} training encodings",
              "steps": steps, "final_loss_mean_last100": final_loss, "latent_refinement": refined,
              "solution_decoder_refinement": physics,
              "dgno_config": model.config.to_json()}
    model.save(out / f"{args.name}.safetensors", {"recipe": recipe})
    with atomic_path(out / f"{args.name}.json") as tmp:
        tmp.write_text(json.dumps(recipe, indent=2) + "\n")
    logger.info("wrote %s", out / f"{args.name}.safetensors")
    return 0
