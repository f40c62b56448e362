"""The DCDM solver: conjugate directions from a trained network, with a classical fallback."""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sciml.io import atomic_path, load_checkpoint, save_checkpoint
from sciml.linalg import LinearOperator, PoissonStencil, SolveResult, as_operator, conjugate_directions, pcg
from sciml.pretrained import weights_path
from solvers.dcdm.network import build_network

logger = logging.getLogger(__name__)



class _Timed(LinearOperator):
    """Wraps an operator and accumulates the (synchronised) time spent in ``matvec``."""

    def __init__(self, op: LinearOperator):
        self.op, self.seconds = op, 0.0
        self.shape, self.dtype, self.device, self.symmetric = op.shape, op.dtype, op.device, op.symmetric

    def _matvec(self, x):
        start = time.perf_counter()
        y = self.op._matvec(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return y

    def diagonal(self):
        return self.op.diagonal()


DEFAULT_MODEL = "dcdm-recursive-gpu"
"""The shipped network that :meth:`DCDMSolver.from_pretrained` loads by default: the best of
the four on the held-out scenes (``docs/benchmarks/README.md``)."""


class DCDMSolver:
    """Deep conjugate-direction solver for 3-D Poisson systems on voxel grids.

    Each iteration asks the network for ``q = f(r / ||r||)``, A-orthogonalises it against
    the last ``n_orth`` directions and takes the exact line-search step; the true residual
    is recomputed in float64 every iteration (Kaneda et al., ICML 2023). If the iteration
    stagnates or hits ``maxiter`` the solve continues with preconditioned CG from the
    current iterate, so a solve never fails silently.

    Parameters
    ----------
    model : nn.Module
        Direction network, ``(B, 1, X, Y, Z) -> (B, 1, X, Y, Z)``.
    device : str or torch.device
    network_dtype : torch.dtype
        Precision of the network (float32 or bfloat16); Krylov vectors stay float64.
    n_orth : int
        Previous directions to A-orthogonalise against. The paper uses 2; the default 32 keeps the
        network's directions conjugate to all recent ones, which halves the iterations at 64^3 and
        lets the shipped network solve 128^3 alone (without it the iteration stagnates there;
        ``docs/benchmarks/README.md``, DCDM session 13). It stores ``2 n_orth`` float64 vectors
        (1 GB at 128^3, 8.6 GB at 256^3): lower it for very large grids.
    fallback : {"mgpcg", "pcg", None}
        Solver used after stagnation: multigrid PCG (when available), Jacobi PCG, or none.
    stagnation_window : int or None
        Iterations without a 10% improvement of the best residual that count as
        stagnation (``None``: run to ``maxiter``).
    tf32 : bool
        Let cuDNN run float32 convolutions in TF32 (10-bit mantissa) on CUDA. PyTorch's own
        default is on; here it is off, so that ``network_dtype=float32`` means float32.
    """

    def __init__(self, model: nn.Module, *, device="cpu", network_dtype: torch.dtype = torch.float32,
                 n_orth: int = 32, fallback: str | None = "mgpcg", stagnation_window: int | None = 12,
                 tf32: bool = False):
        if fallback not in ("mgpcg", "pcg", None):
            raise ValueError(f"fallback must be 'mgpcg', 'pcg' or None, got {fallback!r}")
        self.device = torch.device(device)
        self.network_dtype = network_dtype
        self.model = model.to(device=self.device, dtype=network_dtype).eval()
        self.n_orth, self.fallback, self.stagnation_window = n_orth, fallback, stagnation_window
        self.tf32 = tf32
        self.config: dict = dict(getattr(model, "config", {}))

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_MODEL, **kwargs) -> "DCDMSolver":
        """Load shipped weights (``"dcdm-recursive-gpu"``, the default; ``"dcdm-recursive"``,
        ``"dcdm-unet"``, ``"dcdm-paper"``) or a checkpoint path; ``kwargs`` go to the constructor."""
        tensors, config = load_checkpoint(weights_path(name_or_path, "sciml train dcdm"))
        model = build_network(config["network"])
        model.load_state_dict(tensors)
        solver = cls(model, **kwargs)
        solver.config = config
        return solver

    def save(self, path: str | Path, **recipe) -> Path:
        """Write the network weights and config (plus any ``recipe`` entries) as a checkpoint."""
        config = {"network": self.model.config, **recipe}
        state = {k: v.float() for k, v in self.model.state_dict().items()}
        path = save_checkpoint(path, state, config)
        with atomic_path(Path(path).with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
        return path

    # -- solving -------------------------------------------------------------------------
    def direction(self, grid: tuple[int, int, int], fluid: torch.Tensor):
        """The direction generator ``r (n,) -> q (n,)`` for a grid with a fluid mask ``(n,)``."""
        def generate(r: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), _cudnn_tf32(self.tf32):
                q = self.model(r.reshape(1, 1, *grid).to(self.network_dtype)).reshape(-1)
            return q.to(r.dtype) * fluid
        return generate

    def solve(self, A, b, x0=None, *, grid=None, tol: float = 1e-6, maxiter: int = 100,
              fallback_maxiter: int | None = None, callback=None) -> SolveResult:
        """Solve ``A x = b`` to a true relative residual ``tol``.

        Parameters
        ----------
        A : PoissonStencil, SparseCSR, torch sparse CSR or scipy sparse matrix, shape (n, n)
            The Poisson matrix on an ``nx * ny * nz`` grid (C-order); rows of solid cells
            are empty.
        b : (n,) or (nx, ny, nz) tensor or numpy array
        x0 : (n,) tensor or array, optional
        grid : (nx, ny, nz), optional
            Needed unless ``A`` is a :class:`PoissonStencil` or ``b`` is 3-D.
        tol : float
            Relative tolerance on ``||b - A x|| / ||b||`` (float64).
        maxiter : int
            DCDM iterations before the fallback takes over.
        fallback_maxiter : int, optional
            Iterations allowed to the fallback solver (default ``10 n``).
        callback : callable ``(iteration, x, relative_residual)``, optional

        Returns
        -------
        SolveResult
            ``info`` holds ``network_s``, ``matvec_s``, ``orthogonalisation_s`` (the rest of
            the DCDM iterations), ``dcdm_iterations``, ``dcdm_residual`` (true relative
            residual when DCDM stopped), ``fallback`` (``None`` if unused) and
            ``fallback_iterations``.
        """
        A, b, x0, grid = _prepare(A, b, x0, grid, self.device)
        fluid = (A.diagonal() != 0).to(torch.float64)
        timed = _Timed(A)
        generate = self.direction(grid, fluid)
        network_s = [0.0]

        def timed_generate(r):
            start = time.perf_counter()
            q = generate(r)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            network_s[0] += time.perf_counter() - start
            return q

        result = conjugate_directions(timed, b, timed_generate, x0, n_orth=self.n_orth, rtol=tol,
                                      maxiter=maxiter, stagnation_window=self.stagnation_window,
                                      callback=callback)
        result.info.update(network_s=network_s[0], matvec_s=timed.seconds, dcdm_iterations=result.iterations,
                           dcdm_residual=result.residual, fallback_iterations=0,
                           orthogonalisation_s=max(result.wall_time - network_s[0] - timed.seconds, 0.0),
                           fallback=None)
        if result.converged or self.fallback is None:
            return result
        return self._fall_back(A, b, result, tol, fallback_maxiter)

    def _fall_back(self, A, b, first: SolveResult, tol: float, maxiter: int | None) -> SolveResult:
        logger.warning("DCDM did not converge (%s); continuing with %s", first.status, self.fallback)
        M = "jacobi"
        if self.fallback == "mgpcg" and isinstance(A, PoissonStencil):
            from sciml.linalg.multigrid import GeometricMultigrid
            M = GeometricMultigrid(A)
        second = pcg(A, b, first.x, M=M, rtol=tol, maxiter=maxiter)
        residuals = torch.cat([first.residuals, second.residuals[1:]])
        status = f"DCDM: {first.status}; then {self.fallback}: {second.status}"
        info = {**first.info, "fallback": self.fallback, "fallback_iterations": second.iterations}
        return SolveResult(second.x, second.converged, first.iterations + second.iterations, residuals,
                           first.wall_time + second.wall_time, status, info)


@contextmanager
def _cudnn_tf32(allowed: bool):
    """Set cuDNN's TF32 switch for convolutions inside the block, and restore it after."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def _prepare(A, b, x0, grid, device):
    """Convert inputs to float64 torch objects on ``device``; infer the grid."""
    if isinstance(b, np.ndarray):
        b = torch.from_numpy(b)
    if b.ndim == 3:
        grid = grid or tuple(b.shape)
    b = b.reshape(-1).to(device=device, dtype=torch.float64)
    A = as_operator(A).to(device=device, dtype=torch.float64)
    if isinstance(A, PoissonStencil):
        grid = A.grid
    if grid is None or int(np.prod(grid)) != A.shape[0]:
        raise ValueError(f"DCDM needs the grid shape of the {A.shape[0]} unknowns: pass grid=(nx, ny, nz) "
                         f"(got {grid}) or b as a 3-D array")
    if x0 is not None:
        x0 = torch.as_tensor(x0).reshape(-1).to(device=device, dtype=torch.float64)
    return A, b, x0, tuple(int(g) for g in grid)
