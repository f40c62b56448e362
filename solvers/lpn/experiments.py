"""The experiments behind ``sciml bench lpn`` (each returns JSON-ready numbers).

* :func:`exactness` -- Jacobian symmetry, PSD and convexity of the potential on full images.
* :func:`prior_curves` -- median ``R`` of held-out images under added noise, blur and blending
  with another image.
* :func:`denoising` -- LPN vs tuned TV (and BM3D when installed) on held-out images.
* :func:`inverse_problem` -- PnP-ADMM / PnP-PGD with the LPN vs TV-ADMM on one operator.
* :func:`sparse_view_ct` -- PnP-ADMM on the Shepp-Logan phantom vs filtered back-projection.
"""
from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch
from torch.autograd.functional import jvp

from sciml.nn.icnn import LPN
from solvers.lpn.pnp import lpn_denoiser, pnp_admm, pnp_pgd, psnr, tv_denoiser

logger = logging.getLogger(__name__)

TV_WEIGHTS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2)


def ssim(x: torch.Tensor, reference: torch.Tensor) -> float:
    """``skimage.metrics.structural_similarity`` with data range 1."""
    from skimage.metrics import structural_similarity
    return float(structural_similarity(x.detach().cpu().numpy().astype(np.float64),
                                       reference.detach().cpu().numpy().astype(np.float64), data_range=1.0))


def exactness(model: LPN, shapes=((32, 32), (64, 48), (96, 128)), probes: int = 3, seed: int = 0) -> dict:
    """Float64 structure checks of ``f = grad psi`` on full images (no patches).

    Returns the worst ``|<w, J v> - <v, J w>| / (||v|| ||w||)``, the smallest Rayleigh quotient
    ``<v, J v> / ||v||^2``, the worst convexity gap ``psi(t a + (1-t) b) - t psi(a) - (1-t) psi(b)``
    (positive = violation) and the smallest constrained weight.
    """
    net = copy.deepcopy(model).double().eval()
    device = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    sym, rayleigh, gap = 0.0, float("inf"), -float("inf")
    for shape in shapes:
        x = torch.rand(1, 1, *shape, generator=g, dtype=torch.float64).to(device)
        for _ in range(probes):
            v, w = (torch.randn(1, 1, *shape, generator=g, dtype=torch.float64).to(device) for _ in range(2))
            _, jv = jvp(net, x, v)
            _, jw = jvp(net, x, w)
            sym = max(sym, abs(float((w * jv).sum() - (v * jw).sum())) / float(v.norm() * w.norm()))
            rayleigh = min(rayleigh, float((v * jv).sum()) / float(v.norm() ** 2))
            a, b = x, torch.rand(1, 1, *shape, generator=g, dtype=torch.float64).to(device) * 1.5 - 0.25
            with torch.no_grad():
                fa, fb = net.psi(a), net.psi(b)
                for t in np.linspace(0.1, 0.9, 9):
                    ft = net.psi(t * a + (1 - t) * b)
                    gap = max(gap, float((ft - t * fa - (1 - t) * fb).max()))
    return {"shapes": [list(s) for s in shapes], "max_symmetry_error": sym, "min_rayleigh_quotient": rayleigh,
            "strong_convexity_floor": 2 * net.config["alpha"], "max_convexity_gap": gap,
            "min_constrained_weight": net.potential.min_constrained_weight(),
            "symmetric_to_1e-8": sym <= 1e-8, "psd": rayleigh >= -1e-10, "convex": gap <= 1e-10}


def random_crops(images: dict[str, np.ndarray], size: int, per_image: int, seed: int) -> torch.Tensor:
    """``per_image`` random ``size x size`` crops of every image, ``(N, 1, size, size)`` float64."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images.values():
        for _ in range(per_image):
            r, c = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
            out.append(image[r:r + size, c:c + size])
    return torch.as_tensor(np.stack(out))[:, None]


def blur_crops(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (reflecting borders) of every crop of ``x : (N, 1, H, W)``; ``sigma = 0``: ``x``."""
    from skimage.filters import gaussian
    if sigma == 0:
        return x
    blurred = np.stack([gaussian(c[0].cpu().numpy(), sigma=sigma, mode="reflect") for c in x])
    return torch.as_tensor(blurred, dtype=x.dtype)[:, None].to(x.device)


def prior_curves(model: LPN, clean: torch.Tensor, noises=(0.0, 0.05, 0.1, 0.2), blurs=(0.0, 0.5, 1.0, 2.0),
                 seed: int = 0, maxiter: int = 100, mixes=()) -> dict:
    """Median learned ``R`` of the images ``clean : (N, 1, H, W)`` under each perturbation.

    ``noise``: ``x + s n``; ``blur``: Gaussian blur of width ``s``; ``mix`` (when ``mixes`` is given,
    the paper's convex-combination probe): ``(1 - t) x_i + t x_{N-1-i}``, each image blended with
    another one (``N`` must be even so that no image meets itself). Per kind: the levels, median
    ``R`` at each, the worst inversion residual, whether the medians increase and, per step, the
    fraction of images whose own ``R`` rises; for ``mix`` also whether ``R`` in the middle exceeds
    both ends (then ``R`` is not convex along the segment).
    """
    from solvers.lpn.prior import regulariser
    net = copy.deepcopy(model).double().eval()
    device = next(net.parameters()).device
    clean = clean.to(device=device, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 1)
    perturbations = {
        "noise": (noises, lambda s: clean + s * torch.randn(clean.shape, generator=g, dtype=clean.dtype).to(device)),
        "blur": (blurs, lambda s: blur_crops(clean, s)),
        "mix": (mixes, lambda t: (1 - t) * clean + t * clean.flip(0)),
    }
    if len(mixes) and clean.shape[0] % 2:
        raise ValueError(f"the mix probe pairs image i with image N-1-i; give an even number of images, got "
                         f"{clean.shape[0]}")
    out: dict = {}
    for kind, (levels, perturb) in perturbations.items():
        if not len(levels):
            continue
        values, residuals = [], []
        for level in levels:
            r, inv = regulariser(net, perturb(level), maxiter=maxiter, tol=1e-4)
            values.append(r)
            residuals.append(float(inv.residual.max()))
        medians = [float(r.median()) for r in values]
        out[kind] = {"levels": list(levels), "median_R": medians, "max_inversion_residual": residuals,
                     "increasing": bool(all(b > a for a, b in zip(medians, medians[1:]))),
                     "fraction_of_images_rising": [float((b > a).double().mean()) for a, b in zip(values, values[1:])]}
    if "mix" in out:
        m = out["mix"]["median_R"]
        out["mix"]["middle_above_ends"] = len(m) >= 3 and bool(max(m[1:-1]) > max(m[0], m[-1]))
    out["crops"] = int(clean.shape[0])
    return out


def _tv_oracle(noisy: np.ndarray, clean: np.ndarray, weights=TV_WEIGHTS) -> tuple[float, float]:
    from skimage.restoration import denoise_tv_chambolle
    best = max(((float(-10 * np.log10(np.mean((denoise_tv_chambolle(noisy, weight=w) - clean) ** 2))), w)
                for w in weights))
    return best


def _bm3d(noisy: np.ndarray, sigma: float) -> np.ndarray | None:
    try:
        import bm3d
    except ImportError:
        return None
    return np.asarray(bm3d.bm3d(noisy, sigma_psd=sigma))


def denoising(model: LPN, images: dict[str, np.ndarray], sigma: float = 0.1, seed: int = 0) -> dict:
    """PSNR of the LPN, the noisy input, TV with the best weight per image (oracle) and BM3D."""
    den = lpn_denoiser(model)
    rng = np.random.default_rng(seed)
    rows = []
    for name, clean in images.items():
        noisy = clean + sigma * rng.standard_normal(clean.shape)
        t = time.perf_counter()
        out = den(torch.as_tensor(noisy))
        seconds = time.perf_counter() - t
        clean_t = torch.as_tensor(clean)
        tv_psnr, tv_weight = _tv_oracle(noisy, clean)
        row = {"image": name, "shape": list(clean.shape), "noisy_psnr": psnr(torch.as_tensor(noisy), clean_t),
               "lpn_psnr": psnr(out, clean_t), "lpn_ssim": ssim(out, clean_t), "lpn_s": seconds,
               "tv_psnr": tv_psnr, "tv_weight": tv_weight}
        b = _bm3d(noisy, sigma)
        if b is not None:
            row["bm3d_psnr"] = psnr(torch.as_tensor(b), clean_t)
        row["lpn_minus_tv_db"] = row["lpn_psnr"] - tv_psnr
        rows.append(row)
    return {"sigma": sigma, "rows": rows, "mean_lpn_psnr": float(np.mean([r["lpn_psnr"] for r in rows])),
            "mean_tv_psnr": float(np.mean([r["tv_psnr"] for r in rows])),
            "mean_noisy_psnr": float(np.mean([r["noisy_psnr"] for r in rows])),
            "mean_lpn_minus_tv_db": float(np.mean([r["lpn_minus_tv_db"] for r in rows]))}


def inverse_problem(model: LPN, A, clean: np.ndarray, noise: float, *, rho: float = 1.0, data_weight: float = 1.0,
                    pgd_step: float = 1.0, maxiter: int = 30, tv_weights=(0.005, 0.01, 0.02, 0.04, 0.08),
                    tv_rho: float = 1.0, init: str = "adjoint", seed: int = 0, extra: dict | None = None,
                    x0: torch.Tensor | None = None, clip: tuple[float, float] | None = None,
                    patience: int | None = None) -> dict:
    """One inverse problem ``y = A x + noise``: LPN PnP-ADMM and PnP-PGD vs TV-ADMM (best weight).

    ``init="adjoint"`` starts the LPN solvers at ``A^T y`` (the paper's choice for deblurring);
    ``init="tv"`` starts them at the TV-ADMM result (for operators whose ``A^T y`` lies far from
    natural images, such as inpainting and compressed sensing); ``init="given"`` starts them at ``x0``
    (for CT: the filtered back-projection). ``patience`` is the stopping rule of
    :mod:`solvers.lpn.pnp` for both LPN solvers (default off: the paper's plain algorithms);
    TV-ADMM always runs plain.
    """
    device, dtype = A.device, A.dtype
    x = torch.as_tensor(clean, dtype=dtype, device=device)
    g = torch.Generator().manual_seed(seed)
    y = A.matvec(x.reshape(-1))
    y = y + noise * torch.randn(y.shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    shape = tuple(clean.shape)
    best = None
    for w in tv_weights:
        tv = pnp_admm(A, y, tv_denoiser(w), shape, rho=tv_rho, data_weight=1.0, maxiter=maxiter, reference=x,
                      tol=1e-5)
        if best is None or psnr(tv.x, x) > psnr(best[1].x, x):
            best = (w, tv)
    if init not in ("adjoint", "tv", "given"):
        raise ValueError(f"unknown init {init!r}; use 'adjoint', 'tv' or 'given' (with x0)")
    x0 = best[1].x if init == "tv" else (x0 if init == "given" else None)
    den = lpn_denoiser(model, clip)
    admm = pnp_admm(A, y, den, shape, rho=rho, data_weight=data_weight, maxiter=maxiter, reference=x, tol=1e-5,
                    x0=x0, patience=patience)
    pgd = pnp_pgd(A, y, den, shape, step=pgd_step, data_weight=data_weight, maxiter=maxiter, reference=x, tol=1e-5,
                  x0=x0, patience=patience)
    rows = {}
    for label, res in (("lpn_admm", admm), ("lpn_pgd", pgd), ("tv_admm", best[1])):
        rows[label] = {"psnr": psnr(res.x, x), "ssim": ssim(res.x.clamp(0, 1), x), "iterations": res.iterations,
                       "seconds": res.seconds, "final_relative_step": res.history["relative_step"][-1],
                       "relative_step": res.history["relative_step"], "psnr_history": res.history["psnr"],
                       "stop_reason": res.stop_reason, "returned_iteration": res.returned_iteration}
    rows["tv_admm"]["weight"] = best[0]
    adjoint = A.rmatvec(y).reshape(shape)
    out = {"noise": noise, "shape": list(shape), "measurements": A.shape[0], "rho": rho, "data_weight": data_weight,
           "init": init, "clip": clip, "patience": patience,
           "pgd_step": pgd_step, **rows, "adjoint_psnr": psnr(adjoint, x), **(extra or {})}
    out["lpn_admm_minus_tv_db"] = rows["lpn_admm"]["psnr"] - rows["tv_admm"]["psnr"]
    out["results"] = {"lpn_admm": admm.x.cpu(), "lpn_pgd": pgd.x.cpu(), "tv_admm": best[1].x.cpu(),
                      "measured": adjoint.cpu()}
    return out


def operator_norm(A, iterations: int = 30, seed: int = 0) -> float:
    """Largest singular value of ``A`` by power iteration on ``A^T A``."""
    v = torch.randn(A.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = v.to(device=A.device, dtype=A.dtype)
    for _ in range(iterations):
        v = A.rmatvec(A.matvec(v))
        v = v / v.norm()
    return float(A.matvec(v).norm())


def sparse_view_ct(model: LPN, size: int = 128, angles: int = 30, noise: float = 0.5, rho: float = 1.0,
                   data_weight: float = 1.0, maxiter: int = 40, device="cpu", seed: int = 0,
                   phantom: np.ndarray | None = None, init: str = "adjoint",
                   clip: tuple[float, float] | None = None, tv_rho: float = 0.1,
                   patience: int | None = None) -> dict:
    """Sparse-view parallel-beam CT: PnP-ADMM vs filtered back-projection (and TV-ADMM).

    The Radon matrix is scaled by its norm for the PnP solvers (the same problem, better
    conditioned ADMM parameters); FBP uses the unscaled sinogram. ``noise`` is the standard
    deviation of the Gaussian noise on the unscaled sinogram. ``phantom`` defaults to Shepp-Logan.
    ``patience`` goes to :func:`inverse_problem`; the TV-ADMM baseline runs with its own
    ``tv_rho`` (its weights are searched at that penalty).
    """
    from sciml.linalg.imaging import filtered_back_projection, radon_matrix
    from solvers.lpn.data import shepp_logan
    phantom = shepp_logan(size) if phantom is None else phantom
    A = radon_matrix(size, angles, dtype=torch.float64, device=device)
    scale = operator_norm(A)
    x = torch.as_tensor(phantom, device=device)
    g = torch.Generator().manual_seed(seed)
    y = A.matvec(x.reshape(-1))
    y = y + noise * torch.randn(y.shape, generator=g, dtype=torch.float64).to(device)
    fbp = {w: filtered_back_projection(A, y, w).reshape(size, size) for w in ("ram-lak", "hann")}
    best = max(fbp, key=lambda w: psnr(fbp[w], x))
    # same noise realisation (same seed and shape), measured through the normalised operator
    out = inverse_problem(model, A * (1.0 / scale), phantom, noise / scale, rho=rho, data_weight=data_weight,
                          maxiter=maxiter, pgd_step=1.0, seed=seed, tv_weights=(0.005, 0.01, 0.02, 0.04, 0.08),
                          tv_rho=tv_rho, init=init, x0=fbp[best] if init == "given" else None, clip=clip,
                          patience=patience,
                          extra={"angles": angles, "size": size, "radon_norm": scale, "sinogram_noise": noise})
    out["fbp"] = {"psnr": psnr(fbp[best], x), "ssim": ssim(fbp[best].clamp(0, 1), x), "filter": best}
    out["lpn_admm_minus_fbp_db"] = out["lpn_admm"]["psnr"] - out["fbp"]["psnr"]
    out["results"]["fbp"] = fbp[best].cpu()
    return out
