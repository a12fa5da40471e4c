"""Per-weight statistics, the tier limits and the ``[weights]`` table, and the property that a
faithful quantizer's output always passes its tier: dequantize(quantize(w)) stays within the
default limits for any weight hypothesis draws."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_onnxparity.compare.weight_space import (
    DEFAULT_LIMITS,
    parse_weights_settings,
    statistics,
)
from pytest_onnxparity.compare.weight_space.limits import storage_tier
from pytest_onnxparity.compare.weight_space.statistics import WeightStatistics, measure
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.onnxfile.packed import matmul_nbits_weight

RNG = np.random.default_rng(11)


@pytest.mark.parametrize(
    ("change", "diagnosis"),
    [
        (lambda w: np.zeros_like(w), "all zeros"),
        (lambda w: -w, "sign-flipped"),
        (lambda w: 3 * w, "rescaled x3"),
        (lambda w: w.T.copy(), "transposed"),
        (lambda w: w + 2 * np.sqrt(np.mean(w**2)), "shifted by +2 x its RMS on average"),
    ],
    ids=["zeroed", "sign-flipped", "rescaled", "transposed", "shifted"],
)
def test_the_diagnosis_names_what_happened_to_the_weight(
    change: Callable[[np.ndarray], np.ndarray], diagnosis: str
) -> None:
    weight = RNG.standard_normal((16, 16))
    stats = measure(weight, change(weight), None)
    assert stats.diagnosis().startswith(diagnosis)
    assert stats.rel_l2 > 0.5


def test_nan_in_the_variant_is_counted_and_never_averaged() -> None:
    weight = RNG.standard_normal((4, 4))
    variant = weight.copy()
    variant[1, 2] = np.nan
    stats = measure(weight, variant, "float16")
    assert stats.non_finite == 1 and stats.worst_index == (1, 2)
    assert math.isnan(stats.worst_value)
    assert stats.rel_l2 == pytest.approx(0.0)  # over the finite elements


def test_values_float16_cannot_hold_are_left_out_not_failed() -> None:
    reference = np.array([-np.inf, -70000.0, 1e-9, 0.5, 2.0])
    variant = np.array([-np.inf, -65504.0, 0.0, 0.5, 2.0])
    stats = measure(reference, variant, "float16")
    assert (stats.inherited, stats.out_of_range, stats.compared) == (1, 2, 2)
    assert stats.non_finite == 0 and stats.rel_l2 == 0.0


def test_a_narrow_range_gain_is_judged_on_its_magnitude_not_its_spread() -> None:
    gain = np.linspace(0.95, 1.05, 384)
    stats = measure(gain, gain.astype(np.float16).astype(np.float64), "float16")
    assert stats.max_abs_over_range < DEFAULT_LIMITS["fp16"].max_abs_over_range


# A reference float16 cannot hold in part (beyond its range, below its smallest normal, zero),
# stored as onnxruntime's converter stores it, with NaN/Inf on either side now and then.
float16_pairs = st.tuples(
    hnp.arrays(
        np.float64,
        st.integers(1, 40),
        elements=st.sampled_from([0.0, 1e-9, -3e-6, 0.25, -1.5, 2.0, 7e4, -1e5, np.inf]),
    ),
    st.lists(st.sampled_from([np.nan, np.inf, 0.0]), max_size=2),
    st.sampled_from(["float16", "float32", None]),
)


def _stored(pair: tuple[np.ndarray, list[float], str | None]) -> tuple[np.ndarray, np.ndarray]:
    reference, damage, _ = pair
    with np.errstate(over="ignore"):
        variant = np.clip(reference, -65504, 65504).astype(np.float16).astype(np.float64)
    variant[: len(damage)] = damage[: variant.size]
    return reference, variant


@settings(max_examples=150, deadline=None)
@given(pair=float16_pairs, chunk=st.sampled_from([3, 8, 1 << 20]))
def test_the_unmasked_path_measures_what_the_masked_path_measures(
    pair: tuple[np.ndarray, list[float], str | None], chunk: int
) -> None:
    reference, variant = _stored(pair)
    with mock.patch.object(statistics, "CHUNK", chunk):
        fast = measure(reference, variant, pair[2])
        with mock.patch.object(statistics, "_add_finite", return_value=False):
            masked = measure(reference, variant, pair[2])
    for field in fields(WeightStatistics):
        got, expected = getattr(fast, field.name), getattr(masked, field.name)
        if isinstance(expected, float) and math.isfinite(expected):
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-300), field.name
        else:
            assert got == expected or (math.isnan(got) and math.isnan(expected)), field.name


@pytest.mark.parametrize(
    ("bits", "float_type", "file_tier", "tier"),
    [
        (16, "float16", None, "fp16"),
        (16, "bfloat16", "fp16", "bf16"),
        (32, "float32", "int8", "int8"),
        (8, None, "int4", "int4"),
        (4, None, "int8", "int4"),
        (2, None, None, "int4"),
        (32, None, None, "int8"),  # an int32 bias of a QDQ model
    ],
)
def test_a_form_is_judged_at_its_storage_tier_or_the_looser_file_tier(
    bits: int, float_type: str | None, file_tier: str | None, tier: str
) -> None:
    assert storage_tier(bits, float_type, file_tier) == tier


def test_the_table_overrides_a_tier_and_can_turn_a_limit_off() -> None:
    settings_ = parse_weights_settings(
        {"int8": {"rel_l2": "off", "min_cosine": 0.9}, "skip": ["encoder.*"]}, "parity.toml"
    )
    assert settings_.limits["int8"].rel_l2 is None
    assert settings_.limits["int8"].min_cosine == 0.9
    assert settings_.limits["int8"].max_abs_over_range == 0.15  # the default stays
    assert settings_.skips("encoder.0.weight") and not settings_.skips("decoder.0.weight")


def test_an_unknown_limit_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"\[int4\]: unknown key 'cos'; allowed keys: rel_l2"):
        parse_weights_settings({"int4": {"cos": 0.9}}, "parity.toml [weights]")


# --------------------------------------------------------------------------------------------
# dequantize(quantize(w)) round-trips within the tier limit
# --------------------------------------------------------------------------------------------

weights = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 48), st.integers(1, 8)),
    elements=st.floats(-100, 100, allow_nan=False, allow_subnormal=False),
).filter(lambda w: np.any(np.abs(w) > 1e-6))


def quantize_symmetric_int4_blocks(weight: np.ndarray, block: int) -> dict[str, np.ndarray]:
    """MatMulNBits' blobs for a ``[K, N]`` weight, as onnxruntime's symmetric quantizer writes
    them: per block of K, scale = absmax / 7, q = round(w / scale) + 8, nibbles low first."""
    k, n = weight.shape
    blocks = -(-k // block)
    padded = np.zeros((n, blocks * block))
    padded[:, :k] = weight.T
    grouped = padded.reshape(n, blocks, block)
    scale = np.max(np.abs(grouped), axis=-1) / 7
    scale[scale == 0] = 1.0
    q = np.clip(np.round(grouped / scale[..., None]), -8, 7).astype(np.int64) + 8
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return {"B": packed, "scales": scale.astype(np.float32).reshape(-1)}


@settings(max_examples=60, deadline=None)
@given(weight=weights)
def test_int4_matmul_nbits_round_trip_stays_within_the_int4_limits(weight: np.ndarray) -> None:
    blobs = quantize_symmetric_int4_blocks(weight, 32)
    k, n = weight.shape
    read = matmul_nbits_weight(
        {"K": k, "N": n, "bits": 4, "block_size": 32},
        ["A", "B", "scales"],
        blobs["B"],
        lambda name: blobs.get(name),
    )
    assert not isinstance(read, str), read
    stats = measure(weight, read[0], None)
    limits = DEFAULT_LIMITS["int4"]
    assert stats.rel_l2 <= limits.rel_l2
    assert stats.max_abs_over_range <= limits.max_abs_over_range


@settings(max_examples=60, deadline=None)
@given(weight=weights)
def test_int8_per_channel_round_trip_stays_within_the_int8_limits(weight: np.ndarray) -> None:
    scale = np.max(np.abs(weight), axis=0) / 127
    scale[scale == 0] = 1.0
    q = np.clip(np.round(weight / scale), -127, 127)
    stats = measure(weight, q * scale, None)
    limits = DEFAULT_LIMITS["int8"]
    assert stats.rel_l2 <= limits.rel_l2
    assert stats.max_abs_over_range <= limits.max_abs_over_range
