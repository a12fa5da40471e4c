"""Unit tests for the swapped-outputs diagnosis: two failed outputs whose variant values are each
other's reference values are named as a swap, and drift that merely fails is not."""

from __future__ import annotations

import numpy as np

from pytest_onnxparity.compare.parity import compare
from pytest_onnxparity.config.tolerances import Tolerance, tier_default

RNG = np.random.default_rng(0)
KEY = RNG.standard_normal((2, 4, 8, 16)).astype(np.float32)
VALUE = RNG.standard_normal((2, 4, 8, 16)).astype(np.float32)
LOGITS = RNG.standard_normal((2, 32)).astype(np.float32)
REFERENCE = {"logits": LOGITS, "present.0.key": KEY, "present.0.value": VALUE}


def int8(_: str) -> Tolerance:
    return tier_default("int8")


def test_a_variant_with_its_key_and_value_outputs_swapped_is_named_as_a_swap() -> None:
    noise = np.float32(0.01)
    variant = {
        "logits": LOGITS + noise,
        "present.0.key": VALUE + noise,
        "present.0.value": KEY + noise,
    }

    result = compare(REFERENCE, variant, int8)

    assert not result.passed
    assert result.swapped == (("present.0.key", "present.0.value"),)
    assert result.to_json()["swapped_outputs"] == [["present.0.key", "present.0.value"]]


def test_two_outputs_that_fail_on_their_own_are_not_a_swap() -> None:
    variant = {
        "logits": LOGITS,
        "present.0.key": -KEY,
        "present.0.value": RNG.standard_normal(VALUE.shape).astype(np.float32),
    }

    result = compare(REFERENCE, variant, int8)

    assert not result.passed
    assert result.swapped == ()


def test_a_passing_comparison_has_no_swap_even_where_outputs_are_alike() -> None:
    reference = {"a": KEY, "b": KEY.copy()}

    result = compare(reference, {"a": KEY, "b": KEY}, int8)

    assert result.passed and result.swapped == ()
