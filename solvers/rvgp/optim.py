"""scipy L-BFGS-B (RVGP's optimiser) on torch parameters with autograd gradients."""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["minimize_lbfgsb"]

logger = logging.getLogger(__name__)


def minimize_lbfgsb(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], max_iter: int = 200) -> float:
    """Minimise ``loss_fn()`` over ``params`` in place; returns the final loss.

    A loss that raises ``torch.linalg.LinAlgError`` or is not finite counts as ``1e30``
    (the line search steps back). The parameters end at the best point seen by scipy or at
    the start, whichever is lower.
    """
    from scipy.optimize import minimize
    sizes = [p.numel() for p in params]

    def assign(flat: np.ndarray) -> None:
        with torch.no_grad():
            for p, chunk in zip(params, np.split(flat, np.cumsum(sizes)[:-1])):
                p.copy_(torch.as_tensor(chunk, dtype=p.dtype, device=p.device).reshape(p.shape))

    def objective(flat: np.ndarray):
        assign(flat)
        for p in params:
            p.grad = None
        try:
            loss = loss_fn()
        except torch.linalg.LinAlgError:
            return 1e30, np.zeros_like(flat)
        if loss is None:
            return 1e30, np.zeros_like(flat)
        loss.backward()
        grad = np.concatenate([p.grad.detach().cpu().numpy().ravel() if p.grad is not None
                               else np.zeros(p.numel()) for p in params])
        value = float(loss.detach())
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return 1e30, np.zeros_like(flat)
        return value, grad

    x0 = np.concatenate([p.detach().cpu().numpy().ravel() for p in params]).astype(np.float64)
    start_value = objective(x0)[0]
    result = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    best, value = (result.x, float(result.fun)) if result.fun <= start_value else (x0, start_value)
    assign(best)
    for p in params:
        p.grad = None
    logger.debug("L-BFGS-B: %s after %d iterations", result.message, result.nit)
    return value
