"""The card's file and check sections: each file's format (opset, IR version, operator domains,
producer), its health checks one by one, the timings with their ratio to the reference, and
every other check with its numbers. Pure: reads the metadata block."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pytest_onnxparity.results.markdown_cells import (
    NONE,
    markdown_table,
    number,
    pass_text,
)

HEALTH_PREFIX = "health"
TIMING_CHECKS = ("latency", "rtf")
SEQUENCE_CHECKS = ("sequence", "sequence-clip")
DEFAULT_DOMAIN = "ai.onnx"
CHECK_NUMBERS_SHOWN = 6


def file_entries(graphs: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(graph, tag, entry)`` for each graph's reference and each of its variants."""
    for graph_name, graph in graphs.items():
        reference = graph.get("reference")
        if reference:
            yield graph_name, str(reference.get("variant", "reference")), reference
        for tag, variant in graph.get("variants", {}).items():
            yield graph_name, tag, variant


def format_lines(graphs: Mapping[str, Any]) -> list[str]:
    """A summary of the operator domains (``ai.onnx only: no com.microsoft ops``), then one row
    per file: opset, IR version, domains and the op types outside ai.onnx, producer."""
    rows = []
    custom: list[str] = []
    for graph_name, tag, entry in file_entries(graphs):
        found = entry.get("format")
        if not found:
            continue
        ops = found.get("custom_ops") or {}
        domains = _domains_text(ops)
        if ops:
            custom.append(f"{graph_name}/{tag} ({domains})")
        imports = found.get("opset_imports") or {}
        extra = [f"{d} {v}" for d, v in sorted(imports.items()) if d != DEFAULT_DOMAIN]
        rows.append(
            [
                graph_name,
                tag,
                str(entry.get("file") or NONE),
                number("opset", found.get("opset")) + (f" (+ {', '.join(extra)})" if extra else ""),
                number("ir_version", found.get("ir_version")),
                domains,
                str(found.get("producer") or NONE),
            ]
        )
    if not rows:
        return []
    if custom:
        summary = f"Operators outside ai.onnx in {len(custom)} file(s): {'; '.join(custom)}."
    else:
        summary = "Every file uses ai.onnx operators only: no com.microsoft or other custom ops."
    table = markdown_table(
        ["graph", "variant", "file", "opset", "IR version", "operator domains", "producer"], rows
    )
    return [summary, "", *table]


def _domains_text(custom_ops: Mapping[str, Mapping[str, int]]) -> str:
    if not custom_ops:
        return "ai.onnx only"
    parts = [
        f"{domain}: " + ", ".join(f"{op} ×{count}" for op, count in sorted(ops.items()))
        for domain, ops in sorted(custom_ops.items())
    ]
    return "ai.onnx + " + "; ".join(parts)


def health_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per file, one column per health check: each check's own verdict."""
    names: dict[str, None] = {}
    entries = []
    for graph_name, tag, entry in file_entries(graphs):
        health = {
            name: check
            for name, check in (entry.get("checks") or {}).items()
            if name.startswith(HEALTH_PREFIX)
        }
        if health:
            names.update(dict.fromkeys(sorted(health)))
            entries.append((graph_name, tag, health))
    columns = list(names)
    rows = [
        [
            graph_name,
            tag,
            *(pass_text(health[name]) if name in health else NONE for name in columns),
        ]
        for graph_name, tag, health in entries
    ]
    headers = ["graph", "variant", *(name.split(":", 1)[-1] for name in columns)]
    return markdown_table(headers, rows)


def speed_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per timing: the median, its ratio to the reference (median of interleaved pairs
    with the IQR when timed that way), the budgets and the verdict."""
    rows = []
    for graph_name, tag, entry in file_entries(graphs):
        for name, check in (entry.get("checks") or {}).items():
            if name not in TIMING_CHECKS:
                continue
            metric = "latency_ms" if name == "latency" else "rtf"
            about = check.get("about") or {}
            ratio = check.get("vs_reference")
            vs = NONE if ratio is None else f"{ratio:.2f}x"
            if ratio is not None and check.get("vs_reference_iqr") is not None:
                reference = number(metric, check.get(f"reference_{metric}"))
                vs += (
                    f" (median of interleaved pairs, IQR {check['vs_reference_iqr']:.2f}; "
                    f"reference {reference} in those rounds)"
                )
            rows.append(
                [
                    graph_name,
                    tag,
                    metric,
                    number(metric, check.get(metric)),
                    vs,
                    str(about.get("budgets", NONE)),
                    pass_text(check),
                ]
            )
    headers = ["graph", "variant", "metric", "median", "vs reference", "budgets", "status"]
    return markdown_table(headers, rows)


def checks_table(graphs: Mapping[str, Any]) -> list[str]:
    """Every check the sections above do not show (coverage, size, weights, a plugin's own),
    with its numbers."""
    rows = []
    shown = (*TIMING_CHECKS, *SEQUENCE_CHECKS)
    for graph_name, tag, entry in file_entries(graphs):
        for name, check in (entry.get("checks") or {}).items():
            if name.startswith(HEALTH_PREFIX) or name in shown:
                continue
            rows.append([graph_name, tag, name, pass_text(check), numbers_text(check)])
    return markdown_table(["graph", "variant", "check", "status", "numbers"], rows)


def numbers_text(check: Mapping[str, Any]) -> str:
    """``fraction=1, quantized=4``: a check's plain numbers, the first few."""
    shown = [
        f"{key}={number(key, value)}"
        for key, value in check.items()
        if key not in ("passed", "enforced") and not isinstance(value, Mapping | list)
    ]
    more = len(shown) - CHECK_NUMBERS_SHOWN
    return ", ".join(shown[:CHECK_NUMBERS_SHOWN]) + (f", … {more} more" if more > 0 else "")
