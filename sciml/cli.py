"""The ``sciml`` command: ``list``, ``demo``, ``bench`` and ``train``.

A thin layer over the registry (:mod:`sciml.registry`) and the solvers' Python APIs:
it parses arguments, calls the API with progress bars on, prints tables and writes
JSON. Everything it does can be done from Python.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from sciml import registry
from sciml.benchmarks.table import format_table, number
from sciml.io.atomic import atomic_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciml", description="Scientific-ML solvers for inverse problems and "
                                     "geometry. Run 'sciml demo' to see every solver on a small problem.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered solvers and benchmarks")
    demo = sub.add_parser("demo", help="run solvers on their small default problems, write ParaView files and plots")
    demo.add_argument("names", nargs="*", help="solvers to run (default: all with a demo)")
    demo.add_argument("--out", type=Path, default=Path("sciml_out"), help="output folder (default ./sciml_out)")
    demo.add_argument("--device", default="auto", help="auto, cpu or cuda[:i] (default auto)")
    bench = sub.add_parser("bench", add_help=False, help="run a benchmark and print its table (JSON with --json)")
    bench.add_argument("name")
    bench.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    train = sub.add_parser("train", add_help=False, help="train a solver's network (reproduces the shipped weights)")
    train.add_argument("name")
    for solver_parser in (bench, train):  # NAME's own parser answers --help with its options
        solver_parser.add_argument("-h", "--help", action="store_true", help="show NAME's own options")
    return parser


def _device(device: str) -> str:
    """The ``--device`` option as a concrete device string (``auto`` picks CUDA when present)."""
    from sciml.train import resolve_device
    try:
        return str(resolve_device(device))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def _entry(name: str) -> registry.SolverEntry:
    try:
        return registry.get(name)
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None


def cmd_list() -> int:
    for name, entry in registry.entries().items():
        jobs = ",".join(job for job in ("demo", "bench", "train") if getattr(entry, job) is not None)
        print(f"{name:<12} {jobs:<18} {entry.summary}")
    return 0


def cmd_demo(names: list[str], out: Path, device: str) -> int:
    device = _device(device)
    chosen = [_entry(n) for n in names] if names else \
        [e for e in registry.entries().values() if e.demo is not None]
    missing = [e.name for e in chosen if e.demo is None]
    if missing:
        raise SystemExit(f"no demo for {', '.join(missing)}; 'sciml list' shows which entries have one")
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    log = logging.getLogger("sciml.cli")
    for entry in chosen:
        start = time.perf_counter()
        try:
            rows += entry.demo(out / entry.name, device)
        except Exception as exc:  # one broken demo must not hide the others' results
            log.error("demo %s failed: %s: %s", entry.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(10))
            failed.append(entry.name)
            continue
        log.info("demo %s finished in %.1f s", entry.name, time.perf_counter() - start)
    print(format_demo_table(rows))
    summary = [{**row.__dict__, "files": [str(f) for f in row.files]} for row in rows]
    _write_json(out / "summary.json", summary)
    print(f"\nfiles written under {out.resolve()} (open the .vti/.vtp/.pvd files in ParaView)")
    if failed:
        print(f"demos that failed: {', '.join(failed)} (the errors are logged above)", file=sys.stderr)
        return 1
    return 0


DEMO_COLUMNS = [("solver", -10, number("solver", "s")), ("problem", -34, number("problem", "s")),
                ("metric", -26, number("metric", "s")), ("value", 10, number("value", ".4g")),
                ("baseline", -14, number("baseline", "s")), ("base value", 10, number("baseline_value", ".4g")),
                ("time s", 7, number("seconds", ".2f"))]


def format_demo_table(rows) -> str:
    """The one summary table of ``sciml demo`` (one line per :class:`~sciml.registry.DemoRow`)."""
    return format_table([row.__dict__ for row in rows], DEMO_COLUMNS)


def cmd_bench(name: str, json_path: Path | None, argv: list[str]) -> int:
    entry = _entry(name)
    if entry.bench is None:
        raise SystemExit(f"{name} has no benchmark; 'sciml list' shows which entries have one")
    results = entry.bench(argv)
    if "table" in results:
        print(results["table"])
    if json_path is not None:
        _write_json(json_path, results)
        print(f"\nresults written to {json_path}")
    return 0


def cmd_train(name: str, argv: list[str]) -> int:
    entry = _entry(name)
    if entry.train is None:
        raise SystemExit(f"{name} has nothing to train; 'sciml list' shows which entries can be trained")
    return int(entry.train(argv) or 0)


def _write_json(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sciml`` console script."""
    args, rest = _parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if rest and args.command not in ("bench", "train"):
        _parser().error(f"unrecognised arguments: {' '.join(rest)}")
    if args.command in ("bench", "train") and args.help:
        rest = ["--help", *rest]
    if args.command == "list":
        return cmd_list()
    if args.command == "demo":
        return cmd_demo(args.names, args.out, args.device)
    if args.command == "bench":
        return cmd_bench(args.name, args.json, rest)
    return cmd_train(args.name, rest)


if __name__ == "__main__":
    sys.exit(main())
