"""Time one call of a DCDM direction network in several precisions and memory layouts.

DCDM beats CG in wall clock only if a network call costs a few CG iterations; on an H200 the
default network took 7.5 ms at 128^3 in float32 against 0.3 ms per CG iteration. This probe
times the call (median of ``--repeats`` after warm-up, synchronised) for float32, TF32,
bfloat16, each also in ``channels_last_3d`` and with ``cudnn.benchmark``, and reports the
relative error of the output against a float64 call.

Usage (GPU; on a CPU it runs, slowly, as a dry run)::

    python docs/benchmarks/dcdm_network_speed.py --sizes 64 128 --json network-speed.json
"""
from __future__ import annotations

import argparse
import itertools
import json

import torch

from sciml.benchmarks.timing import median_time
from solvers.dcdm.solver import DEFAULT_MODEL, DCDMSolver


def variant_row(model, r64: torch.Tensor, reference: torch.Tensor, dtype, tf32: bool, channels_last: bool,
                benchmark: bool, repeats: int) -> dict:
    """Time of one call and its relative error against ``reference`` (the float64 output) for one
    (precision, layout, autotuning) combination; ``r64 : (1, 1, n, n, n)`` float64."""
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = model.to(dtype=dtype, memory_format=fmt)
    r = r64.to(dtype=dtype).contiguous(memory_format=fmt)
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = tf32, benchmark
    with torch.inference_mode():
        seconds, q = median_time(lambda: net(r), repeats, warmup=2, device=r.device)
    error = float((q.double() - reference).norm() / reference.norm())
    return {"dtype": str(dtype).removeprefix("torch."), "tf32": tf32, "channels_last_3d": channels_last,
            "cudnn_benchmark": benchmark, "ms": 1000 * seconds, "relative_error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = DCDMSolver.from_pretrained(args.model, device=device).model
    rows = []
    for n in args.sizes:
        r64 = torch.randn(1, 1, n, n, n, dtype=torch.float64, device=device)
        with torch.inference_mode():
            reference = model.to(dtype=torch.float64, memory_format=torch.contiguous_format)(r64)
        for dtype, tf32, channels_last, benchmark in itertools.product(
                (torch.float32, torch.bfloat16), (False, True), (False, True), (False, True)):
            if dtype == torch.bfloat16 and tf32:
                continue  # TF32 concerns float32 only
            try:
                row = {"n": n, **variant_row(model, r64, reference, dtype, tf32, channels_last, benchmark,
                                                args.repeats)}
            except (RuntimeError, NotImplementedError) as error:  # a combination the device lacks
                row = {"n": n, "dtype": str(dtype), "channels_last_3d": channels_last, "error": str(error)[:200]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
