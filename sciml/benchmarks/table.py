"""Fixed-width text tables of benchmark rows."""
from __future__ import annotations

from typing import Callable, Sequence

Column = tuple[str, int, Callable[[dict], str]]


def format_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """Render ``rows`` with ``columns`` of ``(header, width, cell(row) -> str)``.

    A positive width right-aligns the column (numbers), a negative one left-aligns it (text).
    Widths are minimums: a column grows to its longest cell, so the columns stay aligned.
    """
    def fit(text: str, width: int) -> str:
        return f"{text:<{-width}}" if width < 0 else f"{text:>{width}}"
    columns = [(title, _grown(width, [cell(row) for row in rows]), cell) for title, width, cell in columns]
    header = " ".join(fit(title, width) for title, width, _ in columns)
    lines = [header, "-" * len(header)]
    lines += [" ".join(fit(cell(row), width) for _, width, cell in columns) for row in rows]
    return "\n".join(lines)


def _grown(width: int, cells: Sequence[str]) -> int:
    longest = max((len(c) for c in cells), default=0)
    return -max(-width, longest) if width < 0 else max(width, longest)


def number(key: str, fmt: str, missing: str = "-") -> Callable[[dict], str]:
    """A cell showing ``row[key]`` formatted with ``fmt`` (``missing`` when absent)."""
    return lambda row: format(row[key], fmt) if row.get(key) is not None else missing


class TargetRows(list):
    """A benchmark's acceptance targets next to the measured numbers: a list of row dicts.

    ``rows.add(quantity, measured, target, met)`` appends
    ``{"quantity", "measured", "target", "met"}``; render with ``format_table(rows, TARGET_COLUMNS)``.
    """

    def add(self, quantity: str, measured, target: str, met) -> None:
        self.append({"quantity": quantity, "measured": measured, "target": target, "met": bool(met)})


TARGET_COLUMNS: list[Column] = [
    ("quantity", -40, lambda r: r["quantity"]), ("measured", 10, number("measured", ".4g")),
    ("target", -14, lambda r: r["target"]), ("met", -5, lambda r: "yes" if r["met"] else "NO")]
