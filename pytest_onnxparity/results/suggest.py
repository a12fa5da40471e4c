"""``--parity-suggest``: limits from measured values, which never bless damage.

Each variant's gated numbers, per input set (named, real and synthesized apart) and output,
times a margin, in the form of the destination (``pyproject.toml``: ``[tool.onnxparity...]``
tables; any other file: ``parity.toml`` tables). A variant gets no limits, and is listed with the
reason, when it is not something a tolerance should cover:

* a ``weights`` check failed (weight-space parity: a changed weight, NaN in a weight);
* a test errored, or an output held NaN/Inf;
* it is damaged for any tier: an output's cosine at or below ``DAMAGED_COSINE`` or its rel_l2 at
  or above its tier's ``TIER_CEILINGS`` (beyond what healthy conversions of that kind give);
* it is an outlier among the run's variants of its tier: its worst rel_l2 is more than
  ``OUTLIER_FACTOR`` times the tier's median (with at least ``OUTLIER_PEERS`` variants).

The file is written atomically and only over a file this option wrote before (its first line),
unless ``--parity-suggest-force``. Pure: records in, text out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.compare.gates import round_up
from pytest_onnxparity.files.outputs import NamedOutput, foreign_file_message, written_by
from pytest_onnxparity.results.views import input_kind

MARKER = "# Suggested by pytest-onnxparity --parity-suggest"
WEIGHT_CHECKS = frozenset({"weights"})
DAMAGED_COSINE = 0.5
# rel_l2 no healthy conversion of the tier reaches (research corpus, graph-aware inputs: fp16
# 0.0014, int8 0.38, int4 0.33), with room; a variant past it is damaged, not imprecise.
TIER_CEILINGS = {"fp32": 1e-3, "fp16": 0.05, "bf16": 0.1, "int8": 0.6, "int4": 0.8}
OUTLIER_FACTOR = 4.0
OUTLIER_PEERS = 3
UPPER = ("max_abs", "max_abs_rel", "mean_abs", "p99_abs", "rel_l2")
LOWER = {
    "min_cosine": "cosine",
    "min_argmax_agreement": "argmax_agreement",
    "min_topk_overlap": "topk_overlap",
}


class SuggestError(ValueError):
    """The destination cannot be written; the message names it and the fix."""


@dataclass(frozen=True)
class Excluded:
    """A variant that gets no limits, and why."""

    graph: str
    variant: str
    reason: str

    def line(self) -> str:
        return f"no limits for {self.graph}/{self.variant}: {self.reason}"


@dataclass(frozen=True)
class SetLimits:
    """Suggested limits of one output of a variant on one input set."""

    graph: str
    variant: str
    input_set: str
    origin: str
    output: str
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """metric -> (limit, measured)."""


@dataclass(frozen=True)
class Suggestion:
    """What ``--parity-suggest`` found: limits per input set, and the variants left out."""

    margin: float
    tables: tuple[SetLimits, ...]
    excluded: tuple[Excluded, ...]

    def render(self, destination: Path) -> str:
        """The file's text, with ``[tool.onnxparity.…]`` tables for a ``pyproject.toml``."""
        prefix = "tool.onnxparity." if destination.name == "pyproject.toml" else ""
        lines = [
            f"{MARKER}: measured values x {self.margin:g}, per input set.",
            "# Review before committing: a limit should encode what you accept, not what you got.",
        ]
        lines += [f"# {entry.line()}" for entry in self.excluded]
        for table in self.tables:
            lines.append("")
            lines.append(f"# input set {table.input_set!r} ({table.origin})")
            lines.append(
                f'[{prefix}graphs."{table.graph}".variants."{table.variant}".input_sets.'
                f'"{table.input_set}".outputs."{table.output}"]'
            )
            for key, (limit, measured) in table.limits.items():
                if key in LOWER:
                    lines.append(f"{key} = {limit:.9f}  # measured {measured:.9f}")
                else:
                    lines.append(f"{key} = {limit:.3g}  # measured {measured:.3g}")
        return "\n".join(lines) + "\n"

    def lines(self) -> list[str]:
        """For the terminal summary: what got no limits, and why."""
        return [entry.line() for entry in self.excluded]


def suggest(records: Sequence[Mapping[str, Any]], margin: float) -> Suggestion:
    """Limits from the parity records of a run (plain JSON), excluding what must not be
    blessed."""
    parity: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    failed_weights: dict[tuple[str, str], str] = {}
    for record in records:
        key = (record["graph"], record["variant"])
        if record["kind"] == "parity":
            parity.setdefault(key, []).append(record)
        elif (
            record["kind"] == "check"
            and record.get("check") in WEIGHT_CHECKS
            and not record["passed"]
            and record.get("enforced", True)
        ):
            message = (record.get("message") or "failed").splitlines()[0]
            failed_weights[key] = f"fails weight-space parity ({message})"
    excluded: dict[tuple[str, str], str] = dict(failed_weights)
    for key, found in parity.items():
        if key not in excluded and (reason := _unfit(found)) is not None:
            excluded[key] = reason
    excluded.update(_outliers(parity, excluded))
    tables = [
        table
        for key, found in sorted(parity.items())
        if key not in excluded
        for record in sorted(found, key=lambda r: r["input_set"].get("name", ""))
        for table in _set_limits(record, margin)
    ]
    return Suggestion(
        margin=margin,
        tables=tuple(tables),
        excluded=tuple(Excluded(g, v, reason) for (g, v), reason in sorted(excluded.items())),
    )


def _unfit(records: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a variant's records cannot give limits: an error, NaN/Inf, or damage."""
    for record in records:
        name = record["input_set"].get("name", "?")
        if record.get("error"):
            return f"its test on {name!r} errored ({record['error'].splitlines()[0][:120]})"
        tier = record.get("tier", "")
        for stats in (record.get("parity") or {}).get("outputs", []):
            output = stats["output"]
            if stats.get("nonfinite_in_variant") or stats.get("nonfinite_in_reference"):
                return f"output {output!r} has NaN/Inf on {name!r}"
            cosine, rel_l2 = stats.get("cosine"), stats.get("rel_l2")
            if isinstance(cosine, float | int) and cosine <= DAMAGED_COSINE:
                return (
                    f"output {output!r} has cosine {cosine:.3g} on {name!r} (<= "
                    f"{DAMAGED_COSINE}): damaged, not a tolerance"
                )
            ceiling = TIER_CEILINGS.get(tier)
            if ceiling is not None and isinstance(rel_l2, float | int) and rel_l2 >= ceiling:
                return (
                    f"output {output!r} has rel_l2 {rel_l2:.3g} on {name!r}, past what a healthy "
                    f"{tier} variant gives (>= {ceiling:g}): damaged, not a tolerance"
                )
    return None


def _outliers(
    parity: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
    excluded: Mapping[tuple[str, str], str],
) -> dict[tuple[str, str], str]:
    """Variants whose worst rel_l2 is far past their tier's median in this run."""
    worst: dict[str, dict[tuple[str, str], float]] = {}
    for key, records in parity.items():
        if key in excluded:
            continue
        values = [
            stats["rel_l2"]
            for record in records
            for stats in (record.get("parity") or {}).get("outputs", [])
            if isinstance(stats.get("rel_l2"), float | int) and math.isfinite(stats["rel_l2"])
        ]
        if values:
            worst.setdefault(records[0].get("tier", ""), {})[key] = max(values)
    found: dict[tuple[str, str], str] = {}
    for tier, by_variant in worst.items():
        if len(by_variant) < OUTLIER_PEERS:
            continue
        median = statistics.median(by_variant.values())
        for key, value in by_variant.items():
            if median > 0 and value > OUTLIER_FACTOR * median:
                found[key] = (
                    f"rel_l2 {value:.3g} is an outlier among the {len(by_variant)} {tier} "
                    f"variants (median {median:.3g}, > {OUTLIER_FACTOR:g}x): check it before "
                    "giving it a limit"
                )
    return found


def _set_limits(record: Mapping[str, Any], margin: float) -> list[SetLimits]:
    """The gated metrics of each output on one input set, times the margin."""
    parity = record.get("parity") or {}
    gated: dict[str, set[str]] = {}
    for gate in parity.get("gates", []):
        if gate["metric"] in UPPER or gate["metric"] in LOWER:
            gated.setdefault(gate["output"], set()).add(gate["metric"])
    tables = []
    for stats in parity.get("outputs", []):
        limits: dict[str, tuple[float, float]] = {}
        for metric in [*UPPER, *LOWER]:
            if metric not in gated.get(stats["output"], ()):
                continue
            measured = stats.get(LOWER.get(metric, metric))
            if not isinstance(measured, float | int) or not math.isfinite(measured):
                continue
            limits[metric] = (_limit(metric, float(measured), margin), float(measured))
        if limits:
            input_set = record["input_set"]
            tables.append(
                SetLimits(
                    graph=record["graph"],
                    variant=record["variant"],
                    input_set=input_set.get("name", "default"),
                    origin=input_kind(input_set),
                    output=stats["output"],
                    limits=limits,
                )
            )
    return tables


def _limit(metric: str, measured: float, margin: float) -> float:
    if metric in LOWER:
        # Rounded down, so the limit never rounds up past the measured value.
        return math.floor(max(0.0, 1.0 - (1.0 - measured) * margin) * 1e9) / 1e9
    # The product's last-bit noise (0.2 x 1.5 = 0.30000000000000004) must not push the limit
    # up a whole step (0.31).
    return round_up(measured * margin * (1.0 - 1e-12))


def check_destination(
    path: Path,
    force: bool,
    flag: str = "--parity-suggest",
    force_flag: str = "--parity-suggest-force",
) -> None:
    """Refuse to write over a file this option did not write, unless ``force``; ``flag`` and
    ``force_flag`` are what the message names (the CLI's differ)."""
    if force or not path.exists():
        return
    output = NamedOutput(flag, path, marker=MARKER, force_flag=force_flag)
    if not written_by(path, MARKER):
        raise SuggestError(foreign_file_message(output))


def suggest_toml(records: Sequence[Mapping[str, Any]], margin: float) -> str:
    """Release 0.1's name: the ``parity.toml`` text of :func:`suggest`."""
    return suggest(records, margin).render(Path("parity.toml"))
