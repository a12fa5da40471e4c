"""Unit tests for metrics.compare_outputs: every statistic on arrays small enough to check."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from pytest_onnxparity.compare import metrics
from pytest_onnxparity.compare.metrics import (
    HISTOGRAM_EDGES,
    OutputStats,
    ShapeMismatchError,
    WorstElement,
    compare_outputs,
)

# Errors [0, 0, 1, 0, 2, 0]; row argmax is [2, 2] for the reference and [2, 1] for the variant.
REFERENCE = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
VARIANT = np.array([[1.0, 2.0, 4.0], [4.0, 7.0, 6.0]])


def _direct(reference: np.ndarray, variant: np.ndarray) -> dict[str, object]:
    """The same statistics in one float64 pass, without chunks, over the finite pairs."""
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    var = np.asarray(variant, dtype=np.float64).reshape(-1)
    both = np.isfinite(ref) & np.isfinite(var)
    ref, var = ref[both], var[both]
    err = np.abs(var - ref)
    return {
        "max_abs": float(err.max()),
        "max_abs_rel": float(err.max() / np.abs(ref).max()),
        "mean_abs": float(err.mean()),
        "p99_abs": float(np.percentile(err, 99, method="inverted_cdf")),
        "rel_l2": float(np.linalg.norm(err) / np.linalg.norm(ref)),
        "cosine": float(ref @ var / (np.linalg.norm(ref) * np.linalg.norm(var))),
        "histogram": tuple(int(c) for c in np.histogram(err, bins=np.array(HISTOGRAM_EDGES))[0]),
        "worst_flat": int(np.flatnonzero(both)[np.argmax(err)]),
    }


def _assert_plain_json(value: object, path: str = "$") -> None:
    """Only the types execnet and json serialize as-is: no numpy scalars anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{path}: key {key!r} is {type(key).__name__}"
            _assert_plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_plain_json(item, f"{path}[{index}]")
    else:
        assert value is None or type(value) in {str, int, float, bool}, (
            f"{path}: {value!r} is {type(value).__name__}"
        )


def test_hand_computed_statistics_of_a_small_output() -> None:
    stats = compare_outputs("logits", REFERENCE, VARIANT)

    assert stats.output == "logits"
    assert stats.shape == (2, 3)
    assert stats.size == 6
    assert stats.max_abs == 2.0
    assert stats.mean_abs == 0.5
    assert stats.p99_abs == 2.0
    assert stats.rel_l2 == pytest.approx(math.sqrt(5) / math.sqrt(91), rel=1e-12)
    assert stats.cosine == pytest.approx(104 / math.sqrt(91 * 122), rel=1e-12)
    assert stats.nonfinite_in_variant == 0
    assert stats.nonfinite_in_reference == 0


def test_identical_outputs_measure_zero_error_and_cosine_one() -> None:
    stats = compare_outputs("y", REFERENCE, REFERENCE.copy())

    assert (stats.max_abs, stats.mean_abs, stats.p99_abs, stats.rel_l2) == (0.0, 0.0, 0.0, 0.0)
    assert stats.cosine == pytest.approx(1.0, abs=1e-15)
    assert stats.argmax_agreement == 1.0
    assert stats.argmax_mismatches == 0


def test_p99_is_the_nearest_rank_value_not_an_interpolation() -> None:
    errors = np.arange(200, dtype=np.float64) * 0.5  # ceil(0.99 * 200) = 198th smallest = 98.5

    stats = compare_outputs("y", np.zeros(200), errors)

    assert stats.p99_abs == 98.5
    assert stats.max_abs == 99.5


def test_p99_of_few_elements_is_the_largest_error() -> None:
    stats = compare_outputs("y", np.zeros(3), np.array([0.25, 0.5, 0.125]))

    assert stats.p99_abs == 0.5


def test_both_outputs_all_zero_have_cosine_one_and_no_relative_error() -> None:
    stats = compare_outputs("y", np.zeros(4), np.zeros(4))

    assert stats.cosine == 1.0
    assert stats.rel_l2 == 0.0


def test_zero_reference_against_nonzero_variant_has_cosine_zero_and_huge_relative_error() -> None:
    stats = compare_outputs("y", np.zeros(3), np.array([0.0, 1e-3, 0.0]))

    assert stats.cosine == 0.0
    assert stats.rel_l2 > 1e6
    assert math.isfinite(stats.rel_l2)


def test_zero_reference_against_a_large_error_stays_finite_without_an_overflow_warning() -> None:
    # filterwarnings = error would turn numpy's overflow RuntimeWarning into a crash here.
    stats = compare_outputs("y", np.zeros(3), np.array([0.0, 50.0, 0.0]))

    assert stats.rel_l2 == np.finfo(np.float64).max
    json.dumps(stats.to_json(), allow_nan=False)


def test_zero_variant_against_nonzero_reference_has_cosine_zero_and_relative_error_one() -> None:
    stats = compare_outputs("y", np.array([3.0, 4.0]), np.zeros(2))

    assert stats.cosine == 0.0
    assert stats.rel_l2 == 1.0


def test_opposite_outputs_have_cosine_minus_one() -> None:
    stats = compare_outputs("y", np.array([1.0, -2.0, 3.0]), np.array([-1.0, 2.0, -3.0]))

    assert stats.cosine == -1.0
    assert stats.rel_l2 == 2.0


def test_argmax_agreement_counts_rows_whose_class_changed() -> None:
    stats = compare_outputs("logits", REFERENCE, VARIANT)

    assert stats.argmax_axis == 1
    assert stats.argmax_agreement == 0.5
    assert stats.argmax_mismatches == 1


def test_argmax_over_axis_zero_compares_columns() -> None:
    # Column argmax: reference [1, 1, 1]; variant [1, 0, 1].
    variant = np.array([[1.0, 9.0, 3.0], [4.0, 5.0, 6.0]])

    stats = compare_outputs("logits", REFERENCE, variant, argmax_axis=0)

    assert stats.argmax_axis == 0
    assert stats.argmax_mismatches == 1
    assert stats.argmax_agreement == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("reference", "argmax_axis"),
    [
        pytest.param(np.array([[1, 2], [3, 4]], dtype=np.int64), -1, id="int-output"),
        pytest.param(np.array([[1.0], [2.0], [3.0]]), -1, id="size-1-axis"),
        pytest.param(np.array(2.5), -1, id="scalar"),
        pytest.param(REFERENCE, None, id="axis-none"),
        pytest.param(REFERENCE, 2, id="axis-out-of-range"),
    ],
)
def test_argmax_agreement_is_none_where_there_is_no_class_axis(
    reference: np.ndarray, argmax_axis: int | None
) -> None:
    stats = compare_outputs("y", reference, reference.copy(), argmax_axis=argmax_axis)

    assert (stats.argmax_axis, stats.argmax_agreement, stats.argmax_mismatches) == (
        None,
        None,
        None,
    )


def test_worst_element_is_where_the_absolute_error_is_largest_with_both_values() -> None:
    stats = compare_outputs("logits", REFERENCE, VARIANT)

    assert stats.worst == WorstElement(index=(1, 1), reference=5.0, variant=7.0)


def test_worst_element_on_a_tie_is_the_first_in_c_order() -> None:
    stats = compare_outputs("y", np.zeros((2, 2)), np.array([[0.0, 1.0], [1.0, 0.0]]))

    assert stats.worst is not None
    assert stats.worst.index == (0, 1)


def test_histogram_counts_each_error_in_its_decade_bin() -> None:
    stats = compare_outputs("logits", REFERENCE, VARIANT)

    # Four exact matches in [0, 1e-8), errors 1 and 2 in [1, inf).
    assert stats.histogram == (4, 0, 0, 0, 0, 0, 0, 0, 0, 2)
    assert len(stats.histogram) == len(HISTOGRAM_EDGES) - 1


def test_an_error_on_a_decade_edge_is_counted_in_the_bin_above() -> None:
    edges = np.array([1e-8, 1e-5, 1e-3, 1.0])

    stats = compare_outputs("y", np.zeros(4), edges)

    assert stats.histogram == (0, 1, 0, 0, 1, 0, 1, 0, 0, 1)


def test_nan_and_inf_in_the_variant_are_counted_and_make_every_error_statistic_nan() -> None:
    reference = np.array([1.0, 2.0, 3.0, 4.0])
    variant = np.array([1.5, np.nan, 3.0, np.inf])

    stats = compare_outputs("y", reference, variant)

    assert stats.nonfinite_in_variant == 2
    assert stats.nonfinite_in_reference == 0
    assert not stats.finite
    for value in (stats.max_abs, stats.max_abs_rel, stats.mean_abs, stats.p99_abs):
        assert math.isnan(value)
    assert math.isnan(stats.rel_l2) and math.isnan(stats.cosine)
    assert sum(stats.histogram) == 2
    assert stats.worst is not None and stats.worst.index == (1,)
    assert stats.worst.reference == 2.0 and math.isnan(stats.worst.variant)


def test_nan_in_the_reference_is_counted_and_makes_every_error_statistic_nan() -> None:
    reference = np.array([np.nan, 2.0, -np.inf, 4.0])
    variant = np.array([np.nan, 2.0, 7.0, 4.25])

    stats = compare_outputs("y", reference, variant)

    assert stats.nonfinite_in_reference == 2
    assert stats.nonfinite_in_variant == 0
    assert math.isnan(stats.max_abs) and math.isnan(stats.cosine)
    assert stats.worst is not None and stats.worst.index == (0,)
    assert sum(stats.histogram) == 2


def test_the_worst_element_of_a_nonfinite_output_is_its_first_nan_in_the_variant() -> None:
    stats = compare_outputs("y", np.array([np.nan, 1.0, 2.0]), np.array([1.0, 1.0, np.nan]))

    assert stats.worst is not None
    assert stats.worst.index == (2,)
    assert stats.worst.to_json() == {"index": [2], "reference": 2.0, "variant": "nan"}


def test_an_all_nan_reference_against_an_all_zero_variant_is_not_reported_as_perfect() -> None:
    stats = compare_outputs("y", np.array([np.nan, np.nan]), np.array([0.0, 0.0]))
    record = stats.to_json()

    assert stats.worst is not None and stats.worst.index == (0,)
    assert (record["max_abs"], record["rel_l2"], record["cosine"]) == (None, None, None)
    assert record["nonfinite_in_reference"] == 2
    assert sum(stats.histogram) == 0


def test_max_abs_rel_is_the_largest_error_over_the_largest_reference_magnitude() -> None:
    reference = np.array([[10.0, -40.0], [5.0, 0.0]])
    variant = reference + np.array([[0.01, 0.0], [-0.02, 0.0]])

    stats = compare_outputs("logits", reference, variant)

    assert stats.max_abs == pytest.approx(0.02)
    assert stats.max_abs_rel == pytest.approx(0.02 / 40.0)


def test_max_abs_rel_does_not_change_when_the_output_is_scaled() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=100)
    variant = reference + rng.normal(scale=1e-3, size=100)

    small = compare_outputs("y", reference, variant)
    large = compare_outputs("y", reference * 1000.0, variant * 1000.0)

    assert large.max_abs == pytest.approx(small.max_abs * 1000.0)
    assert large.max_abs_rel == pytest.approx(small.max_abs_rel, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_p99_equals_numpy_percentile_inverted_cdf_of_the_float64_errors_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 5000))
    reference = rng.normal(size=size).astype(np.float32)
    # Errors that tie after rounding to float32 but not in float64, on a float16 variant.
    variant = (reference + rng.normal(scale=1e-3, size=size)).astype(np.float16)

    stats = compare_outputs("y", reference, variant)
    errors = np.abs(variant.astype(np.float64) - reference.astype(np.float64))

    assert stats.p99_abs == float(np.percentile(errors, 99, method="inverted_cdf"))


def test_p99_of_errors_that_round_to_one_float32_picks_the_float64_rank() -> None:
    # 200 errors that all round to the same float32 value, each a different float64.
    base = np.float64(np.float32(0.1))
    errors = base + np.arange(200) * 1e-12
    assert len(set(errors.astype(np.float32).tolist())) == 1

    stats = compare_outputs("y", np.zeros(200), errors)

    assert stats.p99_abs == float(np.percentile(errors, 99, method="inverted_cdf"))
    assert stats.p99_abs == errors[197]


def test_only_the_kept_positions_are_compared_and_the_record_says_so() -> None:
    reference = np.zeros((2, 4, 3))
    variant = np.zeros((2, 4, 3))
    variant[1, 3] = 100.0  # padding: left out
    variant[0, 1, 2] = 0.5
    keep = np.array([[True, True, True, True], [True, True, True, False]])

    stats = compare_outputs("hidden", reference, variant, keep=keep, mask="attention_mask")

    assert stats.max_abs == 0.5
    assert stats.worst is not None and stats.worst.index == (0, 1, 2)
    assert stats.shape == (2, 4, 3)
    assert (stats.mask, stats.compared_elements) == ("attention_mask", 21)
    assert stats.to_json()["mask"] == "attention_mask"


def test_a_worst_element_after_padding_maps_back_to_its_own_index() -> None:
    reference = np.zeros((3, 4, 2))
    variant = np.zeros((3, 4, 2))
    variant[2, 1, 1] = 1.0
    keep = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)

    stats = compare_outputs("hidden", reference, variant, keep=keep, mask="m")

    assert stats.worst is not None and stats.worst.index == (2, 1, 1)
    assert stats.argmax_axis == 2


def test_argmax_over_a_kept_axis_is_not_measured() -> None:
    keep = np.array([[True, False]])

    stats = compare_outputs("y", np.ones((1, 2)), np.ones((1, 2)), argmax_axis=1, keep=keep)

    assert stats.argmax_agreement is None and stats.argmax_axis is None


def test_keep_must_lead_the_output_shape() -> None:
    with pytest.raises(ValueError, match=r"keep \[3\] must lead \[2, 3\]"):
        compare_outputs("y", np.ones((2, 3)), np.ones((2, 3)), keep=np.ones(3, bool))


def test_shape_mismatch_names_the_output_both_shapes_and_the_fix() -> None:
    expected = (
        "output 'logits': variant shape [3, 2] != reference shape [2, 3]; "
        "re-export the variant with the reference's output shapes"
    )

    with pytest.raises(ShapeMismatchError, match=re.escape(expected)):
        compare_outputs("logits", REFERENCE, REFERENCE.reshape(3, 2))


def test_same_size_but_different_rank_is_a_shape_mismatch() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\[6\] != reference shape \[2, 3\]"):
        compare_outputs("logits", REFERENCE, REFERENCE.reshape(-1))


def test_float16_variant_is_compared_in_float64_against_a_float32_reference() -> None:
    reference = np.linspace(-3.0, 3.0, 37, dtype=np.float32)
    variant = reference.astype(np.float16)

    stats = compare_outputs("y", reference, variant)
    expected = _direct(reference, variant)

    assert (stats.reference_dtype, stats.variant_dtype) == ("float32", "float16")
    assert stats.max_abs == expected["max_abs"]
    assert 0 < stats.max_abs < 2e-3
    assert stats.mean_abs == pytest.approx(expected["mean_abs"], rel=1e-12)
    assert stats.rel_l2 == pytest.approx(expected["rel_l2"], rel=1e-12)
    assert stats.histogram == expected["histogram"]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_chunked_statistics_equal_a_direct_float64_computation(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(5, 13)).astype(np.float32)
    variant = (reference + rng.normal(scale=1e-3, size=reference.shape)).astype(np.float32)
    variant[4, 12] += 0.5  # the worst element is in the last chunk for every chunk size
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", chunk)

    stats = compare_outputs("y", reference, variant)
    expected = _direct(reference, variant)

    assert stats.max_abs == expected["max_abs"]
    assert stats.mean_abs == pytest.approx(expected["mean_abs"], rel=1e-12)
    assert stats.p99_abs == expected["p99_abs"]
    assert stats.rel_l2 == pytest.approx(expected["rel_l2"], rel=1e-12)
    assert stats.cosine == pytest.approx(expected["cosine"], rel=1e-12)
    assert stats.histogram == expected["histogram"]
    assert stats.worst is not None
    assert stats.worst.index == (4, 12)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_nonfinite_values_are_counted_in_every_chunk(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(5, 13)).astype(np.float32)
    variant = reference.copy()
    variant[0, 3] = np.nan
    variant[4, 1] = -np.inf
    reference[2, 5] = np.inf
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", chunk)

    stats = compare_outputs("y", reference, variant)

    assert (stats.nonfinite_in_variant, stats.nonfinite_in_reference) == (2, 1)
    assert sum(stats.histogram) == reference.size - 3
    assert stats.worst is not None and stats.worst.index == (0, 3)


@pytest.mark.parametrize(
    ("reference", "variant"),
    [
        ([0.0, 1.0, 2.0], [np.inf, 1.0, 2.0]),  # 0·inf in the dot products
        ([1.0, -1.0, 2.0], [np.inf, -np.inf, 2.0]),  # inf - inf
        ([3e38, 1.0, 2.0], [np.inf, 1.0, 2.0]),
    ],
)
def test_non_finite_variant_values_are_counted_without_a_warning(
    reference: list[float], variant: list[float]
) -> None:
    # filterwarnings = error: a RuntimeWarning from numpy would fail this test.
    stats = compare_outputs(
        "y", np.array(reference, np.float32), np.array(variant, np.float32), argmax_axis=None
    )

    assert stats.nonfinite_in_variant == sum(not np.isfinite(v) for v in variant)
    assert math.isnan(stats.max_abs) and stats.worst is not None
    assert not np.isfinite(variant[stats.worst.index[0]])


def test_finite_values_whose_squares_overflow_are_not_counted_as_non_finite() -> None:
    reference = np.array([1e200, 1.0, -3.0])
    variant = np.array([1e200, 1.5, -3.0])

    # The sums of squares overflow: cosine and rel_l2 are not measurable, the counts still are.
    with np.errstate(all="ignore"):
        stats = compare_outputs("y", reference, variant)

    assert (stats.nonfinite_in_variant, stats.nonfinite_in_reference) == (0, 0)
    assert stats.max_abs == 0.5
    assert stats.worst is not None and stats.worst.index == (1,)
    assert sum(stats.histogram) == 3


def test_worst_element_tie_across_chunks_keeps_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", 3)
    variant = np.zeros(10)
    variant[[4, 8]] = 1.0

    stats = compare_outputs("y", np.zeros(10), variant)

    assert stats.worst is not None
    assert stats.worst.index == (4,)


def test_value_maps_each_gate_to_the_statistic_it_reads() -> None:
    stats = compare_outputs("logits", REFERENCE, VARIANT)

    assert {
        metric: stats.value(metric)
        for metric in (
            "max_abs",
            "max_abs_rel",
            "mean_abs",
            "p99_abs",
            "rel_l2",
            "min_cosine",
            "min_argmax_agreement",
        )
    } == {
        "max_abs": stats.max_abs,
        "max_abs_rel": stats.max_abs_rel,
        "mean_abs": stats.mean_abs,
        "p99_abs": stats.p99_abs,
        "rel_l2": stats.rel_l2,
        "min_cosine": stats.cosine,
        "min_argmax_agreement": stats.argmax_agreement,
    }


@pytest.mark.parametrize(
    ("reference", "variant"),
    [
        pytest.param(REFERENCE.astype(np.float32), VARIANT.astype(np.float16), id="float16"),
        pytest.param(
            np.array([np.nan, 1.0, 2.0], dtype=np.float32),
            np.array([1.0, np.inf, np.nan], dtype=np.float32),
            id="nothing-finite-to-compare",
        ),
        pytest.param(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), id="nan-in-both"),
        pytest.param(np.array([1, 2], dtype=np.int64), np.array([1, 3], dtype=np.int32), id="int"),
        pytest.param(np.array(1.5), np.array(2.0), id="scalar"),
    ],
)
def test_to_json_is_plain_json_without_numpy_types(
    reference: np.ndarray, variant: np.ndarray
) -> None:
    record = compare_outputs("y", reference, variant).to_json()

    _assert_plain_json(record)
    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_to_json_names_every_field_and_the_histogram_edges() -> None:
    record = compare_outputs("logits", REFERENCE, VARIANT).to_json()

    assert record["shape"] == [2, 3]
    assert record["worst"] == {"index": [1, 1], "reference": 5.0, "variant": 7.0}
    assert record["histogram"] == {
        "edges": [0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, "inf"],
        "counts": [4, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    }
    assert set(record) == set(OutputStats.__dataclass_fields__)


@pytest.mark.parametrize(
    ("reference", "variant", "passes_fp32"),
    [
        ([1e300, -2e300, 3e300], [1e300, -2e300, 3e300], True),
        ([1e300, -2e300, 3e300], [3e300, -2e300, 3e300], False),
        ([1e308, 1.0, 2.0], [-1e308, 1.0, 2.0], False),
        ([3e38, 1.0, 2.0], [3e38, 1.0, 2.0], True),
    ],
    ids=["identical-1e300", "different-1e300", "past-float64-span", "float32-max"],
)
def test_values_past_1e38_are_measured_without_overflow(
    reference: list[float], variant: list[float], passes_fp32: bool
) -> None:
    import warnings

    from pytest_onnxparity.compare.gates import evaluate
    from pytest_onnxparity.config.tolerances import tier_default

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = compare_outputs("y", np.array(reference), np.array(variant))
    json.dumps(stats.to_json(), allow_nan=False)
    assert all(gate.passed for gate in evaluate(stats, tier_default("fp32"))) == passes_fp32
