"""The ``weights`` check: weight-space parity of one variant file as a check result, and the
run's weight-space table for the terminal, read back from the plain-JSON records.

The comparison itself is :mod:`pytest_onnxparity.compare.weight_space`; this module only turns
its report into a :class:`~pytest_onnxparity.results.records.CheckResult` (the verdict, the
message, every measured number under ``details``) and a summary row per variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_onnxparity.compare.weight_space import WeightSettings, compare_weights
from pytest_onnxparity.diagnose.coverage_table import WEIGHTS_CHECK
from pytest_onnxparity.onnxfile.dequantize import TensorReadError
from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.terminal import table

__all__ = ["WEIGHTS_CHECK", "summary_lines", "weights_check"]


def weights_check(
    reference_path: Path,
    variant_path: Path,
    *,
    graph: str,
    variant: str,
    tier: str,
    settings: WeightSettings,
) -> CheckResult:
    """Compare every weight of the variant with the reference's; fails naming each weight
    beyond its tier's limits with the node that reads it."""
    try:
        report = compare_weights(reference_path, variant_path, settings, file_tier=tier)
    except TensorReadError as error:
        return CheckResult(WEIGHTS_CHECK, graph, variant, passed=False, message=str(error))
    return CheckResult(
        WEIGHTS_CHECK,
        graph,
        variant,
        passed=report.passed,
        message="" if report.passed else report.message(),
        details={"tier": tier, **report.to_json()},
        warnings=report.warnings(),
    )


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per variant: weights compared, failed, unmatched share, the worst rel_l2 and
    its weight, from the records of the weights checks."""
    rows = []
    for record in records:
        if record.get("kind") != "check" or record.get("check") != WEIGHTS_CHECK:
            continue
        details = record.get("details") or {}
        if "compared" not in details:
            rows.append([record["graph"], record["variant"], "-", "-", "-", "-", "error", ""])
            continue
        worst = _worst_weight(details)
        rows.append(
            [
                record["graph"],
                record["variant"],
                str(details.get("tier", "-")),
                str(details["compared"]),
                str(details["failed"]),
                f"{details['unmatched_fraction']:.0%}",
                "PASS" if record["passed"] else "FAIL",
                worst,
            ]
        )
    if not rows:
        return []
    headers = ["graph", "variant", "tier", "weights", "failed", "unmatched", "status", "worst"]
    return table(headers, rows)


def _worst_weight(details: Mapping[str, Any]) -> str:
    """``rel_l2 0.097 <= 0.5 (layer.3.weight)``: the comparison closest to its rel_l2 limit."""
    best: tuple[float, str] | None = None
    for weight in details.get("weights", []):
        value, limit = weight.get("rel_l2"), (weight.get("limits") or {}).get("rel_l2")
        if value is None:
            return f"rel_l2 NaN ({weight['reference']})"
        pressure = value / limit if limit else value
        relation = "<=" if limit is not None and value <= limit else ">"
        limit_text = f" {relation} {limit:g}" if limit is not None else ""
        text = f"rel_l2 {value:.3g}{limit_text} ({weight['reference']})"
        if best is None or pressure > best[0]:
            best = (pressure, text)
    return "-" if best is None else best[1]
