"""Per graph × variant views of a run (the ``graphs`` section of the results file): full precision,
with the node ids of the records behind each number, computed from plain-JSON records so a
stored results file can be viewed later.

Output statistics are kept apart by the kind of inputs they were measured on: ``real`` (recorded
arrays, a conftest hook, an upstream graph run on those) or ``synthesized`` (seeded arrays from
the signature). The headline numbers are the real inputs' when there are any."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_onnxparity.results.numbers import (
    NONFINITE_COUNTS,
    OUTPUT_STATS,
    WORST_IS_MAX,
    WORST_IS_MIN,
    check_about,
    check_numbers,
    is_finite_number,
)

ITEM_LABELS = ("clip_id", "input_set", "name")


PER_ITEM_CHECKS = frozenset({"sequence-clip"})
"""Checks run once per item (clip): their view lists every run under ``items``, even one."""


REAL, SYNTHESIZED = "real", "synthesized"
INPUT_KINDS = (REAL, SYNTHESIZED)
"""Kinds of input sets, the headline first: real ones (files, a hook, a recording, an upstream
graph run on them) and synthesized ones are never mixed into one worst case."""


STATUS_ORDER = ("error", "failed", "passed", "not run")


def group_by_graph(
    records: Sequence[Mapping[str, Any]],
    export: Mapping[str, Any] | None = None,
    io: Mapping[str, Any] | None = None,
    durations: Mapping[str, float] | None = None,
    formats: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{graph: {reference, io, variants: {tag: {...}}}}`` from the records and discovery JSON.

    Every discovered file gets an entry (``status: "not run"`` when no test measured it); a
    record of a graph or variant discovery does not know (a sequence variant set, a user's own
    arrays) gets one too. ``durations`` maps a record's node id to its test's seconds;
    ``formats`` a file's relative path to its format (IR version, opsets, producer, domains).
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
        view = _variant_view(
            by_variant[(graph_name, variant)], model, entry["reference"] == variant, durations or {}
        )
        if model is not None and (formats or {}).get(model["relpath"]) is not None:
            view["format"] = dict((formats or {})[model["relpath"]])
        entry["variants"][variant] = view
    return graphs


def input_kind(input_set: Mapping[str, Any]) -> str:
    """``synthesized`` for arrays made from the signature (and what an upstream graph computed
    from them), else ``real``: the record's ``synthesized`` flag, or for files written before
    it, its ``source`` and ``seed`` (an upstream graph's outputs keep its inputs' seed)."""
    synthesized = input_set.get("synthesized")
    if synthesized is None:
        synthesized = (
            input_set.get("source", "synthesized") == "synthesized"
            or input_set.get("seed") is not None
        )
    return SYNTHESIZED if synthesized else REAL


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
    by_kind: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    sets_by_kind: dict[str, list[str]] = {}
    checks: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record["kind"] == "parity":
            input_set = record.get("input_set") or {}
            name = input_set.get("name", "default")
            kind = input_kind(input_set)
            view["input_sets"][name] = dict(input_set)
            sets_by_kind.setdefault(kind, []).append(name)
            if record.get("error"):
                view["errors"].append(record["error"])
            parity = record.get("parity") or {}
            outputs = by_kind.setdefault(kind, {})
            for stats in parity.get("outputs", []):
                outputs.setdefault(stats["output"], []).append({"input_set": name, **stats})
            view["gates"].extend({"input_set": name, **gate} for gate in parity.get("gates", []))
        elif record["kind"] == "check":
            checks.setdefault(record["check"], []).append(record)
    kinds = [kind for kind in INPUT_KINDS if kind in sets_by_kind]
    view["outputs_by_inputs"] = {
        kind: {
            "input_sets": sorted(set(sets_by_kind[kind])),
            "outputs": {
                name: worst_stats(stats) for name, stats in sorted(by_kind.get(kind, {}).items())
            },
        }
        for kind in kinds
    }
    view["headline_inputs"] = kinds[0] if kinds else None
    view["outputs"] = view["outputs_by_inputs"][kinds[0]]["outputs"] if kinds else {}
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
    about = check_about(check, records[0].get("details") or {}) if records else {}
    if about:
        view["about"] = about
    if len(records) == 1 and check not in PER_ITEM_CHECKS:
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
    the total mismatch and NaN/Inf counts; None where no input set measured it, and for every
    error statistic where an input set had a NaN or Inf (its errors are not measurable, so no
    worst case is known).

    ``argmax_positions`` counts the positions argmax was compared at (the N of "n/N
    mismatches"); ``worst_input_set`` names the set with the largest ``max_abs`` when the
    statistics carry their input set's name."""

    def values(key: str) -> list[float]:
        return [s[key] for s in per_input_set if is_finite_number(s.get(key))]

    nonfinite = any(s.get(count) for s in per_input_set for count in NONFINITE_COUNTS)
    worst: dict[str, Any] = {}
    for key in OUTPUT_STATS:
        found = values(key)
        if not found or (nonfinite and key not in NONFINITE_COUNTS):
            worst[key] = None
        elif key in WORST_IS_MAX:
            worst[key] = max(found)
        elif key in WORST_IS_MIN:
            worst[key] = min(found)
        else:
            worst[key] = sum(found)
    positions = [_argmax_positions(stats) for stats in per_input_set]
    worst["argmax_positions"] = (
        sum(p for p in positions if p is not None)
        if any(p is not None for p in positions)
        else None
    )
    named = [s for s in per_input_set if is_finite_number(s.get("max_abs")) and "input_set" in s]
    if named:
        worst["worst_input_set"] = max(named, key=lambda s: s["max_abs"])["input_set"]
    return worst


def _argmax_positions(stats: Mapping[str, Any]) -> int | None:
    """How many argmax comparisons an output's statistics stand for: its size over the class
    axis's length."""
    shape, axis = stats.get("shape"), stats.get("argmax_axis")
    if stats.get("argmax_mismatches") is None or not isinstance(axis, int) or not shape:
        return None
    try:
        classes = shape[axis]
    except IndexError:
        return None
    size = 1
    for dim in shape:
        size *= int(dim)
    return size // classes if classes else None


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
