"""Fixed-width text tables of benchmark rows."""
from __future__ import annotations

from typing import Callable, Sequence

Column = tuple[str, int, Callable[[dict], str]]


def format_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """Render ``rows`` with ``columns`` of ``(header, width, cell(row) -> str)``.

    A positive width right-aligns the column (numbers), a negative one left-aligns it (text).
    """
    def fit(text: str, width: int) -> str:
        return f"{text:<{-width}}" if width < 0 else f"{text:>{width}}"
    header = " ".join(fit(title, width) for title, width, _ in columns)
    lines = [header, "-" * len(header)]
    lines += [" ".join(fit(cell(row), width) for _, width, cell in columns) for row in rows]
    return "\n".join(lines)


def number(key: str, fmt: str, missing: str = "-") -> Callable[[dict], str]:
    """A cell showing ``row[key]`` formatted with ``fmt`` (``missing`` when absent)."""
    return lambda row: format(row[key], fmt) if row.get(key) is not None else missing
