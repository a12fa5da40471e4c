"""Top-k overlap: the metric, its tolerance keys, and its gate through a parity comparison."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from pytest_onnxparity.compare.gates import evaluate, failure_message
from pytest_onnxparity.compare.metrics import compare_outputs, topk_overlap
from pytest_onnxparity.compare.parity import compare
from pytest_onnxparity.config.tolerances import (
    LIMIT_KEYS,
    LOWER_BOUND_KEYS,
    TOLERANCE_KEYS,
    Tolerance,
    ToleranceError,
    resolve,
    validate_layer,
)
from pytest_onnxparity.plugin.option_types import parse_scoped_tolerance

LOGITS = np.array(
    [
        [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    ],
    dtype=np.float32,
)


def test_identical_outputs_overlap_fully() -> None:
    assert topk_overlap(LOGITS, LOGITS.copy(), k=5) == 1.0


def test_overlap_is_the_mean_share_of_reference_classes_kept_per_row() -> None:
    variant = LOGITS.copy()
    variant[0, 4] = -10.0  # row 0 loses class 4 from its top 5 (class 5 replaces it)
    variant[1, [7, 6]] = -10.0  # row 1 loses classes 7 and 6

    assert topk_overlap(LOGITS, variant, k=5) == pytest.approx((4 / 5 + 3 / 5) / 2)


def test_reordering_within_the_top_k_keeps_the_overlap() -> None:
    variant = LOGITS.copy()
    variant[0, :5] = variant[0, :5][::-1]

    assert topk_overlap(LOGITS, variant, k=5) == 1.0


def test_k_larger_than_the_class_axis_is_cut_to_it() -> None:
    assert topk_overlap(LOGITS, -LOGITS, k=50) == 1.0


def test_the_class_axis_can_be_any_axis() -> None:
    variant = LOGITS.copy()
    variant[0, 0] = -10.0

    by_columns = topk_overlap(LOGITS.T, variant.T, k=1, axis=0)

    assert by_columns == pytest.approx(0.5)


def test_a_nan_in_the_variant_never_counts_as_a_top_class() -> None:
    variant = LOGITS.copy()
    variant[0, 7] = np.nan  # NaN where the reference has its lowest class

    assert topk_overlap(LOGITS, variant, k=1) == 1.0
    variant[0, 0] = np.nan
    assert topk_overlap(LOGITS, variant, k=1) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("reference", "axis"),
    [
        (np.arange(4, dtype=np.int64).reshape(2, 2), -1),
        (np.zeros((3, 1), np.float32), -1),
        (np.zeros((3, 4), np.float32), 5),
        (np.zeros((3, 4), np.float32), None),
    ],
    ids=["integer-output", "one-class", "axis-out-of-range", "no-axis"],
)
def test_overlap_is_none_without_a_float_class_axis_of_two_or_more(
    reference: np.ndarray, axis: int | None
) -> None:
    assert topk_overlap(reference, reference, k=5, axis=axis) is None


def test_compare_outputs_measures_overlap_only_when_asked() -> None:
    assert compare_outputs("logits", LOGITS, LOGITS).topk_overlap is None

    stats = compare_outputs("logits", LOGITS, LOGITS, topk=3)

    assert (stats.topk, stats.topk_overlap) == (3, 1.0)
    assert stats.to_json()["topk_overlap"] == 1.0
    assert stats.value("min_topk_overlap") == 1.0


def test_topk_keys_are_a_lower_bound_limit_and_a_structure_key() -> None:
    assert "min_topk_overlap" in LIMIT_KEYS and "min_topk_overlap" in LOWER_BOUND_KEYS
    assert "topk" in TOLERANCE_KEYS and "topk" not in LIMIT_KEYS
    tolerance = resolve("int8", [{"min_topk_overlap": 0.8, "topk": 3}])

    assert (tolerance.min_topk_overlap, tolerance.topk) == (0.8, 3)
    assert tolerance.limits()["min_topk_overlap"] == 0.8


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        ({"topk": 0}, "topk must be an integer >= 1, got 0"),
        ({"topk": True}, "topk must be an integer >= 1, got True"),
        ({"topk": 2.5}, "topk must be an integer >= 1, got 2.5"),
        ({"min_topk_overlap": 1.5}, "min_topk_overlap is a fraction in [0, 1], got 1.5"),
    ],
)
def test_invalid_topk_values_are_errors_naming_the_source(
    layer: dict[str, object], problem: str
) -> None:
    with pytest.raises(ToleranceError, match=rf"^suite\.toml: {_escaped(problem)}$"):
        validate_layer(layer, "suite.toml")


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_command_line_topk_is_read_as_an_integer() -> None:
    scoped = parse_scoped_tolerance("classifier/int8/logits:topk=3")

    assert (scoped.scope, scoped.key, scoped.value) == ("classifier/int8/logits", "topk", 3)
    with pytest.raises(argparse.ArgumentTypeError, match="topk must be an integer >= 1"):
        parse_scoped_tolerance("topk=three")


def test_a_variant_that_loses_top_classes_fails_the_gate_with_value_and_limit() -> None:
    variant = LOGITS.copy()
    variant[:, :] = variant[:, ::-1]  # every ranking reversed

    result = compare(
        {"logits": LOGITS},
        {"logits": variant},
        lambda _: Tolerance(min_topk_overlap=0.9, topk=3),
    )

    (gate,) = result.gates
    assert (gate.metric, gate.passed) == ("min_topk_overlap", False)
    assert gate.value == pytest.approx(0.0)
    message = failure_message("classifier[int8]", result.stats, result.gates, "relax it")
    assert "output 'logits': min_topk_overlap=0 violates >= 0.9" in message


def test_asking_topk_overlap_of_an_output_without_class_axis_fails_and_says_why() -> None:
    stats = compare_outputs(
        "mask", np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32), topk=5
    )

    (outcome,) = evaluate(stats, Tolerance(min_topk_overlap=0.5))

    assert (outcome.value, outcome.passed) == (None, False)
    assert "min_topk_overlap is not measurable on shape [4, 1]" in failure_message(
        "t", [stats], [outcome], "hint"
    )
