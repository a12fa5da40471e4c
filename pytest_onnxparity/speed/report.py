"""The speed table of the terminal summary: one row per timing record, then where the figures
were measured. No pytest here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_onnxparity.results.terminal import table
from pytest_onnxparity.speed.measure import short_number


def speed_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The terminal table of every timing record, then where the figures were measured."""
    rows = []
    contexts = []
    timed = [
        r for r in records if r.get("kind") == "check" and r.get("check") in ("latency", "rtf")
    ]
    # Per graph, the reference first: the row every "vs reference" below it is relative to.
    timed.sort(
        key=lambda r: (
            r["graph"],
            r["check"],
            r["variant"] != r["details"]["reference_variant"],
            r["variant"],
        )
    )
    for record in timed:
        details = record["details"]
        measured = details["measurement"]
        reference = details.get("reference")
        ratio = "-"
        paired = details.get("paired")
        if paired:
            ratio = f"{paired['median']:.2f}x (IQR {paired['q1']:.2f}-{paired['q3']:.2f})"
        elif reference and reference["value"]:
            ratio = f"{measured['value'] / reference['value']:.2f}x"
        status = "PASS" if record["passed"] else "FAIL"
        if not record["enforced"]:
            status = "NOTE"
        budgets = ", ".join(b["budget"] for b in details["budgets"]) or "-"
        rows.append(
            [
                record["graph"],
                record["variant"],
                measured["metric"],
                short_number(measured["value"]),
                ratio,
                budgets,
                status,
            ]
        )
        context = details["context"]
        threads = context["intra_op_threads"] or f"auto ({context['cpu_count']} CPUs)"
        if context.get("allow_spinning"):
            threads = f"{threads} (spinning)"
        contexts.append(
            f"{', '.join(context['providers'])}, intra-op threads {threads}, onnxruntime "
            f"{context['onnxruntime']}, CPU {context['cpu']}; median of {measured['repeats']} "
            f"after {measured['warmup']} warm-up; timer {measured['timer']}"
        )
    if not rows:
        return []
    headers = ["graph", "variant", "metric", "median", "vs reference", "budgets", "status"]
    lines = table(headers, rows)
    lines.extend(f"measured with {context}" for context in dict.fromkeys(contexts))
    notes = {record["details"]["not_enforced"] for record in timed if not record["enforced"]}
    lines.extend(sorted(notes))
    return lines
