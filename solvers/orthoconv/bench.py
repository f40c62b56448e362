"""``sciml bench orthoconv``: exactness of the orthogonal convolutions and a side-by-side with orthogonium.

In one run:

* **exactness** -- every singular value of the exact layers (explicit-kernel ``OrthoConv2d``,
  FFT ``CayleyConv2d``, ``OrthoConvTranspose2d``) at input sizes 8, 16, 32 and strides 1, 2, in
  float64 and float32, and ``||W x|| / ||x||`` in the isometric direction;
* **consistency** -- FFT singular values vs the dense impulse-response SVD; Lorth of exact
  kernels and the bound ``err <= sqrt(alpha Lorth)`` on random kernels; the existence theorem
  against construction / rank obstruction over a grid of (M, C, k, S);
* **comparison** -- 64 -> 64, 3x3, 32x32, batch 64: orthogonality error and training-step /
  inference time of ours, orthogonium's default ``AdaptiveOrthoConv2d`` and ``nn.Conv2d``.
"""
from __future__ import annotations

import argparse
import logging
import time

import torch

from sciml.benchmarks.table import format_table, number
from solvers.orthoconv.checks import (
    dense_check,
    exactness_rows,
    existence_check,
    lorth_check,
)
from solvers.orthoconv.compare import compare

logger = logging.getLogger(__name__)

COMPARE_COLUMNS = [("method", -26, lambda r: r["method"]),
                   ("err init", 9, number("error_init_f32", ".1e")),
                   ("err trained", 11, number("error_after_training_f32", ".1e")),
                   ("train [s]", 9, number("train_step_s", ".3f")),
                   ("x plain", 7, number("train_step_vs_plain", ".2f")),
                   ("infer [s]", 9, number("inference_s", ".4f")),
                   ("x plain", 7, number("inference_vs_plain", ".2f"))]


def exactness_summary(rows: list[dict]) -> dict:
    """Worst ``max |sigma - 1|`` and norm error per method and dtype, against the issue's tolerances."""
    out = {}
    for row in rows:
        key = f"{row['method']}_{row['dtype']}"
        cur = out.setdefault(key, {"max_abs_sigma_minus_1": 0.0, "norm_ratio_error": 0.0})
        cur["max_abs_sigma_minus_1"] = max(cur["max_abs_sigma_minus_1"], row["max_abs_sigma_minus_1"])
        cur["norm_ratio_error"] = max(cur["norm_ratio_error"], row["norm_ratio_error"])
    for key, cur in out.items():
        tol = 1e-6 if key.endswith("float64") else 1e-4
        cur["tolerance"] = tol
        cur["pass"] = cur["max_abs_sigma_minus_1"] < tol and cur["norm_ratio_error"] < tol
    return out


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench orthoconv`` options, run, and return the JSON-ready results."""
    parser = argparse.ArgumentParser(prog="sciml bench orthoconv", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--channels", type=int, default=64, help="comparison layer width (issue: 64)")
    parser.add_argument("--size", type=int, default=32, help="comparison input size (issue: 32)")
    parser.add_argument("--batch", type=int, default=64, help="comparison batch (issue: 64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--only-compare", action="store_true",
                        help="skip the exactness, dense, Lorth and existence checks (timing runs)")
    args = parser.parse_args(argv)
    if args.skip_compare and args.only_compare:
        parser.error("--skip-compare and --only-compare exclude each other")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = {"benchmark": "orthoconv", "device": args.device, "torch": torch.__version__,
              "threads": torch.get_num_threads()}
    if not args.only_compare:
        rows = exactness_rows(args.sizes, args.strides, args.device)
        result.update(exactness=exactness_summary(rows), exactness_rows=rows, dense_vs_fft=dense_check(),
                      lorth=lorth_check(), existence=existence_check())
    try:
        import orthogonium
        result["orthogonium_version"] = getattr(orthogonium, "__version__", None) or _dist_version("orthogonium")
    except ImportError:
        result["orthogonium_version"] = None
        logger.warning("orthogonium is not installed: the comparison has no orthogonium row "
                       "(pip install orthogonium)")
    if not args.skip_compare:
        result["compare"] = compare(args.device, args.channels, args.size, args.batch, args.repeats)
        result["table"] = format_table(result["compare"]["rows"], COMPARE_COLUMNS)
    result["wall_s"] = time.perf_counter() - started
    return result


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None
