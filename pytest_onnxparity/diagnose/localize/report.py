"""A localization in words: the lines a failing test's message gets, and the one line per test
in the terminal summary. The damaged node comes first, with the stored weight behind it; the
first tensor past the drift tolerance comes after, since on a quantized variant it is usually
ordinary noise near the inputs."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_onnxparity.diagnose.localize.records import Localization, TensorDrift

MESSAGE_NAME_LIMIT = 8
SOURCES_PER_TENSOR = 2


def message_lines(localization: Localization, n: int) -> list[str]:
    """Lines for a failure message: the damaged nodes and the weights behind them, the top
    ``n`` by damage, the first drifted tensor, what did not match, and the plot."""
    lines = [
        f"localization of {localization.variant!r} against the reference of "
        f"{localization.graph!r} (onnxruntime graph optimisation level "
        f"{localization.optimization_level!r} for the instrumented runs; "
        f"{len(localization.matched)} tensors matched; {localization.instrumented_runs} "
        f"batch(es) within {localization.memory_mb} MB{_prior(localization)}):"
    ]
    damaged = localization.damaged()
    first = localization.first_damaged
    if first is None:
        lines.append(f"  no node is damaged{_most(localization)}")
    else:
        lines.append(
            f"  damaged: {len(damaged)} node(s) (damaged from {localization.damage_ratio:g}× "
            "the op type's noise, or reading a weight that fails weight-space parity)"
        )
        lines.append(f"  first damaged: {first.describe()}")
        lines.extend(_source_lines(localization, first, "    "))
    top = localization.top(n)
    if top:
        lines.append(f"  top {len(top)} by damage (error added on its own over the noise):")
        for rank, drift in enumerate(top, 1):
            marker = " [damaged]" if drift.damaged else ""
            lines.append(f"    {rank}. {drift.describe()}{marker}")
            if drift.damaged and drift is not first:
                lines.extend(_source_lines(localization, drift, "       "))
    past = localization.first_past_tolerance
    if past is None:
        lines.append(f"  no matched tensor drifts past rel_l2 {localization.tolerance_rel_l2:g}")
    else:
        lines.append(
            f"  drift first past rel_l2 {localization.tolerance_rel_l2:g}: {past.tensor!r} from "
            f"{past.node_label()} (depth {past.depth}), rel_l2 {past.rel_l2:.3g}"
        )
    for label, names in (
        ("failing weights that no matched tensor reads", localization.unplaced_weight_failures),
        ("shapes differ", localization.differing_shapes),
        ("not matched in the reference", localization.unmatched_reference),
        ("not matched in the variant", localization.unmatched_variant),
    ):
        if names:
            lines.append(f"  {label}: {_name_list(names)}")
    if localization.replay_error:
        lines.append(
            f"  the error each node adds on its own was not measured: {localization.replay_error}"
        )
    if localization.plot is not None:
        lines.append(f"  drift and damage by depth: {localization.plot}")
    return lines


def summary_line(localization: Localization) -> str:
    """One line for the terminal summary: the damaged nodes, else the most damage seen, and
    where drift first passes the tolerance."""
    damaged = localization.damaged()
    if damaged:
        head = damaged[0]
        weights = (
            f"; weight {head.weight_failures[0]!r} fails weight-space parity"
            if head.weight_failures
            else ""
        )
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        verdict = f"damaged: {head.node_label()} ({_times(head)}{weights}){more}"
    else:
        verdict = f"no damaged node{_most(localization)}"
    past = localization.first_past_tolerance
    where = "none" if past is None else f"{past.tensor!r}"
    return f"{verdict}; drift first past rel_l2 {localization.tolerance_rel_l2:g}: {where}"


def _prior(localization: Localization) -> str:
    if not localization.weights_checked:
        return ""
    return "; weight-space parity as the prior"


def _most(localization: Localization) -> str:
    top = localization.top(1)
    if not top:
        return ""
    return (
        f" (most: {_times(top[0])} at {top[0].node_label()}; damaged from "
        f"{localization.damage_ratio:g}×)"
    )


def _times(drift: TensorDrift) -> str:
    if drift.expected_rel_l2 > 0.0:
        return f"{drift.damage:.3g}× noise"
    return f"adds rel_l2 {drift.local_rel_l2:.3g}"


def _source_lines(localization: Localization, drift: TensorDrift, indent: str) -> list[str]:
    sources = localization.sources.get(drift.tensor, ())
    return [f"{indent}weight: {source.describe()}" for source in sources[:SOURCES_PER_TENSOR]]


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:MESSAGE_NAME_LIMIT])
    hidden = len(names) - MESSAGE_NAME_LIMIT
    return shown + (f" and {hidden} more" if hidden > 0 else "")
