"""The coverage table of a run, rendered from the plain-JSON records of the coverage checks, with
a ``weight parity`` column when the run also compared weights: coverage says how each weight
is stored, weight-space parity whether its values still stand for the reference's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_onnxparity.results.terminal import table

COVERAGE_CHECK = "coverage"


WEIGHTS_CHECK = "weights"
"""The weight-space parity check, whose records add a column to the coverage table."""


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run's coverage as one table: a row per graph × variant × op type, from the plain-JSON
    records of the coverage checks (an ``all`` row follows a variant with several op types).

    The ``weight parity`` column comes from the same variant's ``weights`` record, when the run
    has one: coverage says how each weight is stored, weight-space parity whether its values
    still stand for the reference's (a sign-flipped int4 table is quantized all the same).
    """
    parity = _weight_parity(records)
    rows = []
    for record in records:
        if record.get("kind") != "check" or record.get("check") != COVERAGE_CHECK:
            continue
        details = record.get("details") or {}
        op_rows = details.get("rows", [])
        for row in op_rows:
            rows.append(
                [
                    record["graph"],
                    record["variant"],
                    row["op_type"],
                    str(row["weights"]),
                    count_with_percent(row["quantized"], row["weights"]),
                    ", ".join(f"{form}={n}" for form, n in sorted(row["quantized_as"].items()))
                    or "-",
                    parity.get((record["graph"], record["variant"], row["op_type"]), "-"),
                    names_cell(row["float_names"], row["missing_names"]),
                ]
            )
        if len(op_rows) > 1:
            weights, quantized = details["weights"], details["quantized"]
            rows.append(
                [
                    record["graph"],
                    record["variant"],
                    "all",
                    str(weights),
                    count_with_percent(quantized, weights),
                    "",
                    "",
                    "",
                ]
            )
    if not rows:
        return []
    headers = ["graph", "variant", "op type", "weights", "quantized", "as", "not quantized"]
    if parity:
        headers.insert(6, "weight parity")
    else:
        rows = [row[:6] + row[7:] for row in rows]
    return table(headers, rows)


def _weight_parity(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(graph, variant, op type) -> ``ok, rel_l2 <= 0.097`` or ``1 off, rel_l2 3.22``."""
    cells = {}
    for record in records:
        if record.get("kind") != "check" or record.get("check") != WEIGHTS_CHECK:
            continue
        for row in (record.get("details") or {}).get("by_op_type", []):
            worst = row["worst_rel_l2"]
            worst_text = "NaN" if worst is None else f"{worst:.3g}"
            cell = (
                f"{row['failed']} off, rel_l2 {worst_text}"
                if row["failed"]
                else f"ok, rel_l2 <= {worst_text}"
            )
            cells[(record["graph"], record["variant"], row["op_type"])] = cell
    return cells


def count_with_percent(count: int, total: int) -> str:
    return f"{count} ({100.0 * count / total:.0f}%)" if total else str(count)


def names_cell(float_names: Sequence[str], missing_names: Sequence[str], limit: int = 4) -> str:
    names = [*float_names, *(f"{name} (missing)" for name in missing_names)]
    if len(names) > limit:
        return ", ".join(names[:limit]) + f", … {len(names) - limit} more"
    return ", ".join(names) or "-"
