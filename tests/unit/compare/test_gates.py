"""Unit tests for gates: each limit passes at its value and fails just past it, with a message."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from pytest_onnxparity.compare.gates import (
    NONFINITE_GATE,
    REFERENCE_NONFINITE_GATE,
    GateOutcome,
    evaluate,
    failure_message,
    histogram_text,
    pressure,
    round_up,
)
from pytest_onnxparity.compare.metrics import OutputStats, WorstElement, compare_outputs
from pytest_onnxparity.config.tolerances import LIMIT_KEYS, Tolerance, tier_default

FIX_HINT = "re-quantize with per-channel scales or relax the limit in parity.toml"

# Which OutputStats field each gate reads, a measured value, and which way its limit bounds it.
GATED = {
    "max_abs": ("max_abs", 0.002, "upper"),
    "max_abs_rel": ("max_abs_rel", 0.0008, "upper"),
    "mean_abs": ("mean_abs", 0.0004, "upper"),
    "p99_abs": ("p99_abs", 0.0015, "upper"),
    "rel_l2": ("rel_l2", 0.03, "upper"),
    "min_cosine": ("cosine", 0.995, "lower"),
    "min_argmax_agreement": ("argmax_agreement", 0.875, "lower"),
    "min_topk_overlap": ("topk_overlap", 0.9, "lower"),
}


def make_stats(**fields: object) -> OutputStats:
    """A plausible measurement of output 'logits' with ``fields`` replaced."""
    stats = OutputStats(
        output="logits",
        shape=(2, 4),
        reference_dtype="float32",
        variant_dtype="float16",
        max_abs=0.002,
        max_abs_rel=0.0008,
        mean_abs=0.0004,
        p99_abs=0.0015,
        rel_l2=0.03,
        cosine=0.995,
        argmax_axis=1,
        argmax_agreement=0.875,
        argmax_mismatches=1,
        nonfinite_in_variant=0,
        nonfinite_in_reference=0,
        worst=WorstElement(index=(1, 3), reference=2.5, variant=2.502),
        histogram=(0, 0, 0, 0, 2, 3, 3, 0, 0, 0),
    )
    return replace(stats, **fields)  # type: ignore[arg-type]


def test_every_gated_metric_is_in_the_table() -> None:
    assert set(GATED) == set(LIMIT_KEYS)


@pytest.mark.parametrize("metric", sorted(GATED))
def test_each_metric_passes_exactly_at_its_limit(metric: str) -> None:
    field, value, _ = GATED[metric]
    stats = make_stats(**{field: value})

    (outcome,) = evaluate(stats, Tolerance(**{metric: value}))  # type: ignore[arg-type]

    assert outcome == GateOutcome("logits", metric, value, value, passed=True)


@pytest.mark.parametrize("metric", sorted(GATED))
def test_each_metric_fails_just_past_its_limit(metric: str) -> None:
    field, limit, bound = GATED[metric]
    past = float(np.nextafter(limit, math.inf if bound == "upper" else -math.inf))
    stats = make_stats(**{field: past})

    (outcome,) = evaluate(stats, Tolerance(**{metric: limit}))  # type: ignore[arg-type]

    assert outcome == GateOutcome("logits", metric, past, limit, passed=False)


@pytest.mark.parametrize(
    ("metric", "measured", "limit", "violation", "passing"),
    [
        ("max_abs", 0.00123, 0.001, "max_abs=0.00123 violates <= 0.001", "max_abs = 0.0013"),
        ("mean_abs", 4.2e-5, 1e-5, "mean_abs=4.2e-05 violates <= 1e-05", "mean_abs = 4.2e-05"),
        ("p99_abs", 0.0151, 0.01, "p99_abs=0.0151 violates <= 0.01", "p99_abs = 0.016"),
        ("rel_l2", 0.123, 0.1, "rel_l2=0.123 violates <= 0.1", "rel_l2 = 0.13"),
        (
            "min_cosine",
            0.9812344,
            0.99,
            "min_cosine=0.981234 violates >= 0.99",
            "min_cosine = 0.981234",
        ),
        (
            "min_argmax_agreement",
            0.75,
            0.9,
            "min_argmax_agreement=0.75 violates >= 0.9",
            "min_argmax_agreement = 0.75",
        ),
    ],
)
def test_a_failed_gate_message_names_metric_value_limit_and_the_smallest_passing_limit(
    metric: str, measured: float, limit: float, violation: str, passing: str
) -> None:
    field = GATED[metric][0]
    stats = make_stats(**{field: measured})
    outcomes = evaluate(stats, Tolerance(**{metric: limit}))  # type: ignore[arg-type]

    message = failure_message("encoder int8 vs fp32", [stats], outcomes, FIX_HINT)

    pytest.LineMatcher(message.splitlines()).fnmatch_lines(
        [
            "encoder int8 vs fp32: 1 gate(s) failed",
            f"  output 'logits': {violation} (smallest passing limit: {passing})",
            "  worst element of 'logits' at [[]1, 3]: reference=2.5 variant=2.502 (|diff|=*)",
            "  |error| histogram of 'logits': <1e-04: 2  <1e-03: 3  <1e-02: 3",
            f"  next step: {FIX_HINT}",
        ],
        consecutive=True,
    )


def test_the_smallest_passing_limit_in_the_message_would_pass() -> None:
    stats = make_stats(max_abs=0.00120000000005)
    outcomes = evaluate(stats, Tolerance(max_abs=0.001))

    message = failure_message("t", [stats], outcomes, FIX_HINT)

    assert "(smallest passing limit: max_abs = 0.0013)" in message
    assert evaluate(stats, Tolerance(max_abs=0.0013))[0].passed


def test_passing_gates_are_left_out_of_the_failure_message() -> None:
    stats = make_stats(rel_l2=0.5)
    outcomes = evaluate(stats, Tolerance(rel_l2=0.1, min_cosine=0.9))

    message = failure_message("t", [stats], outcomes, FIX_HINT)

    assert message.startswith("t: 1 gate(s) failed\n")
    assert "rel_l2=0.5 violates" in message
    assert "min_cosine" not in message


def test_nan_output_fails_every_tolerance() -> None:
    reference = np.array([[0.1, 0.9, 0.3], [0.7, 0.2, 0.4]], dtype=np.float32)
    variant = reference.copy()
    variant[1, 2] = np.nan
    stats = compare_outputs("logits", reference, variant, topk=2)
    # Every limit is loose enough that the finite elements alone would pass it.
    tolerance = Tolerance(
        max_abs=1.0,
        max_abs_rel=1.0,
        mean_abs=1.0,
        p99_abs=1.0,
        rel_l2=1.0,
        min_cosine=0.0,
        min_argmax_agreement=0.0,
        min_topk_overlap=0.0,
    )

    outcomes = evaluate(stats, tolerance)

    assert [o.metric for o in outcomes] == [NONFINITE_GATE, *LIMIT_KEYS]
    assert not any(o.passed for o in outcomes)
    assert outcomes[0] == GateOutcome("logits", NONFINITE_GATE, 1.0, 0, passed=False)
    assert all(o.value is not None and math.isnan(o.value) for o in outcomes[1:])
    message = failure_message("encoder fp16 vs fp32", [stats], outcomes, FIX_HINT)
    pytest.LineMatcher(message.splitlines()).fnmatch_lines(
        [
            "encoder fp16 vs fp32: 9 gate(s) failed",
            "  output 'logits': 1 NaN/Inf value(s) where the reference is finite "
            "(no tolerance can pass this)",
            "  output 'logits': max_abs (limit <= 1) is not measurable with NaN/Inf in the "
            "output and counts as failed",
            "  output 'logits': min_cosine (limit >= 0) is not measurable with NaN/Inf *",
            "  first NaN/Inf of 'logits' at [[]1, 2]: reference=0.4 variant=nan",
        ]
    )


@pytest.mark.parametrize("tier", ["fp32", "fp16", "bf16", "int8", "int4"])
def test_inf_output_fails_every_tier_default(tier: str) -> None:
    stats = make_stats(nonfinite_in_variant=3)

    outcomes = evaluate(stats, tier_default(tier))

    assert outcomes[0].metric == NONFINITE_GATE
    assert not any(o.passed for o in outcomes)
    assert len(outcomes) == 1 + len(tier_default(tier).limits())


def test_nan_in_the_reference_fails_with_a_gate_of_its_own_that_names_the_inputs() -> None:
    reference = np.array([np.nan, 1.0, 2.0])

    stats = compare_outputs("hidden", reference, np.zeros(3))
    outcomes = evaluate(stats, Tolerance(max_abs=10.0, min_cosine=0.0))

    assert [(o.metric, o.passed) for o in outcomes] == [
        (REFERENCE_NONFINITE_GATE, False),
        ("max_abs", False),
        ("min_cosine", False),
    ]
    message = failure_message("model[int8] vs fp32 on inputs padded", [stats], outcomes, "fix")
    pytest.LineMatcher(message.splitlines()).fnmatch_lines(
        [
            "model[[]int8[]] vs fp32 on inputs padded: 3 gate(s) failed",
            "  output 'hidden': the reference itself gives 1 NaN/Inf value(s) on these inputs, "
            "so nothing can be compared (unrealistic inputs, e.g. a random attention mask, or "
            "a broken reference)",
            "  first NaN/Inf of 'hidden' at [[]0[]]: reference=nan variant=0",
        ]
    )


def test_nan_only_in_the_reference_fails_its_own_gate_and_every_other() -> None:
    stats = make_stats(nonfinite_in_reference=2)

    outcomes = evaluate(stats, Tolerance(max_abs=0.01))

    assert [(o.metric, o.passed) for o in outcomes] == [
        ("reference_finite", False),
        ("max_abs", False),
    ]
    message = failure_message("t", [stats], outcomes, FIX_HINT)
    assert "the reference itself gives 2 NaN/Inf value(s) on these inputs" in message


def test_an_all_nan_reference_against_an_all_zero_variant_is_never_a_pass() -> None:
    stats = compare_outputs("y", np.full((2, 3), np.nan), np.zeros((2, 3)))

    outcomes = evaluate(stats, tier_default("fp32"))

    assert not any(o.passed for o in outcomes)
    assert math.isnan(stats.max_abs) and math.isnan(stats.cosine) and math.isnan(stats.rel_l2)


def test_argmax_gate_on_an_output_without_a_class_axis_fails_as_not_measurable() -> None:
    stats = compare_outputs("mask", np.ones((4, 1)), np.ones((4, 1)))
    outcomes = evaluate(stats, Tolerance(min_argmax_agreement=0.5))

    message = failure_message("t", [stats], outcomes, FIX_HINT)

    assert outcomes == (GateOutcome("mask", "min_argmax_agreement", None, 0.5, passed=False),)
    pytest.LineMatcher(message.splitlines()).fnmatch_lines(
        [
            "  output 'mask': min_argmax_agreement is not measurable on shape [4, 1] "
            "(argmax axis None); set argmax_axis or drop this gate"
        ]
    )


def test_ungated_metrics_produce_no_outcome() -> None:
    assert evaluate(make_stats(max_abs=1e9), Tolerance()) == ()


def test_failure_message_covers_each_failing_output_once() -> None:
    logits = make_stats(rel_l2=0.5)
    hidden = make_stats(output="hidden", rel_l2=0.4, cosine=0.5, worst=None, histogram=(0,) * 10)
    outcomes = (
        *evaluate(logits, Tolerance(rel_l2=0.1)),
        *evaluate(hidden, Tolerance(rel_l2=0.1, min_cosine=0.9)),
    )

    message = failure_message("t", [logits, hidden], outcomes, FIX_HINT)

    assert message.count("|error| histogram of 'logits'") == 1
    assert message.count("|error| histogram of 'hidden': (empty)") == 1
    assert "worst element of 'hidden'" not in message
    assert message.startswith("t: 3 gate(s) failed")
    assert message.endswith(f"next step: {FIX_HINT}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.001234, 0.0013),
        (0.0012, 0.0012),
        (0.00120000000005, 0.0013),
        (3e-5, 3e-5),
        (1e-5, 1e-5),
        (0.30000000000000004, 0.31),
        (0.0995, 0.1),
        (123.0, 130.0),
        (1.0, 1.0),
        (0.0, 0.0),
        (-0.5, -0.5),
        (math.inf, math.inf),
    ],
)
def test_round_up_gives_two_significant_digits_rounded_up(value: float, expected: float) -> None:
    assert round_up(value) == expected


def test_round_up_never_returns_less_than_its_value() -> None:
    values = [k * 10.0**e for k in range(1, 1000) for e in range(-12, 4)]
    values += list(10.0 ** np.random.default_rng(0).uniform(-12, 4, size=2000))

    below = [(v, round_up(v)) for v in values if round_up(v) < v]

    assert below == []


def test_round_up_keeps_the_digits_asked_for() -> None:
    assert round_up(0.0012345, digits=3) == 0.00124
    assert round_up(0.0012345, digits=1) == 0.002


def test_round_up_of_nan_is_nan() -> None:
    assert math.isnan(round_up(math.nan))


@pytest.mark.parametrize(
    ("metric", "value", "limit", "passed", "expected"),
    [
        ("max_abs", 0.5, 1.0, True, 0.5),
        ("rel_l2", 0.2, 0.1, False, 1e6 + 2.0),
        ("min_cosine", 0.99, 0.98, True, 0.5),
        ("min_argmax_agreement", 0.5, 0.75, False, 1e6 + 2.0),
        ("max_abs", 0.0, 0.0, True, 0.0),
        ("max_abs", 1e-9, 0.0, False, math.inf),
        ("min_cosine", 1.0, 1.0, True, 0.0),
        ("min_argmax_agreement", None, 0.5, False, math.inf),
    ],
)
def test_pressure_is_used_over_allowed_error(
    metric: str, value: float | None, limit: float, passed: bool, expected: float
) -> None:
    assert pressure(metric, value, limit, passed) == pytest.approx(expected)


def test_pressure_ranks_a_narrow_failure_above_a_passing_gate_at_its_limit() -> None:
    narrow_failure = pressure("rel_l2", 0.1000001, 0.1, passed=False)
    at_limit = pressure("max_abs", 0.1, 0.1, passed=True)

    assert narrow_failure > at_limit


def test_histogram_text_lists_nonempty_decade_bins() -> None:
    stats = make_stats(histogram=(3, 0, 0, 0, 0, 12, 0, 0, 0, 2))

    assert histogram_text(stats) == "<1e-08: 3  <1e-03: 12  >=1: 2"


def test_histogram_text_of_no_counted_elements_says_empty() -> None:
    assert histogram_text(make_stats(histogram=(0,) * 10)) == "(empty)"


def test_gate_outcome_to_json_is_plain() -> None:
    outcome = GateOutcome("logits", "rel_l2", 0.25, 0.1, passed=False)

    assert outcome.to_json() == {
        "output": "logits",
        "metric": "rel_l2",
        "value": 0.25,
        "limit": 0.1,
        "passed": False,
    }
