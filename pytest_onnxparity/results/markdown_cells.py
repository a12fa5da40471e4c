"""The cells and tables of the Markdown card: GitHub-flavoured tables, numbers with their limits,
rates as percentages, n/N counts and verdicts. Pure functions of plain values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_onnxparity.export.sizes import compression_text
from pytest_onnxparity.results.numbers import WORST_IS_MIN, is_finite_number

STATUS_TEXT = {
    "passed": "✅ pass",
    "failed": "❌ fail",
    "error": "💥 error",
    "not run": "– not run",
}
NONE = "–"


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], right: int = 0
) -> list[str]:
    """A GitHub-flavoured table; the last ``right`` columns (numbers) are right-aligned."""
    rows = list(rows)
    if not rows:
        return []
    align = ["---"] * (len(headers) - right) + ["---:"] * right
    return [_row(headers), _row(align), *(_row(row) for row in rows)]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def number(metric: str, value: Any) -> str:
    """A table cell: cosine-like rates as rounded, other floats to 3 significant digits."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return str(value)
    if metric in WORST_IS_MIN:
        return repr(value)
    return f"{value:.3g}"


def with_limit(text: str, limit: Any, relation: str) -> str:
    """``0.0122 ≤ 0.05``: a value and the gate it was held to (the value alone when ungated)."""
    if not is_finite_number(limit) or text == NONE:
        return text
    return f"{text} {relation} {limit:g}"


def percent(rate: Any) -> str:
    return NONE if not is_finite_number(rate) else f"{100.0 * rate:.2f}%"


def fraction(count: Any, total: Any) -> str:
    """``3/190``; ``–`` when either is unknown."""
    if not is_finite_number(count) or not is_finite_number(total):
        return NONE
    return f"{count:g}/{total:g}"


def yes_no(value: Any) -> str:
    return NONE if not isinstance(value, bool) else ("Y" if value else "N")


def pass_text(check: Mapping[str, Any]) -> str:
    """A check's verdict: pass, fail, or a note (recorded, not enforced)."""
    if not check.get("passed", True):
        return "note" if check.get("enforced") is False else "❌ fail"
    return "✅ pass"


def status_text(status: str) -> str:
    return STATUS_TEXT.get(status, status)


def size_text(entry: Mapping[str, Any]) -> str:
    """``12.7 kB (1.81x smaller)``: the size and the compression against the reference, the
    convention of the size gates and the terminal."""
    from pytest_onnxparity.export.folder import human_size

    size = entry.get("size_bytes")
    if size is None:
        return NONE
    ratio = entry.get("compression_ratio")
    if ratio is None and is_finite_number(entry.get("size_ratio")) and entry["size_ratio"]:
        ratio = 1.0 / entry["size_ratio"]  # a version-1 block: variant / reference
    text = human_size(size)
    return text if ratio is None else f"{text} ({compression_text(ratio)})"


def names_text(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c +2 more``."""
    head = ", ".join(names[:shown])
    return head + (f" +{len(names) - shown} more" if len(names) > shown else "")
