"""The parity metadata block as a Markdown model card, for a README, a model card or a CI summary.

Pure: takes the block from ``metadata.build_metadata`` (after any user hook edited it) and
returns text, so ``--parity-markdown`` and a later re-render of a stored results file agree.
Sections, each only when the block has something for it: non-finite outputs (loudly, first),
parity per graph × variant × output × kind of inputs (max/mean/p99 abs, rel L2, cosine with the
limits they were held to, argmax mismatches as n/N for logits, non-finite counts), sequence
parity per variant set × reference and per clip, speed, file formats (opset, IR version, operator
domains, producer), health per check, other checks, graph IO, and the toolchain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pytest_onnxparity.results.markdown_cells import (
    NONE,
    fraction,
    markdown_table,
    names_text,
    number,
    size_text,
    status_text,
    with_limit,
)
from pytest_onnxparity.results.markdown_checks import (
    checks_table,
    file_entries,
    format_lines,
    health_table,
    speed_table,
)
from pytest_onnxparity.results.markdown_sequence import clip_table, sequence_notes, sequence_table

__all__ = ["markdown_table", "number", "render_markdown"]

PARITY_COLUMNS = (
    ("max_abs", "max_abs", "≤"),
    ("mean_abs", "mean_abs", "≤"),
    ("p99_abs", "p99_abs", "≤"),
    ("rel_l2", "rel_l2", "≤"),
    ("cosine", "min_cosine", "≥"),
)
"""Statistic, the limit key that gates it, and the relation the limit holds."""
ARGMAX_OUTPUT = re.compile(r"logit|prob|score|class", re.IGNORECASE)
"""Outputs whose last axis is a class axis, where argmax agreement means something (not a KV
cache or a hidden state); an output gated on argmax or top-k counts too."""
ARGMAX_GATES = ("min_argmax_agreement", "min_topk_overlap")
TOOLCHAIN_ORDER = (
    "onnxruntime",
    "onnx",
    "numpy",
    "torch",
    "transformers",
    "tokenizers",
    "optimum",
    "onnxscript",
    "sentence-transformers",
    "jiwer",
    "rapidfuzz",
    "datasets",
    "soundfile",
    "pytest",
)
INPUTS_NOTE = (
    "Each number is the worst over the input sets named in its row; real inputs (recorded "
    "arrays, a conftest hook) are the headline, synthesized ones get rows of their own. "
    "`≤`/`≥` give the limit the value was held to."
)


def render_markdown(metadata: Mapping[str, Any], title: str = "ONNX parity") -> str:
    """The card: see the module docstring for its sections."""
    graphs = metadata.get("graphs", {})
    if metadata.get("model"):
        title = f"{title}: {metadata['model']}"
    lines = [f"## {title}", ""]
    warnings = nonfinite_lines(graphs)
    if warnings:
        lines += [*warnings, ""]
    parity = parity_table(graphs)
    sequence = sequence_table(graphs)
    sections = (
        ("Parity per graph × variant", [INPUTS_NOTE, "", *parity] if parity else []),
        ("Sequence parity per variant set", [*sequence, "", *sequence_notes(graphs)]),
        ("Sequence parity per clip", clip_table(graphs)),
        ("Speed", speed_table(graphs)),
        ("Graph files: opset, IR version, operators", format_lines(graphs)),
        ("Health checks", health_table(graphs)),
        ("Checks", checks_table(graphs)),
        ("Graph inputs and outputs", io_table(graphs)),
    )
    for heading, body in sections:
        if any(body):
            lines += [f"### {heading}", "", *_trimmed(body), ""]
    exporters = exporter_line(graphs)
    if exporters:
        lines += [exporters, ""]
    lines.append(toolchain_line(metadata))
    return "\n".join(lines) + "\n"


def _trimmed(body: list[str]) -> list[str]:
    while body and not body[-1]:
        body = body[:-1]
    return body


def nonfinite_lines(graphs: Mapping[str, Any]) -> list[str]:
    """A warning per output with NaN or inf values, before any table: such a row's statistics
    are not numbers and must not read as a perfect match."""
    lines = []
    for graph_name, graph in graphs.items():
        for tag, variant in graph.get("variants", {}).items():
            for kind, outputs in _outputs_by_inputs(variant):
                for output, stats in outputs.items():
                    text = _nonfinite_text(stats)
                    if text != "0":
                        lines.append(
                            f"> ⚠ **{graph_name}/{tag} `{output}`** ({kind} inputs): {text} "
                            "non-finite values (NaN/inf); its statistics are left out."
                        )
    return lines


def parity_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per graph × variant × kind of inputs × output: size, status, which input sets,
    each error statistic with its limit, argmax mismatches (n/N, for class outputs only) and
    non-finite counts."""
    rows = []
    for graph_name, graph in graphs.items():
        for tag, variant in graph.get("variants", {}).items():
            if "outputs" not in variant and variant.get("file") is None:
                continue  # a sequence variant set: its numbers are in the sequence tables
            limits = variant.get("limits") or {}
            by_inputs = _outputs_by_inputs(variant) or [("", {NONE: {}})]
            for kind, outputs in by_inputs:
                inputs = _inputs_text(variant, kind)
                for output, stats in outputs.items():
                    gated = limits.get(output) or {}
                    rows.append(
                        [
                            graph_name,
                            tag,
                            str(variant.get("tier", "")),
                            size_text(variant),
                            status_text(str(variant.get("status", ""))),
                            inputs,
                            output,
                            *(
                                with_limit(number(stat, stats.get(stat)), gated.get(key), rel)
                                for stat, key, rel in PARITY_COLUMNS
                            ),
                            _argmax_text(output, stats, gated),
                            _nonfinite_text(stats) if stats else NONE,
                        ]
                    )
    headers = [
        "graph",
        "variant",
        "tier",
        "size",
        "status",
        "inputs",
        "output",
        *(stat for stat, _, _ in PARITY_COLUMNS),
        "argmax mismatches",
        "non-finite",
    ]
    return markdown_table(headers, rows, right=len(PARITY_COLUMNS) + 2)


def _outputs_by_inputs(variant: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(kind, outputs)``: the headline kind first, then the other kind when both were run."""
    by_inputs = variant.get("outputs_by_inputs") or {}
    headline = variant.get("inputs", "synthesized")
    if not variant.get("outputs"):
        return []
    others = [(kind, found["outputs"]) for kind, found in by_inputs.items() if kind != headline]
    return [(headline, variant["outputs"]), *others]


def _inputs_text(variant: Mapping[str, Any], kind: str) -> str:
    if not kind:
        return NONE
    by_inputs = variant.get("outputs_by_inputs") or {}
    names = (by_inputs.get(kind) or {}).get("input_sets") or variant.get("input_sets") or []
    return f"{kind}: {names_text(list(names))}" if names else kind


def _argmax_text(output: str, stats: Mapping[str, Any], limits: Mapping[str, Any]) -> str:
    meaningful = ARGMAX_OUTPUT.search(output) or any(key in limits for key in ARGMAX_GATES)
    if not meaningful:
        return NONE
    text = fraction(stats.get("argmax_mismatches"), stats.get("argmax_positions"))
    if text == NONE and stats.get("argmax_agreement") is not None:
        text = f"agreement {number('argmax_agreement', stats['argmax_agreement'])}"
    limit = limits.get("min_argmax_agreement")
    return text if limit is None or text == NONE else f"{text} (agreement ≥ {limit:g})"


def _nonfinite_text(stats: Mapping[str, Any]) -> str:
    parts = [
        f"⚠ {stats[key]:g} in the {side}"
        for key, side in (
            ("nonfinite_in_variant", "variant"),
            ("nonfinite_in_reference", "reference"),
        )
        if stats.get(key)
    ]
    return ", ".join(parts) if parts else "0"


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


def exporter_line(graphs: Mapping[str, Any]) -> str:
    """``Written by: pytorch 2.13.0 (encoder/fp32, …); onnx.quantize 0.1.0 (encoder/int8)``:
    the producer each file names, i.e. the export path."""
    producers: dict[str, list[str]] = {}
    for graph_name, tag, entry in file_entries(graphs):
        producer = (entry.get("format") or {}).get("producer")
        if producer:
            producers.setdefault(str(producer), []).append(f"{graph_name}/{tag}")
    if not producers:
        return ""
    parts = [f"{producer} ({names_text(files, 4)})" for producer, files in producers.items()]
    return "Files written by (their `producer`): " + "; ".join(parts)


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
