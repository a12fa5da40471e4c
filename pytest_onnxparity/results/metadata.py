"""Per graph × variant views of a run, derived from its records.

:func:`group_by_graph` is the ``graphs`` section of the results file (full precision, with the
node ids of the records behind each number); :func:`build_metadata` is the compact parity
metadata block a model repository ships beside its graphs (rounded, stable key order). Both are
computed from plain-JSON records and the discovery JSON, so a stored results file can be turned
into a block later. Check records are read generically: a check's top-level numbers become its
numbers; a few known checks (``sequence``) have a reader that lifts their nested totals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

METADATA_SCHEMA = "pytest-onnxparity/metadata"
METADATA_VERSION = 1
SIGNIFICANT_DIGITS = 4

WORST_IS_MAX = ("max_abs", "mean_abs", "p99_abs", "rel_l2")
WORST_IS_MIN = ("cosine", "argmax_agreement", "topk_overlap")
SUMMED = ("argmax_mismatches", "nonfinite_in_variant")
OUTPUT_STATS = (*WORST_IS_MAX, *WORST_IS_MIN, *SUMMED)

ITEM_LABELS = ("clip_id", "input_set", "name")
"""Detail keys that label the runs of a check run several times per variant."""

STATUS_ORDER = ("error", "failed", "passed", "not run")
"""Worst first: a variant's status is the worst of its records'."""

# Corpus totals of the sequence check whose word/character error counts are read as rates,
# under the names baselines use (``wer:+0.5pp``).
SEQUENCE_RATES = {
    "wer_vs_reference": "wer",
    "cer_vs_reference": "cer",
    "wer_vs_truth": "wer_vs_truth",
    "reference_wer_vs_truth": "reference_wer_vs_truth",
}


# --------------------------------------------------------------------------------------------
# Check numbers
# --------------------------------------------------------------------------------------------


def scalar_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level numbers and booleans of a check's details (nested values stay in records)."""
    return {
        key: value
        for key, value in details.items()
        if isinstance(value, bool) or is_finite_number(value)
    }


def sequence_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """Corpus totals of a ``sequence`` check: clips, transcript matches, token edits, WER/CER."""
    numbers = _sequence_counts(details.get("corpus") or {})
    clips, mismatched = numbers.get("clips"), numbers.get("transcript_mismatched_clips")
    if isinstance(clips, int) and isinstance(mismatched, int):
        numbers["transcripts_matching"] = clips - mismatched
    return numbers


def clip_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """One clip of a ``sequence-clip`` check: its WER/CER, token edits and matches."""
    return _sequence_counts(details.get("clip") or {})


def _sequence_counts(counts: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers and booleans as they are; word/character error counts as their rate."""
    numbers: dict[str, Any] = {}
    for key, value in counts.items():
        if isinstance(value, Mapping):
            if key in SEQUENCE_RATES and is_finite_number(value.get("rate")):
                numbers[SEQUENCE_RATES[key]] = value["rate"]
        elif isinstance(value, bool) or is_finite_number(value):
            numbers[key] = value
    return numbers


def timing_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """A ``latency`` or ``rtf`` check: the median figure under its metric's name
    (``latency_ms``, ``rtf``), the reference's figure, the rounds and the threads."""
    measurement = details.get("measurement") or {}
    metric, value = measurement.get("metric"), measurement.get("value")
    if not isinstance(metric, str) or not is_finite_number(value):
        return scalar_numbers(details)
    numbers: dict[str, Any] = {metric: value}
    reference = (details.get("reference") or {}).get("value")
    if is_finite_number(reference):
        numbers[f"reference_{metric}"] = reference
        if reference:
            numbers["vs_reference"] = value / reference
    for key in ("repeats", "warmup"):
        if is_finite_number(measurement.get(key)):
            numbers[key] = measurement[key]
    threads = (details.get("context") or {}).get("intra_op_threads")
    if is_finite_number(threads):
        numbers["intra_op_threads"] = threads
    return numbers


CHECK_NUMBERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "sequence": sequence_numbers,
    "sequence-clip": clip_numbers,
    "latency": timing_numbers,
    "rtf": timing_numbers,
}
"""Readers for checks whose headline numbers are nested; every other check uses
:func:`scalar_numbers`."""


def check_numbers(check: str, details: Mapping[str, Any]) -> dict[str, Any]:
    return CHECK_NUMBERS.get(check, scalar_numbers)(details)


# --------------------------------------------------------------------------------------------
# The results file's per graph × variant grouping
# --------------------------------------------------------------------------------------------


def group_by_graph(
    records: Sequence[Mapping[str, Any]],
    export: Mapping[str, Any] | None = None,
    io: Mapping[str, Any] | None = None,
    durations: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """``{graph: {reference, io, variants: {tag: {...}}}}`` from the records and discovery JSON.

    Every discovered file gets an entry (``status: "not run"`` when no test measured it); a
    record of a graph or variant discovery does not know (a sequence variant set, a user's own
    arrays) gets one too. ``durations`` maps a record's node id to its test's seconds.
    """
    files = {
        (graph["name"], model["variant"]): (graph, model)
        for graph in (export or {}).get("graphs", [])
        for model in graph["files"]
    }
    by_variant: dict[tuple[str, str], list[Mapping[str, Any]]] = {key: [] for key in files}
    for record in records:
        by_variant.setdefault((record["graph"], record["variant"]), []).append(record)
    graphs: dict[str, Any] = {}
    for graph_name, variant in sorted(by_variant, key=lambda key: _variant_order(key, files)):
        discovered = files.get((graph_name, variant))
        entry = graphs.setdefault(
            graph_name,
            {
                "reference": None if discovered is None else discovered[0]["reference"],
                "io": (io or {}).get(graph_name),
                "variants": {},
            },
        )
        model = None if discovered is None else discovered[1]
        entry["variants"][variant] = _variant_view(
            by_variant[(graph_name, variant)], model, entry["reference"] == variant, durations or {}
        )
    return graphs


def _variant_order(
    key: tuple[str, str], files: Mapping[tuple[str, str], Any]
) -> tuple[str, bool, str]:
    """Graphs by name; in each, the reference file first, then variants by tag."""
    discovered = files.get(key)
    is_reference = discovered is not None and discovered[0]["reference"] == key[1]
    return key[0], not is_reference, key[1]


def _variant_view(
    records: Sequence[Mapping[str, Any]],
    model: Mapping[str, Any] | None,
    is_reference: bool,
    durations: Mapping[str, float],
) -> dict[str, Any]:
    tiers = [r["tier"] for r in records if r.get("tier")]
    view: dict[str, Any] = {
        "role": "reference" if is_reference else "variant",
        "tier": model["tier"] if model else (tiers[0] if tiers else None),
        "file": model["relpath"] if model else None,
        "size_bytes": model["size_bytes"] if model else None,
        "total_bytes": model["total_bytes"] if model else None,
        "status": _status(records),
        "records": [r["nodeid"] for r in records],
        "input_sets": {},
        "outputs": {},
        "gates": [],
        "errors": [],
        "checks": {},
        "duration_s": round(sum(durations.get(r["nodeid"], 0.0) for r in records), 6),
    }
    outputs: dict[str, list[Mapping[str, Any]]] = {}
    checks: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record["kind"] == "parity":
            input_set = record.get("input_set") or {}
            name = input_set.get("name", "default")
            view["input_sets"][name] = dict(input_set)
            if record.get("error"):
                view["errors"].append(record["error"])
            parity = record.get("parity") or {}
            for stats in parity.get("outputs", []):
                outputs.setdefault(stats["output"], []).append(stats)
            view["gates"].extend({"input_set": name, **gate} for gate in parity.get("gates", []))
        elif record["kind"] == "check":
            checks.setdefault(record["check"], []).append(record)
    view["outputs"] = {name: worst_stats(stats) for name, stats in sorted(outputs.items())}
    view["checks"] = {name: check_view(name, runs) for name, runs in sorted(checks.items())}
    return view


def check_view(check: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One check of a variant. Run once, its numbers; run several times (once per clip…),
    how many runs failed, with each run's numbers under ``items`` by its label."""
    numbers = [check_numbers(check, record.get("details") or {}) for record in records]
    view: dict[str, Any] = {
        "passed": all(record["passed"] for record in records),
        "enforced": any(record.get("enforced", True) for record in records),
        "nodeids": [record["nodeid"] for record in records],
    }
    if len(records) == 1:
        view["numbers"] = numbers[0]
        return view
    view["numbers"] = {
        "runs": len(records),
        "failed": sum(1 for record in records if not record["passed"]),
    }
    view["items"] = {
        _label(record): {"passed": record["passed"], "numbers": found}
        for record, found in zip(records, numbers, strict=True)
    }
    return view


def _label(record: Mapping[str, Any]) -> str:
    """What tells one run of a check from another: its clip or input set, else its node id."""
    details = record.get("details") or {}
    for key in ITEM_LABELS:
        if isinstance(details.get(key), str):
            return str(details[key])
    return str(record["nodeid"])


def worst_stats(per_input_set: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One output's statistics over its input sets: the largest error, the lowest agreement,
    the total mismatch count; None where no input set measured it."""

    def values(key: str) -> list[float]:
        return [s[key] for s in per_input_set if is_finite_number(s.get(key))]

    worst: dict[str, Any] = {}
    for key in OUTPUT_STATS:
        found = values(key)
        if not found:
            worst[key] = None
        elif key in WORST_IS_MAX:
            worst[key] = max(found)
        elif key in WORST_IS_MIN:
            worst[key] = min(found)
        else:
            worst[key] = sum(found)
    return worst


def _status(records: Iterable[Mapping[str, Any]]) -> str:
    statuses = ["not run"]
    for record in records:
        if record.get("error"):
            statuses.append("error")
        elif record["passed"] or not record.get("enforced", True):
            statuses.append("passed")
        else:
            statuses.append("failed")
    return min(statuses, key=STATUS_ORDER.index)


# --------------------------------------------------------------------------------------------
# The parity metadata block
# --------------------------------------------------------------------------------------------


def build_metadata(document: Mapping[str, Any]) -> dict[str, Any]:
    """The compact block for a model repository, from a results document.

    Graph IO, per variant: tier, file, size, status and per-output worst numbers with their
    limits, each check's numbers (coverage, health, size, timings, multi-clip parity); the
    toolchain and the session settings. Numbers keep 4 significant digits (cosine-like rates
    4 digits of their distance from 1) so re-runs diff only where something changed.
    A document without ``graphs`` (written before it existed) is grouped from its records.
    """
    graphs = document.get("graphs")
    if graphs is None:
        graphs = group_by_graph(document.get("records", []), document.get("export"))
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
            block["size_ratio"] = round_number("size_ratio", size / reference_bytes)
    if view.get("input_sets"):
        block["input_sets"] = sorted(view["input_sets"])
    outputs = {
        name: {key: round_number(key, value) for key, value in stats.items() if value is not None}
        for name, stats in view.get("outputs", {}).items()
    }
    if outputs:
        block["outputs"] = outputs
    limits = _limits(view.get("gates", []))
    if limits:
        block["limits"] = limits
    if view.get("checks"):
        block["checks"] = _checks(view)
    return block


def _limits(gates: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each output's gate limits (the same on every input set; the strictest if not)."""
    limits: dict[str, dict[str, float]] = {}
    for gate in gates:
        if gate["metric"] == "finite":
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
    checks = {}
    for name, check in sorted(view["checks"].items()):
        entry: dict[str, Any] = {"passed": check["passed"]}
        if not check.get("enforced", True):
            entry["enforced"] = False
        entry.update(
            (key, round_number(key, value)) for key, value in sorted(check["numbers"].items())
        )
        checks[name] = entry
    return checks


def round_number(metric: str, value: Any) -> Any:
    """4 significant digits; for cosine-like rates, 4 significant digits of ``1 - value``."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    if metric in WORST_IS_MIN and 0.0 < value < 1.0:
        distance = 1.0 - value
        return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(distance)))
    if value == 0.0:
        return 0.0
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def is_finite_number(value: object) -> bool:
    """An int or float that is finite (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------------
# Stable text
# --------------------------------------------------------------------------------------------


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
