"""Terminal rendering: the summary of a run (the pytest summary section and ``python -m
pytest_onnxparity render`` print the same lines), its failed checks and its counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_onnxparity.compare.gates import shown_limit, shown_value
from pytest_onnxparity.results.records import worst_gate


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def report_lines(
    records: Sequence[Mapping[str, Any]], workers: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The run's summary: the parity table, a suspect reference, the checks, the counts."""
    lines = summary_lines(records)
    lines.extend(suspect_reference_lines(records))
    checks = check_lines(records)
    if lines and checks:
        lines.append("")
    lines.extend(checks)
    if records:
        lines.append(counts_line(records, workers))
    return lines


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per parity record: graph, variant, input set, status, and its worst gate."""
    rows = []
    for record in records:
        if record["kind"] != "parity":
            continue
        status = "PASS" if record["passed"] else ("ERROR" if record["error"] else "FAIL")
        rows.append(
            [
                record["graph"],
                record["variant"],
                record["tier"],
                record["input_set"].get("name", "-"),
                status,
                _worst_text(record),
            ]
        )
    if not rows:
        return []
    headers = ["graph", "variant", "tier", "inputs", "status", "worst gate (value / limit)"]
    return table(headers, rows)


UNRELATED_COSINE = 0.5
"""At or below this cosine an output is unrelated to its reference rather than drifted from it
(``plugin.hints`` says so per test); a damaged weight that still drifts stays well above it."""


def suspect_reference_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A line per graph whose every variant failed with every output's cosine near 0: one
    broken variant is possible, all of them at once points at the reference."""
    by_graph: dict[str, list[float]] = {}
    failed_graphs: dict[str, bool] = {}
    for record in records:
        if record["kind"] != "parity" or not record.get("parity"):
            continue
        graph = record["graph"]
        # a null cosine (NaN/Inf in an output) is its own failure, not evidence of a wrong reference
        cosines = [stats["cosine"] for stats in record["parity"]["outputs"]]
        unrelated = not record["passed"] and all(
            c is not None and c <= UNRELATED_COSINE for c in cosines
        )
        failed_graphs[graph] = failed_graphs.get(graph, True) and unrelated
        by_graph.setdefault(graph, []).extend(c for c in cosines if c is not None)
    return [
        f"every variant of {graph} fails with cosine <= {UNRELATED_COSINE} on every output (at "
        f"most {max(by_graph[graph]):.3g}): the reference is the suspect (weights not loaded? "
        "inputs mapped to the wrong arguments?), not the variants"
        for graph, all_unrelated in sorted(failed_graphs.items())
        if all_unrelated
    ]


def check_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A row per failed or not-enforced check; passing checks are counted by name on one line,
    so a run with health checks or a 200-clip WER set stays readable."""
    rows = []
    passed: dict[str, int] = {}
    for record in records:
        if record["kind"] != "check":
            continue
        if record["passed"] and record["enforced"]:
            passed[record["check"]] = passed.get(record["check"], 0) + 1
            continue
        status = "NOTE" if not record["enforced"] else "FAIL"
        detail = (record["message"] or "").splitlines()[0] if record["message"] else ""
        rows.append([record["graph"], record["variant"], record["check"], status, detail[:100]])
    lines = table(["graph", "variant", "check", "status", "detail"], rows) if rows else []
    if passed:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(passed.items()))
        lines.append(f"checks passed: {counts}")
    return lines


def _worst_text(record: Mapping[str, Any]) -> str:
    if record["error"]:
        return record["error"].splitlines()[0][:90]
    parity = record.get("parity")
    if not parity or not parity["gates"]:
        return "no gates"
    gate = worst_gate(parity["gates"])
    limit = gate["limit"]
    value = "n/a" if gate["value"] is None else shown_value(gate["value"], limit)
    relation = ">=" if gate["metric"].startswith("min_") else "<="
    return f"{gate['output']}.{gate['metric']} {value} {relation} {shown_limit(limit)}"


def counts_line(
    records: Sequence[Mapping[str, Any]], workers: Mapping[str, Mapping[str, Any]]
) -> str:
    """``6 parity tests (6 passed), 4 checks (3 passed, 1 failed); 8 sessions opened (gw0: 4…)``."""

    def tally(kind: str, noun: str) -> str | None:
        mine = [r for r in records if r["kind"] == kind]
        if not mine:
            return None
        errors = sum(1 for r in mine if r.get("error"))
        failed = sum(1 for r in mine if not r["passed"] and r.get("enforced", True)) - errors
        notes = sum(1 for r in mine if not r["passed"] and not r.get("enforced", True))
        parts = [f"{len(mine) - failed - errors - notes} passed"]
        parts += [
            f"{n} {what}"
            for n, what in ((failed, "failed"), (errors, "errors"), (notes, "notes"))
            if n
        ]
        return f"{len(mine)} {noun} ({', '.join(parts)})"

    counts = [text for text in (tally("parity", "parity tests"), tally("check", "checks")) if text]
    line = ", ".join(counts)
    opened = sum(int(w.get("sessions_opened", 0)) for w in workers.values())
    if workers:
        per_worker = ", ".join(
            f"{name}: {w.get('sessions_opened', 0)}" for name, w in workers.items()
        )
        line += f"; {opened} sessions opened ({per_worker})"
    return line
