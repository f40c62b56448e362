"""``sciml demo node``: vanilla vs regularised neural ODE on the noisy damped oscillator."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sciml.plot import pyplot, save_figure
from sciml.registry import DemoRow
from solvers.node.schedule import paper_schedule
from solvers.node.tasks import Variant, dynamics_data, evaluate_dynamics, train_dynamics


def _plot(histories: dict, results: dict, data: dict, predictions: dict, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=110)
    for name, info in histories.items():
        label = f"{name}: test NFE {results[name]['nfe']}, error {results[name]['fit_error']:.3f}"
        axes[0].plot(info["nfe_per_step"], label=label)
        axes[1].semilogy(info["losses"], label=name)
    axes[0].set(xlabel="training step", ylabel="NFE per training step (forward + regulariser)",
                title="function evaluations")
    axes[1].set(xlabel="training step", ylabel="loss (L1 fit + weighted regulariser)", title="training loss")
    t = data["t"].numpy()
    axes[2].plot(t, data["test"][:, 0, 0].numpy(), "k-", lw=2, label="truth (clean)")
    for name, ys in predictions.items():
        axes[2].plot(t, ys[:, 0, 0], "--", label=name)
    axes[2].set(xlabel="t", ylabel="x(t)", title="a held-out test trajectory")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def demo(out: Path, device: str = "cpu", steps: int = 120, seed: int = 0, tol: float = 1e-5,
         scale: float = 1e-5) -> list[DemoRow]:
    """Train vanilla and ERNODE-regularised models on the oscillator; plot NFE and error.

    Parameters
    ----------
    out : Path
        Output folder; writes ``node_nfe_error.png``.
    device : str
        Only ``"cpu"`` is used (the models are tiny).
    steps, seed, tol : training steps, seed and solver tolerance.
    scale : float
        Multiplies the papers' MNIST schedule (100 -> 10, stiffness 0.0285); larger values
        (1e-4 and up) trade the fit for fewer evaluations on this task.

    Returns
    -------
    list of DemoRow
        Test NFE and test fit error of the regularised model vs vanilla.
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: extra threads only cost (and thrash on a busy machine)
    try:
        return _demo(Path(out), steps, seed, tol, scale)
    finally:
        torch.set_num_threads(threads)


def _demo(out: Path, steps: int, seed: int, tol: float, scale: float) -> list[DemoRow]:
    import torch
    out.mkdir(parents=True, exist_ok=True)
    data = dynamics_data(t_max=3.0, n_times=16)
    err, stiff = paper_schedule("global-mnist", steps, scale)
    variants = [Variant("vanilla"), Variant("global (ERNODE)", "global", error_weight=err, stiffness_weight=stiff)]
    histories, results, predictions = {}, {}, {}
    for variant in variants:
        model, info = train_dynamics(variant, seed, steps=steps, data=data, rtol=tol, atol=tol)
        histories[variant.name], results[variant.name] = info, evaluate_dynamics(model, data)
        with torch.no_grad():
            model.eval()
            predictions[variant.name] = model(data["test"][0], data["t"]).ys.numpy()
    path = _plot(histories, results, data, predictions, out / "node_nfe_error.png")
    reg, van = results["global (ERNODE)"], results["vanilla"]
    problem = f"noisy damped oscillator, {steps} steps, tol {tol:g}"
    return [DemoRow("node", problem, "test NFE", reg["nfe"], "vanilla NODE", van["nfe"],
                    histories["global (ERNODE)"]["train_s"], [path]),
            DemoRow("node", problem, "test fit error (rel. L2)", reg["fit_error"], "vanilla NODE", van["fit_error"],
                    float(np.float64(reg["predict_s"])), [path])]
