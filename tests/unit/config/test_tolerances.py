"""Unit tests for tolerances: tier defaults, validation of one source's keys, and layering."""

from __future__ import annotations

import math
import re

import pytest

from pytest_onnxparity.config.tolerances import (
    LIMIT_KEYS,
    TIER_DEFAULTS,
    TIERS,
    TOLERANCE_KEYS,
    Tolerance,
    ToleranceError,
    parse_limit,
    parse_scoped_tolerance,
    resolve,
    tier_default,
    validate_layer,
)

WHERE = "parity.toml [graphs.encoder]"


def test_every_tier_has_a_default() -> None:
    assert set(TIER_DEFAULTS) == set(TIERS)


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_default_gates_relative_error_and_cosine(tier: str) -> None:
    limits = tier_default(tier).limits()

    assert 0 < limits["rel_l2"] < 1
    assert 0 < limits["min_cosine"] < 1
    assert "min_argmax_agreement" not in limits


def test_lower_precision_tiers_allow_more_error() -> None:
    rel_l2 = [tier_default(tier).rel_l2 for tier in TIERS]
    min_cosine = [tier_default(tier).min_cosine for tier in TIERS]

    assert rel_l2 == sorted(rel_l2)
    assert min_cosine == sorted(min_cosine, reverse=True)


def test_unknown_tier_lists_the_allowed_tiers() -> None:
    with pytest.raises(
        ToleranceError, match=re.escape("unknown precision tier 'int3'; allowed tiers: fp32, ")
    ):
        tier_default("int3")


def test_limits_skip_ungated_metrics_and_keep_a_fixed_order() -> None:
    tolerance = Tolerance(min_cosine=0.9, max_abs=0.1, argmax_axis=0)

    assert list(tolerance.limits().items()) == [("max_abs", 0.1), ("min_cosine", 0.9)]


def test_to_json_has_every_key() -> None:
    assert Tolerance(rel_l2=0.1).to_json() == {
        "max_abs": None,
        "max_abs_rel": None,
        "mean_abs": None,
        "p99_abs": None,
        "rel_l2": 0.1,
        "min_cosine": None,
        "min_argmax_agreement": None,
        "min_topk_overlap": None,
        "argmax_axis": -1,
        "topk": 5,
        "mask": None,
    }


def test_validate_layer_rejects_an_unknown_key_and_lists_the_allowed_ones() -> None:
    expected = f"{WHERE}: unknown tolerance key 'max_err'; allowed: {', '.join(TOLERANCE_KEYS)}"

    with pytest.raises(ToleranceError, match=re.escape(expected)):
        validate_layer({"max_err": 0.1}, WHERE)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(-0.1, "must be a finite, non-negative number, got -0.1", id="negative"),
        pytest.param(math.nan, "must be a finite, non-negative number, got nan", id="nan"),
        pytest.param("nan", "must be a finite, non-negative number, got 'nan'", id="nan-string"),
        pytest.param(math.inf, "must be a finite, non-negative number, got inf", id="inf"),
        pytest.param("1e400", "must be a finite, non-negative number, got '1e400'", id="overflow"),
        pytest.param("loose", "must be a non-negative number, got 'loose'", id="word"),
        pytest.param("", "must be a non-negative number, got ''", id="empty"),
        pytest.param(True, "must be a non-negative number, got True", id="true"),
        pytest.param(False, "must be a non-negative number, got False", id="false"),
        pytest.param(None, "must be a non-negative number, got None", id="none"),
        pytest.param([0.1], "must be a non-negative number, got [0.1]", id="list"),
    ],
)
def test_validate_layer_rejects_a_bad_limit_naming_source_and_key(
    raw: object, problem: str
) -> None:
    with pytest.raises(ToleranceError, match=re.escape(f"{WHERE}: max_abs {problem}")):
        validate_layer({"max_abs": raw}, WHERE)


@pytest.mark.parametrize("key", ["min_cosine", "min_argmax_agreement"])
def test_validate_layer_rejects_a_lower_bound_above_one(key: str) -> None:
    with pytest.raises(
        ToleranceError, match=re.escape(f"{WHERE}: {key} is a fraction in [0, 1], got 1.01")
    ):
        validate_layer({key: 1.01}, WHERE)


@pytest.mark.parametrize("key", ["min_cosine", "min_argmax_agreement"])
def test_validate_layer_accepts_lower_bounds_zero_and_one(key: str) -> None:
    assert validate_layer({key: 1}, WHERE) == {key: 1.0}
    assert validate_layer({key: 0}, WHERE) == {key: 0.0}


def test_upper_bounds_may_exceed_one() -> None:
    assert validate_layer({"max_abs": 12}, WHERE) == {"max_abs": 12.0}


@pytest.mark.parametrize("raw", [1.0, "1", True, None], ids=["float", "string", "bool", "none"])
def test_validate_layer_rejects_a_non_integer_argmax_axis(raw: object) -> None:
    with pytest.raises(
        ToleranceError, match=re.escape(f"{WHERE}: argmax_axis must be an integer, got {raw!r}")
    ):
        validate_layer({"argmax_axis": raw}, WHERE)


def test_validate_layer_accepts_a_negative_argmax_axis() -> None:
    assert validate_layer({"argmax_axis": -2}, WHERE) == {"argmax_axis": -2}


def test_validate_layer_coerces_numeric_strings_and_ints_to_floats() -> None:
    layer = validate_layer({"max_abs": "1e-3", "rel_l2": 0, "min_cosine": " 0.99 "}, WHERE)

    assert layer == {"max_abs": 0.001, "rel_l2": 0.0, "min_cosine": 0.99}
    assert all(type(value) is float for value in layer.values())


def test_validate_layer_of_nothing_is_empty() -> None:
    assert validate_layer({}, WHERE) == {}


def test_parse_limit_names_where_it_came_from() -> None:
    with pytest.raises(ToleranceError, match=r"^--parity-tolerance: rel_l2 must be"):
        parse_limit(-1, "--parity-tolerance: rel_l2")


def test_resolve_without_layers_is_the_tier_default() -> None:
    assert resolve("int8", []) == TIER_DEFAULTS["int8"]


def test_resolve_applies_layers_weakest_first() -> None:
    layers = [{"rel_l2": 0.3, "max_abs": 1.0}, {"rel_l2": 0.2}, {"rel_l2": 0.05}]

    tolerance = resolve("int8", layers)

    assert tolerance.rel_l2 == 0.05
    assert tolerance.max_abs == 1.0
    assert tolerance.min_cosine == TIER_DEFAULTS["int8"].min_cosine


def test_a_layer_sets_only_the_keys_it_names() -> None:
    tolerance = resolve("fp32", [{"argmax_axis": 0}, {}])

    assert tolerance == Tolerance(max_abs_rel=1e-3, rel_l2=1e-5, min_cosine=0.99999, argmax_axis=0)


def test_a_zero_layer_value_overrides_a_looser_default() -> None:
    assert resolve("int4", [{"rel_l2": 0.0}]).rel_l2 == 0.0


def test_resolve_of_an_unknown_tier_is_an_error() -> None:
    with pytest.raises(ToleranceError, match="unknown precision tier 'fp8'"):
        resolve("fp8", [{"rel_l2": 0.1}])


def test_every_limit_key_is_a_tolerance_field() -> None:
    assert set(LIMIT_KEYS) | {"argmax_axis", "topk", "mask"} == set(TOLERANCE_KEYS)
    assert set(Tolerance().to_json()) == set(TOLERANCE_KEYS)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("attention_mask", "attention_mask"), ("none", "none"), (False, "none")],
)
def test_mask_names_an_input_or_none(raw: object, expected: str) -> None:
    assert validate_layer({"mask": raw}, WHERE) == {"mask": expected}


@pytest.mark.parametrize("raw", [True, 1, ""])
def test_mask_of_another_kind_is_an_error_that_says_what_it_takes(raw: object) -> None:
    with pytest.raises(ToleranceError, match="mask must be the name of an attention-mask input"):
        validate_layer({"mask": raw}, WHERE)


def test_mask_on_the_command_line_accepts_false_for_every_position() -> None:
    assert parse_scoped_tolerance("model/int8/hidden:mask=false").value == "none"
    assert parse_scoped_tolerance("hidden_mask_test:mask=input_mask").value == "input_mask"


def test_the_fp32_default_is_scale_free() -> None:
    fp32 = tier_default("fp32")

    assert fp32.max_abs is None and fp32.mean_abs is None and fp32.p99_abs is None
    assert (fp32.max_abs_rel, fp32.rel_l2, fp32.min_cosine) == (1e-3, 1e-5, 0.99999)
