"""The shared benchmark table helpers."""
import json

from sciml.benchmarks.table import TARGET_COLUMNS, TargetRows, format_table


def test_target_rows_render_aligned_and_serialise_as_plain_json():
    rows = TargetRows()
    rows.add("normal error model/flat", 0.46, "<= 0.5", 0.46 <= 0.5)
    rows.add("a quantity whose name is longer than the column minimum", 2.0, "< 1", 2.0 < 1)
    lines = format_table(rows, TARGET_COLUMNS).splitlines()
    assert len({len(line.rstrip()) for line in lines[2:]}) <= 2  # cells padded to one width per column
    assert lines[2].rstrip().endswith("yes") and lines[3].rstrip().endswith("NO")
    assert lines[2].index("0.46") + 4 == lines[3].index(" 2 ") + 2  # numbers right-aligned in one column
    assert json.loads(json.dumps(rows)) == [dict(r) for r in rows] and rows[1]["met"] is False
