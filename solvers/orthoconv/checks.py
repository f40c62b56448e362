"""Exactness checks of the orthogonal convolutions, shared by ``sciml bench orthoconv`` and the tests.

Each function returns JSON-ready rows / summaries with the measured numbers (no thresholds are
applied here; the bench and the tests compare them with the issue's targets).
"""
from __future__ import annotations

import itertools
import math

import torch

from sciml.nn.conv_spectrum import (
    circular_conv_transpose,
    conv_operator_matrix,
    conv_singular_values,
    lorth,
    lorth_bound,
    orthogonal_conv_exists,
    orthogonality_error,
)
from sciml.nn.orthogonal import OrthoConv2d, OrthoConvTranspose2d
from sciml.nn.orthogonal_fft import CayleyConv2d
from sciml.nn.orthogonal_kernels import OrthogonalKernel

# (in, out, kernel, stride): square stride 1, RO stride 2, square (norm preserving) stride 2
LAYER_CONFIGS = [(16, 16, 3, 1), (16, 32, 3, 2), (16, 64, 3, 2)]


def _norm_ratio_error(layer, x: torch.Tensor, isometric_forward: bool) -> float:
    """``max | ||W x|| / ||x|| - 1 |`` in the isometric direction (``W^T`` for a row-orthogonal layer)."""
    with torch.no_grad():
        if isometric_forward:
            y = layer(x)
            return float((y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1) - 1).abs().max())
        w = layer.weight
        y = torch.randn(x.shape[0], w.shape[0], *[n // layer.stride for n in x.shape[2:]], dtype=x.dtype,
                        device=x.device)
        pad = getattr(layer, "padding", (0, 0))
        z = circular_conv_transpose(y, w, layer.stride, pad)
        return float((z.flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1) - 1).abs().max())


def exactness_rows(sizes=(8, 16, 32), strides=(1, 2), device: str = "cpu", seed: int = 0,
                   methods=("explicit", "cayley", "transposed")) -> list[dict]:
    """Singular values and norm preservation of exact layers, float64 and float32, per size and stride."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for method, dtype, n, (C, M, k, S) in itertools.product(methods, (torch.float64, torch.float32), sizes,
                                                           LAYER_CONFIGS):
        if S not in strides:
            continue
        opts = {"bias": False, "generator": g, "dtype": dtype}
        if method == "explicit":
            layer = OrthoConv2d(C, M, k, S, **opts).to(device)
        elif method == "cayley":
            layer = CayleyConv2d(C, M, n, S, **opts).to(device)
            with torch.no_grad():  # move far from the identity start
                layer.v.copy_(torch.randn(layer.v.shape, generator=g, dtype=dtype))
        else:  # transposed layer out=C <- in=M: input (M, n/S), output (C, n)
            layer = OrthoConvTranspose2d(M, C, k, S, **opts).to(device)
        with torch.no_grad():
            w = layer.weight.detach()
        sv = conv_singular_values(w.double(), n, S)
        iso_forward = M >= C * S * S  # forward conv C->M is an isometry
        x = torch.randn(8, C, n, n, dtype=dtype, device=device)
        if method == "transposed":  # the layer is W^T: isometric when the conv is row-orthogonal
            with torch.no_grad():
                y = torch.randn(8, M, n // S, n // S, dtype=dtype, device=device)
                z = layer(y)
            if M <= C * S * S:
                norm_err = float((z.flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1) - 1).abs().max())
            else:
                norm_err = _norm_ratio_error(OrthoConv2d(C, M, k, S, **opts).to(device), x, True)
        else:
            norm_err = _norm_ratio_error(layer, x, iso_forward)
        rows.append({"method": method, "dtype": str(dtype).replace("torch.", ""), "n": n, "in": C, "out": M,
                     "kernel": n if method == "cayley" else k, "stride": S,
                     "case": orthogonal_conv_exists(M, C, k, S).case,
                     "max_abs_sigma_minus_1": float((sv - 1).abs().max()), "n_singular_values": sv.numel(),
                     "norm_ratio_error": norm_err})
    return rows


def dense_check(seed: int = 0) -> dict:
    """``max |sigma_FFT - sigma_dense|`` over random float64 kernels, 2-D (n=8) and 3-D (n=4), strides 1-2."""
    g = torch.Generator().manual_seed(seed)
    worst, cases = 0.0, 0
    for d, n in ((2, 8), (3, 4)):
        for M, C, k, S in [(3, 2, 3, 1), (2, 3, 3, 2), (4, 2, 2, 2), (2, 2, 5, 1), (5, 2, 3, 2), (3, 1, 1, 2)]:
            w = torch.randn(M, C, *([k] * d), generator=g, dtype=torch.float64)
            dense = torch.linalg.svdvals(conv_operator_matrix(w, n, S))
            worst = max(worst, float((conv_singular_values(w, n, S) - dense).abs().max()))
            cases += 1
    return {"max_abs_diff": worst, "cases": cases}


def lorth_check(seed: int = 0, random_kernels: int = 40, n: int = 16) -> dict:
    """Lorth of exact kernels (should be 0), and the bound ``err <= sqrt(alpha Lorth)`` on random kernels.

    Random kernels are drawn both i.i.d. Gaussian (scaled) and as orthogonal kernels plus noise
    (where the bound is nearly tight).
    """
    g = torch.Generator().manual_seed(seed)
    configs = [(8, 8, 3, 1), (4, 8, 3, 2), (16, 4, 3, 2), (12, 4, 3, 1), (4, 4, 2, 2), (6, 2, 3, 2)]
    lorth_exact = 0.0
    holds, ratios, total = 0, [], 0
    for M, C, k, S in configs:
        kern = OrthogonalKernel(M, C, k, S, generator=g, dtype=torch.float64)
        with torch.no_grad():
            w0 = kern()
        lorth_exact = max(lorth_exact, abs(float(lorth(w0, S))))
        for i in range(random_kernels // len(configs) + 1):
            noise = torch.randn(w0.shape, generator=g, dtype=torch.float64)
            w = w0 + 10.0 ** (-3 + i % 4) * noise if i % 2 else noise / math.sqrt(C * k * k)
            err, bound = orthogonality_error(w, n, S), lorth_bound(w, S)
            holds += err <= bound * (1 + 1e-12) + 1e-12
            ratios.append(err / bound if bound > 0 else 0.0)
            total += 1
    return {"max_abs_lorth_exact": lorth_exact, "bound_holds": holds, "random_kernels": total,
            "max_err_over_bound": max(ratios), "median_err_over_bound": sorted(ratios)[len(ratios) // 2]}


def existence_check(seed: int = 0) -> dict:
    """Theorem vs construction over a grid of (M, C, k, S), 2-D.

    ``exists``: our kernel is built and orthogonal (``max |sigma - 1| < 1e-10``). ``not exists``:
    the constructor refuses and a random kernel of that shape has a zero singular value (the rank
    obstruction that makes orthogonality impossible).
    """
    g = torch.Generator().manual_seed(seed)
    agree, total, disagreements = 0, 0, []
    for M, C, k, S in itertools.product((1, 2, 3, 5, 8), (1, 2, 3), (1, 2, 3), (1, 2, 3)):
        n = S * max(k, 3)
        answer = orthogonal_conv_exists(M, C, k, S)
        if answer.exists:
            with torch.no_grad():
                w = OrthogonalKernel(M, C, k, S, generator=g, dtype=torch.float64)()
            ok = float((conv_singular_values(w, n, S) - 1).abs().max()) < 1e-10
        else:
            try:
                OrthogonalKernel(M, C, k, S, generator=g, dtype=torch.float64)
                refused = False
            except ValueError:
                refused = True
            w = torch.randn(M, C, k, k, generator=g, dtype=torch.float64)
            ok = refused and float(conv_singular_values(w, n, S).min()) < 1e-10
        agree += ok
        total += 1
        if not ok:
            disagreements.append([M, C, k, S])
    return {"agree": agree, "total": total, "disagreements": disagreements}
