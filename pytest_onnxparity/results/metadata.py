"""The parity metadata block a model repository ships beside its graphs: per graph × variant,
rounded, in a stable key order, built from plain-JSON records and the discovery JSON, so a
stored results file can be turned into a block later."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_onnxparity.results.numbers import (
    NONFINITE_COUNTS,
    WORST_IS_MAX,
    WORST_IS_MIN,
    round_number,
)
from pytest_onnxparity.results.views import group_by_graph

METADATA_SCHEMA = "pytest-onnxparity/metadata"


METADATA_VERSION = 1


def build_metadata(document: Mapping[str, Any]) -> dict[str, Any]:
    """The compact block for a model repository, from a results document.

    Graph IO, per variant: tier, file, size, status, its format (opset, IR version, operator
    domains, producer), per-output worst numbers with their limits and the kind of inputs they
    were measured on (real ones win the headline; the other kind is kept beside them), each
    check's numbers (coverage, health, size, timings, multi-clip parity against each
    reference, per clip); the toolchain and the session settings. Numbers keep 4 significant
    digits (cosine-like rates 4 digits of their distance from 1) so re-runs diff only where
    something changed. A document without ``graphs`` (written before it existed) is grouped
    from its records.
    """
    graphs = document.get("graphs")
    if graphs is None:
        graphs = group_by_graph(
            document.get("records", []), document.get("export"), formats=document.get("formats")
        )
    settings = document.get("settings") or {}
    session = settings.get("session") or {}
    toolchain = document.get("toolchain") or {}
    packages = toolchain.get("packages") or {}
    return {
        "schema": METADATA_SCHEMA,
        "schema_version": METADATA_VERSION,
        "generator": f"pytest-onnxparity {packages.get('pytest-onnxparity') or 'unknown'}",
        "toolchain": {
            "python": toolchain.get("python"),
            "cpu": toolchain.get("cpu"),
            "providers": list(toolchain.get("providers") or []),
            **{name: version for name, version in packages.items() if version is not None},
        },
        "settings": {
            "seed": (settings.get("inputs") or {}).get("seed"),
            "providers": session.get("providers"),
            "intra_op_threads": session.get("intra_op_threads"),
            "graph_optimization_level": session.get("graph_optimization_level"),
            "deterministic": session.get("deterministic"),
            "allow_spinning": session.get("allow_spinning"),
        },
        "graphs": {name: _graph_block(graph) for name, graph in sorted(graphs.items())},
    }


def _graph_block(graph: Mapping[str, Any]) -> dict[str, Any]:
    variants = graph.get("variants", {})
    reference_tag = graph.get("reference")
    reference = variants.get(reference_tag) if reference_tag else None
    block: dict[str, Any] = {}
    io = graph.get("io")
    if io:
        block["inputs"] = {spec["name"]: _tensor(spec) for spec in io.get("inputs", [])}
        block["outputs"] = {spec["name"]: _tensor(spec) for spec in io.get("outputs", [])}
    if reference is not None:
        block["reference"] = {
            "variant": reference_tag,
            "file": reference.get("file"),
            "size_bytes": reference.get("total_bytes"),
            **({"format": _format(reference["format"])} if reference.get("format") else {}),
            **({"checks": _checks(reference)} if reference.get("checks") else {}),
        }
    reference_bytes = None if reference is None else reference.get("total_bytes")
    block["variants"] = {
        tag: _variant_block(view, reference_bytes)
        for tag, view in sorted(variants.items())
        if tag != reference_tag
    }
    return block


def _tensor(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"dtype": spec["dtype"], "shape": spec["shape"]}


def _variant_block(view: Mapping[str, Any], reference_bytes: int | None) -> dict[str, Any]:
    block: dict[str, Any] = {"status": view["status"]}
    if view.get("tier"):
        block["tier"] = view["tier"]
    if view.get("file"):
        block["file"] = view["file"]
    size = view.get("total_bytes")
    if size is not None:
        block["size_bytes"] = size
        if reference_bytes:
            # size_ratio (variant / reference) is kept for readers of version 1;
            # compression_ratio (reference / variant: 2.0 = "2.00x smaller") is what the card
            # and the size gates show.
            block["size_ratio"] = round_number("size_ratio", size / reference_bytes)
            if size:
                block["compression_ratio"] = round_number("ratio", reference_bytes / size)
    if view.get("format"):
        block["format"] = _format(view["format"])
    if view.get("input_sets"):
        block["input_sets"] = sorted(view["input_sets"])
    outputs = _outputs(view.get("outputs", {}))
    if outputs:
        block["outputs"] = outputs
        block["inputs"] = view.get("headline_inputs") or "synthesized"
    by_inputs = view.get("outputs_by_inputs") or {}
    if len(by_inputs) > 1:
        block["outputs_by_inputs"] = {
            kind: {"input_sets": list(found["input_sets"]), "outputs": _outputs(found["outputs"])}
            for kind, found in by_inputs.items()
        }
    limits = _limits(view.get("gates", []))
    if limits:
        block["limits"] = limits
    if view.get("checks"):
        block["checks"] = _checks(view)
    return block


def _outputs(outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each output's statistics rounded; a statistic nobody measured (None) is left out, one a
    NaN/Inf made unmeasurable stays, as null beside the counts that say why."""
    block = {}
    for name, stats in outputs.items():
        nonfinite = any(stats.get(count) for count in NONFINITE_COUNTS)
        block[name] = {
            key: round_number(key, value)
            for key, value in stats.items()
            if value is not None or (nonfinite and key in WORST_IS_MAX + WORST_IS_MIN)
        }
    return block


def _format(found: Mapping[str, Any]) -> dict[str, Any]:
    """A file's format for the card: IR version, opsets, producer, nodes per operator domain,
    and the op types of every domain beside ai.onnx (``com.microsoft``: ``MatMulNBits``…)."""
    ops = found.get("ops_by_domain") or {}
    return {
        "ir_version": found.get("ir_version"),
        "opset": found.get("opset"),
        "opset_imports": dict(found.get("opset_imports") or {}),
        "producer": found.get("producer", ""),
        "nodes_by_domain": {domain: sum(counts.values()) for domain, counts in ops.items()},
        "custom_ops": {
            domain: dict(counts) for domain, counts in ops.items() if domain != "ai.onnx"
        },
    }


def _limits(gates: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each output's gate limits (the same on every input set; the strictest if not)."""
    limits: dict[str, dict[str, float]] = {}
    for gate in gates:
        if gate["metric"] in ("finite", "reference_finite"):
            continue
        per_output = limits.setdefault(gate["output"], {})
        limit = gate["limit"]
        previous = per_output.get(gate["metric"])
        if previous is not None:
            limit = (
                max(previous, limit) if gate["metric"].startswith("min_") else min(previous, limit)
            )
        per_output[gate["metric"]] = limit
    return {output: dict(sorted(values.items())) for output, values in sorted(limits.items())}


def _checks(view: Mapping[str, Any]) -> dict[str, Any]:
    """Each check's verdict and numbers (rounded), what they are measured against (``about``)
    and, for a check run once per clip, each run's numbers under ``items``."""
    checks = {}
    for name, check in sorted(view["checks"].items()):
        entry: dict[str, Any] = {"passed": check["passed"]}
        if not check.get("enforced", True):
            entry["enforced"] = False
        entry.update(_rounded(check["numbers"]))
        if check.get("about"):
            entry["about"] = dict(check["about"])
        if check.get("items"):
            entry["items"] = {
                label: {"passed": item["passed"], **_rounded(item["numbers"])}
                for label, item in check["items"].items()
            }
        checks[name] = entry
    return checks


def _rounded(numbers: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers rounded by :func:`round_number`, nested tables (``against``) too."""
    return {
        key: _rounded(value) if isinstance(value, Mapping) else round_number(key, value)
        for key, value in sorted(numbers.items())
    }


def dumps_stable(document: Any, indent: int = 2) -> str:
    """JSON with sorted keys, one key per line, lists of plain values on one line.

    Keys are sorted at every level, so two runs' files diff line by line whatever order the
    records arrived in (or a ``pytest_onnxparity_update_metadata`` hook added keys).
    """

    def render(value: Any, depth: int) -> str:
        pad, inner = " " * (indent * depth), " " * (indent * (depth + 1))
        if isinstance(value, Mapping):
            if not value:
                return "{}"
            items = [
                f"{inner}{json.dumps(str(key))}: {render(value[key], depth + 1)}"
                for key in sorted(value, key=str)
            ]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}"
        if isinstance(value, list | tuple):
            if all(not isinstance(item, Mapping | list | tuple) for item in value):
                return "[" + ", ".join(json.dumps(item, allow_nan=False) for item in value) + "]"
            items = [f"{inner}{render(item, depth + 1)}" for item in value]
            return "[\n" + ",\n".join(items) + f"\n{pad}]"
        return json.dumps(value, allow_nan=False)

    return render(document, 0) + "\n"
