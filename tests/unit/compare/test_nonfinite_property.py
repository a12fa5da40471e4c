"""Property: a NaN or Inf on either side is never a pass and never reported as perfect, for every
gate and for ``assert_parity`` on two dicts of arrays (hypothesis draws the arrays)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from pytest_onnxparity.compare.gates import evaluate
from pytest_onnxparity.compare.metrics import compare_outputs
from pytest_onnxparity.config.tolerances import LIMIT_KEYS, LOWER_BOUND_KEYS, TIERS, Tolerance
from pytest_onnxparity.run.settings import Settings
from pytest_onnxparity.run.user_arrays import check_arrays


# Limits no finite comparison of these arrays can exceed: only a NaN/Inf can fail them.
def _loosest(key: str) -> float:
    if key not in LOWER_BOUND_KEYS:
        return 1e300
    return -1.0 if key == "min_cosine" else 0.0


LOOSEST = Tolerance(**{key: _loosest(key) for key in LIMIT_KEYS})  # type: ignore[arg-type]
ERROR_STATISTICS = ("max_abs", "max_abs_rel", "mean_abs", "p99_abs", "rel_l2", "cosine")
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def broken_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, str]:
    """A reference and a variant close to it, with NaN/Inf placed in the reference, the
    variant or both."""
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float16]))
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=16)
    reference = draw(arrays(dtype, shape, elements=finite))
    variant = draw(arrays(dtype, shape, elements=finite))
    side = draw(st.sampled_from(["reference", "variant", "both"]))
    flat = reference.size
    places = draw(st.lists(st.integers(0, flat - 1), min_size=1, max_size=flat, unique=True))
    for place in places:
        index = np.unravel_index(place, shape)
        if side in ("reference", "both"):
            reference[index] = draw(NONFINITE)
        if side in ("variant", "both"):
            variant[index] = draw(NONFINITE)
    return reference, variant, side


@settings(max_examples=200, deadline=None)
@given(broken_pairs(), st.sampled_from(LIMIT_KEYS))
def test_no_gate_passes_with_a_nonfinite_value_on_either_side(
    pair: tuple[np.ndarray, np.ndarray, str], metric: str
) -> None:
    reference, variant, _ = pair
    stats = compare_outputs("y", reference, variant, topk=2)

    outcomes = evaluate(stats, Tolerance(**{metric: getattr(LOOSEST, metric)}))  # type: ignore[arg-type]

    assert outcomes and not any(outcome.passed for outcome in outcomes)
    assert stats.nonfinite_in_reference + stats.nonfinite_in_variant > 0


@settings(max_examples=200, deadline=None)
@given(broken_pairs())
def test_a_nonfinite_comparison_reports_counts_and_null_never_zero_and_one(
    pair: tuple[np.ndarray, np.ndarray, str],
) -> None:
    reference, variant, side = pair
    record = compare_outputs("y", reference, variant).to_json()

    assert all(record[key] is None for key in ERROR_STATISTICS)
    if side == "variant":
        assert record["nonfinite_in_variant"] > 0
    else:
        assert record["nonfinite_in_reference"] > 0
    worst = record["worst"]
    assert isinstance(worst, dict)
    assert "nan" in (worst["reference"], worst["variant"]) or any(
        str(value).endswith("inf") for value in (worst["reference"], worst["variant"])
    )
    json.dumps(record, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(broken_pairs(), st.sampled_from(TIERS))
def test_assert_parity_on_dicts_fails_every_tier_with_nan_on_either_side(
    pair: tuple[np.ndarray, np.ndarray, str], tier: str
) -> None:
    reference, variant, _ = pair
    run = Settings(onnx_dir=Path("."))

    zeros = np.zeros_like(reference)

    record = check_arrays(
        run,
        "test_x",
        {"logits": reference, "extra": zeros},
        {"logits": variant, "extra": zeros},
        tier=tier,
    )

    assert record.error is None and not record.passed
    stats = {s["output"]: s for s in record.to_json()["parity"]["outputs"]}
    assert stats["logits"]["rel_l2"] is None and stats["logits"]["cosine"] is None
    json.dumps(record.to_json(), allow_nan=False)  # plain JSON for the results file, no NaN


def test_a_finite_pair_under_the_loosest_limits_passes_so_the_properties_can_fail() -> None:
    reference = np.array([1.0, 2.0, 3.0])

    stats = compare_outputs("y", reference, reference + 0.5, topk=2)

    assert all(outcome.passed for outcome in evaluate(stats, LOOSEST))
