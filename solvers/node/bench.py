"""``sciml bench node``: vanilla vs regularised neural ODEs, same seeds, same run.

* **digits** (scikit-learn ``load_digits``) and **dynamics** (noisy damped oscillator): for every
  seed, train vanilla, ERNODE (global) and local (unbiased and biased) variants with the same data,
  initialisation and batches; report test NFE, accuracy / fit error, prediction wall time,
  training time and the ratios to vanilla.
* **adjoint step cost**: median wall time of one training step of the digits model with
  ``odeint_adjoint``, vanilla vs local regulariser, interleaved on the same machine.
* **checks**: finite-difference check of the global regulariser's gradient (float64) and
  bitwise equality of weight-0 training with vanilla training.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch

from sciml.benchmarks.table import format_table, number
from solvers.node.schedule import paper_schedule
from solvers.node.tasks import (
    SYSTEMS,
    Variant,
    digits_data,
    dynamics_data,
    evaluate_digits,
    evaluate_dynamics,
    train_digits,
    train_dynamics,
)

logger = logging.getLogger(__name__)


def variants(task: str, steps: int) -> list[Variant]:
    """The compared recipes; the papers' schedules, scaled to each task's regulariser size.

    The error estimate is relative to the tolerance, so its gradient scales like ``1 / tol``
    and the papers' weights (MNIST at tol 1.4e-8 with a ``mean`` over steps) do not carry
    over unchanged; the local regulariser's step from the initial-step heuristic is tiny
    (``EEst * dt ~ dt^6``), hence its large scale.
    """
    scale_global, scale_local = {"digits": (1e-2, 1e4), "dynamics": (1e-5, 1.0)}[task]
    g_err, g_stiff = paper_schedule("global-mnist", steps, scale_global)
    l_err, _ = paper_schedule("local", steps, scale_local)
    return [Variant("vanilla"), Variant("global", "global", error_weight=g_err, stiffness_weight=g_stiff),
            Variant("local", "local", "unbiased", error_weight=l_err),
            Variant("local-biased", "local", "biased", error_weight=l_err)]


def _run_task(task: str, seeds: list[int], steps: int, tol: float) -> list[dict]:
    data = digits_data() if task == "digits" else dynamics_data()
    train, evaluate = (train_digits, evaluate_digits) if task == "digits" else (train_dynamics, evaluate_dynamics)
    rows = []
    for seed in seeds:
        for variant in variants(task, steps):
            logger.info("node bench: %s %s seed %d", task, variant.name, seed)
            model, info = train(variant, seed, steps=steps, data=data, rtol=tol, atol=tol)
            result = evaluate(model, data)
            rows.append({"task": task, "method": variant.name, "seed": seed, **result, "train_s": info["train_s"],
                         "train_nfe": info["train_nfe"], "final_loss": info["losses"][-1]})
    return rows


def _reference_nfe(tol: float) -> int:
    """NFE of the *true* oscillator on the test trajectories (the floor for a model that fits)."""
    from torchdiffeq import odeint

    from solvers.node.recorder import StepRecorder
    data = dynamics_data()
    rec = StepRecorder(lambda t, y: SYSTEMS["oscillator"](y))
    odeint(rec, data["test"][0], data["t"], rtol=tol, atol=tol, method="tsit5", options={"norm": rec.norm})
    return rec.nfe


def summarise(rows: list[dict], task: str) -> dict:
    """Means over seeds and per-seed ratios to vanilla; the acceptance flags of the issue."""
    metric = "accuracy" if task == "digits" else "fit_error"
    mine = [r for r in rows if r["task"] == task]
    vanilla = {r["seed"]: r for r in mine if r["method"] == "vanilla"}
    out = {}
    for method in dict.fromkeys(r["method"] for r in mine):
        rs = [r for r in mine if r["method"] == method]
        nfe_ratio = [r["nfe"] / vanilla[r["seed"]]["nfe"] for r in rs]
        diff = [r[metric] - vanilla[r["seed"]][metric] for r in rs]
        mean = {k: statistics.fmean(r[k] for r in rs) for k in ("nfe", metric, "predict_s", "train_s")}
        out[method] = {
            "mean_nfe": mean["nfe"], f"mean_{metric}": mean[metric], "mean_predict_s": mean["predict_s"],
            "mean_train_s": mean["train_s"], "nfe_ratio_per_seed": nfe_ratio,
            "nfe_ratio_of_means": mean["nfe"] / statistics.fmean(v["nfe"] for v in vanilla.values()),
            f"{metric}_diff_per_seed": diff, f"mean_{metric}_diff": statistics.fmean(diff),
            "predict_time_ratio": mean["predict_s"] / statistics.fmean(v["predict_s"] for v in vanilla.values()),
            "train_time_ratio": mean["train_s"] / statistics.fmean(v["train_s"] for v in vanilla.values()),
        }
        worse = [-d for d in diff] if metric == "accuracy" else diff
        out[method]["target_nfe_le_0.75"] = out[method]["nfe_ratio_of_means"] <= 0.75
        out[method]["target_metric_within_1pct"] = statistics.fmean(worse) <= 0.01
    return out


def _step(model, opt, x, y, weight: float, regularise: bool, generator) -> tuple[float, int]:
    start, before = time.perf_counter(), model.ode.func.nfe
    opt.zero_grad()
    if regularise:
        logits, sol = model(x, generator=generator)
    else:
        logits, sol = model.decoder(model.ode(model.encoder(x), regularise=False).final), None
    loss = torch.nn.functional.cross_entropy(logits, y)
    if sol is not None and sol.error is not None:
        loss = loss + weight * sol.error
    loss.backward()
    return time.perf_counter() - start, model.ode.func.nfe - before


def adjoint_step_cost(steps: int = 30, tol: float = 1e-7, seed: int = 0) -> dict:
    """Wall time of one digits training step with ``odeint_adjoint``: vanilla vs local (unbiased).

    * ``same_state``: one model; at every step the vanilla step (no regulariser) and the local
      step are timed on the *same* parameters and batch (pure overhead of the regulariser), in
      alternating order, then the optimiser applies the local step's gradients;
    * ``own_training``: two models trained side by side from the same initialisation and
      batches, steps interleaved (includes the regulariser's effect on the solver's steps).
    Medians over ``steps`` steps after two warm-up steps.
    """
    from solvers.node.tasks import DigitsClassifier
    x, y, _, _ = digits_data()
    weight = paper_schedule("local", steps, 1e4)[0]
    gen, reg_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    models, opts = {}, {}
    for name in ("shared", "vanilla", "local"):
        torch.manual_seed(seed)
        variant = Variant(name, "none" if name == "vanilla" else "local", adjoint=True)
        models[name] = DigitsClassifier(variant=variant, rtol=tol, atol=tol)
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=1e-2)
    rec = {k: ([], []) for k in ("same_vanilla", "same_local", "own_vanilla", "own_local")}
    for step in range(steps + 2):
        idx = torch.randint(0, len(y), (128,), generator=gen)
        order = (False, True) if step % 2 else (True, False)  # alternate which is timed first
        results = {}
        for regularise in order:  # the local step's gradients are the ones applied
            results["same_local" if regularise else "same_vanilla"] = _step(
                models["shared"], opts["shared"], x[idx], y[idx], weight(step), regularise, reg_gen)
        if not order[-1]:
            _step(models["shared"], opts["shared"], x[idx], y[idx], weight(step), True, reg_gen)
        opts["shared"].step()
        for name in ("vanilla", "local"):
            results[f"own_{name}"] = _step(models[name], opts[name], x[idx], y[idx], weight(step), name == "local",
                                           reg_gen)
            opts[name].step()
        if step >= 2:
            for k, (seconds, nfe) in results.items():
                rec[k][0].append(seconds)
                rec[k][1].append(nfe)
    out = {"steps": steps}
    for mode in ("same", "own"):
        v, loc = statistics.median(rec[f"{mode}_vanilla"][0]), statistics.median(rec[f"{mode}_local"][0])
        out[f"{mode}_state" if mode == "same" else "own_training"] = {
            "vanilla_step_s": v, "local_step_s": loc, "ratio": loc / v,
            "vanilla_step_nfe": statistics.fmean(rec[f"{mode}_vanilla"][1]),
            "local_step_nfe": statistics.fmean(rec[f"{mode}_local"][1])}
    out["target_ratio_le_1.2"] = out["same_state"]["ratio"] <= 1.2
    return out


def _fd_check() -> dict:
    """Central differences (float64, fixed step sequence) vs autograd for R_E and R_S."""
    from torch.func import functional_call

    from solvers.node.ode import NeuralODE
    from solvers.node.tasks import MLPField
    torch.manual_seed(0)
    model = NeuralODE(MLPField(2, 5, time=True, dtype=torch.float64), regulariser="global", rtol=1e-4, atol=1e-4,
                      options={"first_step": 0.3, "min_step": 0.3, "ifactor": 1.0, "dfactor": 1.0})
    y0 = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_()

    def fn(th):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = th[i:i + s.numel()].view(s)
            i += s.numel()
        sol = functional_call(model, params, (y0,), {"regularise": True})
        return torch.stack([sol.error, sol.stiffness])
    analytic = torch.autograd.functional.jacobian(fn, theta)
    eps, numeric = 1e-5, torch.zeros_like(analytic)
    with torch.no_grad():
        for i in range(theta.numel()):
            e = torch.zeros_like(theta)
            e[i] = eps
            numeric[:, i] = (fn(theta + e) - fn(theta - e)) / (2 * eps)
    err = float((analytic - numeric).abs().max() / numeric.abs().max())
    return {"fd_max_rel_error": err, "fd_passed": err < 1e-4, "fd_parameters": theta.numel()}


def _weight_zero_check() -> dict:
    """Five digits training steps with weight 0: parameters bitwise equal to vanilla's?"""
    data = tuple(t[:256] for t in digits_data())
    kw = {"steps": 5, "batch": 64, "data": data, "width": 8, "hidden": 16}
    vanilla, _ = train_digits(Variant("vanilla"), 0, **kw)
    out = {}
    for reg in ("global", "local"):
        zero, _ = train_digits(Variant("w0", reg), 0, **kw)
        out[f"weight0_{reg}_bitwise_equal"] = all(torch.equal(a, b) for a, b in zip(vanilla.parameters(),
                                                                                    zero.parameters()))
    return out


COLUMNS = [("task", -8, lambda r: r["task"]), ("method", -12, lambda r: r["method"]), ("seed", 4, number("seed", "d")),
           ("NFE", 5, number("nfe", "d")), ("steps", 5, number("steps", "d")),
           ("acc/err", 8, lambda r: f"{r.get('accuracy', r.get('fit_error')):.4f}"),
           ("pred s", 8, number("predict_s", ".4f")), ("train s", 8, number("train_s", ".1f")),
           ("train NFE", 9, number("train_nfe", "d"))]


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench node`` options, run, and return the JSON-ready results."""
    parser = argparse.ArgumentParser(prog="sciml bench node", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=["digits", "dynamics"], choices=["digits", "dynamics"])
    parser.add_argument("--digits-steps", type=int, default=150)
    parser.add_argument("--digits-tol", type=float, default=1e-7)
    parser.add_argument("--dynamics-steps", type=int, default=150)
    parser.add_argument("--dynamics-tol", type=float, default=1e-5)
    parser.add_argument("--timing-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows, summary = [], {}
    for task in args.tasks:
        steps = args.digits_steps if task == "digits" else args.dynamics_steps
        tol = args.digits_tol if task == "digits" else args.dynamics_tol
        rows += _run_task(task, args.seeds, steps, tol)
        summary[task] = summarise(rows, task)
    if "dynamics" in args.tasks:
        summary["dynamics"]["true_system_nfe"] = _reference_nfe(args.dynamics_tol)
    adjoint = adjoint_step_cost(args.timing_steps, args.digits_tol)
    checks = {**_fd_check(), **_weight_zero_check()}
    return {"benchmark": "node", "seeds": args.seeds, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "digits_tol": args.digits_tol, "dynamics_tol": args.dynamics_tol, "rows": rows, "summary": summary,
            "adjoint_local_step_cost": adjoint, "checks": checks, "wall_s": time.perf_counter() - started,
            "table": format_table(rows, COLUMNS)}
