"""Gates: compare measured statistics with a tolerance and explain a failure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_onnxparity.compare.metrics import HISTOGRAM_EDGES, OutputStats, json_float
from pytest_onnxparity.config.tolerances import LOWER_BOUND_KEYS, Tolerance

# Gates no tolerance can pass: a NaN/Inf in the variant where the reference is finite, and one in
# the reference itself (its inputs, or the reference, are broken: nothing can be judged).
NONFINITE_GATE = "finite"
REFERENCE_NONFINITE_GATE = "reference_finite"
NONFINITE_GATES = frozenset({NONFINITE_GATE, REFERENCE_NONFINITE_GATE})


@dataclass(frozen=True)
class GateOutcome:
    """One metric of one output checked against its limit."""

    output: str
    metric: str
    value: float | None
    limit: float
    passed: bool

    def to_json(self) -> dict[str, object]:
        return {
            "output": self.output,
            "metric": self.metric,
            "value": json_float(self.value),
            "limit": self.limit,
            "passed": self.passed,
        }


def evaluate(stats: OutputStats, tolerance: Tolerance) -> tuple[GateOutcome, ...]:
    """Check every gated metric of ``stats``. A NaN or Inf on either side fails its own gate
    (``reference_finite`` / ``finite``) and every other one: its statistics are NaN."""
    outcomes = []
    if stats.nonfinite_in_reference:
        count = float(stats.nonfinite_in_reference)
        outcomes.append(GateOutcome(stats.output, REFERENCE_NONFINITE_GATE, count, 0, False))
    if stats.nonfinite_in_variant:
        count = float(stats.nonfinite_in_variant)
        outcomes.append(GateOutcome(stats.output, NONFINITE_GATE, count, 0, False))
    for metric, limit in tolerance.limits().items():
        value = stats.value(metric)
        if value is None:
            # argmax agreement asked of an output with no class axis: a config error, not a pass.
            outcomes.append(GateOutcome(stats.output, metric, None, limit, False))
            continue
        # NaN compares false both ways: a statistic that could not be measured never passes.
        within = value >= limit if metric in LOWER_BOUND_KEYS else value <= limit
        outcomes.append(GateOutcome(stats.output, metric, value, limit, within and stats.finite))
    return tuple(outcomes)


def failure_message(
    title: str, stats: Sequence[OutputStats], outcomes: Sequence[GateOutcome], fix_hint: str
) -> str:
    """A multi-line explanation: each failed gate, the worst element, a histogram, the next step."""
    by_output = {s.output: s for s in stats}
    failed = [o for o in outcomes if not o.passed]
    lines = [f"{title}: {len(failed)} gate(s) failed"]
    for outcome in failed:
        output_stats = by_output[outcome.output]
        lines.append(f"  output {outcome.output!r}: {_describe(outcome, output_stats)}")
    for output in dict.fromkeys(o.output for o in failed):
        output_stats = by_output[output]
        worst = output_stats.worst
        if worst is not None and output_stats.finite:
            lines.append(
                f"  worst element of {output!r} at {list(worst.index)}: "
                f"reference={worst.reference:.6g} variant={worst.variant:.6g} "
                f"(|diff|={output_stats.max_abs:.3g})"
            )
        elif worst is not None:
            lines.append(
                f"  first NaN/Inf of {output!r} at {list(worst.index)}: "
                f"reference={worst.reference:.6g} variant={worst.variant:.6g}"
            )
        lines.append(f"  |error| histogram of {output!r}: {histogram_text(output_stats)}")
    lines.append(f"  next step: {fix_hint}")
    return "\n".join(lines)


def _describe(outcome: GateOutcome, stats: OutputStats) -> str:
    if outcome.metric == NONFINITE_GATE:
        return (
            f"{stats.nonfinite_in_variant} NaN/Inf value(s) where the reference is finite "
            "(no tolerance can pass this)"
        )
    if outcome.metric == REFERENCE_NONFINITE_GATE:
        return (
            f"the reference itself gives {stats.nonfinite_in_reference} NaN/Inf value(s) on "
            "these inputs, so nothing can be compared (unrealistic inputs, e.g. a random "
            "attention mask, or a broken reference)"
        )
    relation = ">=" if outcome.metric in LOWER_BOUND_KEYS else "<="
    if not stats.finite:
        return (
            f"{outcome.metric} (limit {relation} {shown_limit(outcome.limit)}) is not measurable "
            "with NaN/Inf in the output and counts as failed"
        )
    if outcome.value is None:
        return (
            f"{outcome.metric} is not measurable on shape {list(stats.shape)} "
            f"(argmax axis {stats.argmax_axis}); set argmax_axis or drop this gate"
        )
    value, limit = shown_value(outcome.value, outcome.limit, 6), shown_limit(outcome.limit)
    return (
        f"{outcome.metric}={value} violates {relation} {limit} "
        f"(smallest passing limit: {outcome.metric} = {_passing_limit(outcome):.7g})"
    )


def shown_value(value: float, limit: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, or more until it compares with ``limit``
    as the exact value does and shows as many decimals as the limit: 0.99989 against 0.9999
    prints as 0.99989 and 0.99999874 against 0.99999 as 0.999999, not 1."""
    wanted = _decimals(shown_limit(limit))
    for places in range(digits, 18):
        text = f"{value:.{places}g}"
        shown = float(text)
        same_side = (shown < limit) == (value < limit) and (shown > limit) == (value > limit)
        if same_side and (_decimals(text) >= wanted or shown == value):
            return text
    return repr(value)


def _decimals(text: str) -> int:
    """Digits after the point of a plain decimal (0 for an exponent form)."""
    if "e" in text or "." not in text:
        return 0
    return len(text.split(".", 1)[1])


def shown_limit(limit: float) -> str:
    """A limit as it was given: the shortest text that reads back as the same number."""
    short = f"{limit:g}"
    return short if float(short) == limit else repr(float(limit))


def _passing_limit(outcome: GateOutcome) -> float:
    """A round limit that would just have let ``outcome`` pass."""
    assert outcome.value is not None
    if outcome.metric in LOWER_BOUND_KEYS:
        return math.floor(outcome.value * 1e6) / 1e6
    return round_up(outcome.value)


def round_up(value: float, digits: int = 2) -> float:
    """``value`` rounded up to ``digits`` significant digits (0.001234 -> 0.0013)."""
    if value <= 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(value)) - digits + 1
    # The slack absorbs division noise (0.0012 / 1e-4 = 12.000000000000002); the decimal string
    # gives the nearest float to k·10^e, and the check keeps the result from falling below value.
    steps = math.ceil(value / 10.0**exponent - 1e-9)
    rounded = float(f"{steps}e{exponent}")
    return rounded if rounded >= value else float(f"{steps + 1}e{exponent}")


def pressure(metric: str, value: float | None, limit: float, passed: bool) -> float:
    """How hard a gate presses on its limit: used/allowed error, failures ranked above passes."""
    if value is None or math.isnan(value) or metric in NONFINITE_GATES:
        return float("inf")
    if metric in LOWER_BOUND_KEYS:
        used, allowed = 1.0 - value, 1.0 - limit
    else:
        used, allowed = value, limit
    ratio = used / allowed if allowed > 0 else (0.0 if used <= 0 else float("inf"))
    return ratio + (0.0 if passed else 1e6)


def histogram_text(stats: OutputStats) -> str:
    """Decade bins with counts, empty bins skipped: '<1e-06: 12  <1e-05: 3'."""
    parts = []
    for upper, count in zip(HISTOGRAM_EDGES[1:], stats.histogram, strict=True):
        if count:
            label = f"<{upper:.0e}" if upper != float("inf") else ">=1"
            parts.append(f"{label}: {count}")
    return "  ".join(parts) or "(empty)"
