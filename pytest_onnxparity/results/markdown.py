"""The parity metadata block as Markdown tables, for a README, a model card or a CI summary.

Pure: takes the block from ``metadata.build_metadata`` (after any user hook edited it) and
returns text; every table is built from what the block holds, so a check it does not know still
gets a row with its numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_onnxparity.export.folder import human_size
from pytest_onnxparity.results.numbers import WORST_IS_MIN

STATUS_TEXT = {
    "passed": "✅ pass",
    "failed": "❌ fail",
    "error": "💥 error",
    "not run": "– not run",
}
PARITY_COLUMNS = ("max_abs", "rel_l2", "cosine", "argmax_agreement")
SEQUENCE_CHECK = "sequence"
HEALTH_PREFIX = "health"
CHECK_NUMBERS_SHOWN = 6
TOOLCHAIN_ORDER = ("onnxruntime", "onnx", "numpy", "torch", "pytest")


def render_markdown(metadata: Mapping[str, Any], title: str = "ONNX parity") -> str:
    """Sections: parity per graph × variant, multi-clip parity, checks, graph IO, toolchain."""
    graphs = metadata.get("graphs", {})
    lines = [f"## {title}", ""]
    sections = (
        ("Parity per graph × variant", parity_table(graphs)),
        ("Multi-clip parity", sequence_table(graphs)),
        ("Checks", checks_table(graphs)),
        ("Graph inputs and outputs", io_table(graphs)),
    )
    for heading, table in sections:
        if table:
            lines += [f"### {heading}", "", *table, ""]
    lines.append(toolchain_line(metadata))
    return "\n".join(lines) + "\n"


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], right: int = 0
) -> list[str]:
    """A GitHub-flavoured table; the last ``right`` columns (numbers) are right-aligned."""
    rows = list(rows)
    if not rows:
        return []
    align = ["---"] * (len(headers) - right) + ["---:"] * right
    return [
        _row(headers),
        _row(align),
        *(_row(row) for row in rows),
    ]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def parity_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per graph × variant × output: size, status and the worst error numbers."""
    rows = []
    for graph_name, graph in graphs.items():
        for tag, variant in graph.get("variants", {}).items():
            if "outputs" not in variant and variant.get("file") is None:
                continue  # a sequence variant set: its numbers are in the multi-clip table
            outputs = variant.get("outputs") or {"–": {}}
            for output, stats in outputs.items():
                rows.append(
                    [
                        graph_name,
                        tag,
                        variant.get("tier", ""),
                        _size(variant),
                        STATUS_TEXT.get(variant.get("status", ""), variant.get("status", "")),
                        output,
                        *(number(metric, stats.get(metric)) for metric in PARITY_COLUMNS),
                    ]
                )
    headers = ["graph", "variant", "tier", "size", "status", "output", *PARITY_COLUMNS]
    return markdown_table(headers, rows, right=len(PARITY_COLUMNS))


def sequence_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per variant set with a ``sequence`` check: clips, matches, WER and CER."""
    rows = []
    for graph_name, graph in graphs.items():
        for tag, variant in graph.get("variants", {}).items():
            numbers = (variant.get("checks") or {}).get(SEQUENCE_CHECK)
            if numbers is None:
                continue
            clips = numbers.get("clips")
            matching = numbers.get("transcripts_matching")
            truth = numbers.get("wer_vs_truth")
            reference_truth = numbers.get("reference_wer_vs_truth")
            rows.append(
                [
                    graph_name,
                    tag,
                    _pass(numbers),
                    number("clips", clips),
                    "–" if matching is None else f"{matching}/{clips}",
                    number("token_mismatched_clips", numbers.get("token_mismatched_clips")),
                    _percent(numbers.get("wer")),
                    _percent(numbers.get("cer")),
                    "–" if truth is None else f"{_percent(reference_truth)} → {_percent(truth)}",
                ]
            )
    headers = [
        "graph",
        "variant set",
        "status",
        "clips",
        "transcripts matching",
        "token-mismatched clips",
        "WER vs reference",
        "CER vs reference",
        "WER vs truth (reference → variant)",
    ]
    return markdown_table(headers, rows, right=6)


def checks_table(graphs: Mapping[str, Any]) -> list[str]:
    """Health (one row per file), coverage, size, timing and any other check with its numbers."""
    rows = []
    for graph_name, graph in graphs.items():
        entries = []
        reference = graph.get("reference")
        if reference and reference.get("checks"):
            entries.append((reference.get("variant", "reference"), reference["checks"]))
        entries += [
            (tag, variant["checks"])
            for tag, variant in graph.get("variants", {}).items()
            if variant.get("checks")
        ]
        for tag, checks in entries:
            health = {name: c for name, c in checks.items() if name.startswith(HEALTH_PREFIX)}
            if health:
                failed = [name for name, c in health.items() if not c["passed"]]
                status = "❌ fail" if failed else "✅ pass"
                detail = f"{len(health) - len(failed)} of {len(health)} passed"
                if failed:
                    detail += f"; failed: {', '.join(failed)}"
                rows.append([graph_name, tag, HEALTH_PREFIX, status, detail])
            for name, check in checks.items():
                if name in health or name == SEQUENCE_CHECK:
                    continue
                rows.append([graph_name, tag, name, _pass(check), _numbers_text(check)])
    return markdown_table(["graph", "variant", "check", "status", "numbers"], rows)


def io_table(graphs: Mapping[str, Any]) -> list[str]:
    rows = []
    for graph_name, graph in graphs.items():
        for kind in ("inputs", "outputs"):
            for name, tensor in (graph.get(kind) or {}).items():
                shape = tensor.get("shape")
                dims = (
                    "?" if shape is None else ", ".join("?" if d is None else str(d) for d in shape)
                )
                rows.append([graph_name, kind[:-1], name, tensor.get("dtype", "?"), f"[{dims}]"])
    return markdown_table(["graph", "", "name", "dtype", "shape"], rows)


def toolchain_line(metadata: Mapping[str, Any]) -> str:
    toolchain = metadata.get("toolchain") or {}
    settings = metadata.get("settings") or {}
    parts = [str(metadata.get("generator", "pytest-onnxparity"))]
    if toolchain.get("python"):
        parts.append(f"Python {toolchain['python']}")
    parts += [f"{name} {toolchain[name]}" for name in TOOLCHAIN_ORDER if toolchain.get(name)]
    parts += list(toolchain.get("providers") or [])
    if toolchain.get("cpu"):
        parts.append(str(toolchain["cpu"]))
    if settings.get("seed") is not None:
        parts.append(f"input seed {settings['seed']}")
    return "Measured with " + " · ".join(parts)


def number(metric: str, value: Any) -> str:
    """A table cell: cosine-like rates as rounded, other floats to 3 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if metric in WORST_IS_MIN:
        return repr(value)
    return f"{value:.3g}"


def _percent(rate: Any) -> str:
    return "–" if rate is None else f"{100.0 * rate:.2f}%"


def _pass(check: Mapping[str, Any]) -> str:
    if not check.get("passed", True):
        return "note" if check.get("enforced") is False else "❌ fail"
    return "✅ pass"


def _numbers_text(check: Mapping[str, Any]) -> str:
    shown = [
        f"{key}={number(key, value)}"
        for key, value in check.items()
        if key not in ("passed", "enforced") and not isinstance(value, Mapping | list)
    ]
    more = len(shown) - CHECK_NUMBERS_SHOWN
    return ", ".join(shown[:CHECK_NUMBERS_SHOWN]) + (f", … {more} more" if more > 0 else "")


def _size(variant: Mapping[str, Any]) -> str:
    size = variant.get("size_bytes")
    if size is None:
        return "–"
    text = human_size(size)
    ratio = variant.get("size_ratio")
    return text if ratio is None else f"{text} ({ratio:.2f}×)"
