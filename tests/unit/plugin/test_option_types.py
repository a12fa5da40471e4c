"""Unit tests for options: each option string parsed once into an object, or a usage error."""

from __future__ import annotations

import argparse
import re

import pytest

from pytest_onnxparity.config.tolerances import ScopedTolerance
from pytest_onnxparity.plugin.option_types import (
    parse_dim,
    parse_margin,
    parse_non_negative_int,
    parse_scoped_tolerance,
    parse_sweep,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rel_l2=0.05", ScopedTolerance(None, "rel_l2", 0.05)),
        ("int8:max_abs=0.02", ScopedTolerance("int8", "max_abs", 0.02)),
        ("q4f16:min_cosine=1", ScopedTolerance("q4f16", "min_cosine", 1.0)),
        ("encoder:p99_abs=1e-3", ScopedTolerance("encoder", "p99_abs", 0.001)),
        ("encoder/int4:min_cosine=0.97", ScopedTolerance("encoder/int4", "min_cosine", 0.97)),
        (
            "encoder/int4/logits:min_argmax_agreement=0.9",
            ScopedTolerance("encoder/int4/logits", "min_argmax_agreement", 0.9),
        ),
        # ONNX output names may hold ':' and '/': only the last ':' separates the scope.
        ("enc/int8//dec/out:0:mean_abs=0", ScopedTolerance("enc/int8//dec/out:0", "mean_abs", 0.0)),
        ("argmax_axis=-2", ScopedTolerance(None, "argmax_axis", -2)),
        ("int8:argmax_axis=0", ScopedTolerance("int8", "argmax_axis", 0)),
    ],
)
def test_parse_scoped_tolerance(text: str, expected: ScopedTolerance) -> None:
    parsed = parse_scoped_tolerance(text)

    assert parsed == expected
    assert type(parsed.value) is type(expected.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rel_l2", "expected [SCOPE:]KEY=VALUE like 'int8:rel_l2=0.05', got 'rel_l2'"),
        ("int8:=0.1", "expected [SCOPE:]KEY=VALUE like 'int8:rel_l2=0.05', got 'int8:=0.1'"),
        ("", "expected [SCOPE:]KEY=VALUE like 'int8:rel_l2=0.05', got ''"),
        (
            "int8:max_err=0.1",
            "--parity-tolerance: unknown tolerance key 'max_err'; allowed: max_abs, ",
        ),
        ("rel_l2=-0.1", "--parity-tolerance: rel_l2 must be a finite, non-negative number"),
        ("rel_l2=nan", "--parity-tolerance: rel_l2 must be a finite, non-negative number"),
        ("rel_l2=", "--parity-tolerance: rel_l2 must be a non-negative number, got ''"),
        ("rel_l2=0.1=2", "--parity-tolerance: rel_l2 must be a non-negative number, got '0.1=2'"),
        ("min_cosine=1.5", "--parity-tolerance: min_cosine is a fraction in [0, 1], got '1.5'"),
        ("argmax_axis=1.5", "--parity-tolerance: argmax_axis must be an integer, got '1.5'"),
        ("argmax_axis=²", "--parity-tolerance: argmax_axis must be an integer, got '²'"),
    ],
)
def test_a_bad_tolerance_option_is_a_usage_error_saying_why(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse_scoped_tolerance(text)


TARGETS = {
    "tier": ("int8", "encoder", "q8", "logits"),
    "variant": ("int4", "encoder", "q4f16", "logits"),
    "other graph": ("int8", "decoder", "q8", "logits"),
    "other output": ("int8", "encoder", "q8", "hidden"),
}


@pytest.mark.parametrize(
    ("scope", "applies"),
    [
        (None, {"tier", "variant", "other graph", "other output"}),
        ("int8", {"tier", "other graph", "other output"}),
        ("q4f16", {"variant"}),
        ("encoder", {"tier", "variant", "other output"}),
        ("decoder", {"other graph"}),
        ("encoder/q8", {"tier", "other output"}),
        ("encoder/q8/logits", {"tier"}),
        ("encoder/q8/hidden", {"other output"}),
        ("decoder/q4f16", set()),
        ("logits", set()),
        ("q8/logits", set()),
    ],
)
def test_a_scoped_tolerance_applies_only_within_its_scope(
    scope: str | None, applies: set[str]
) -> None:
    tolerance = ScopedTolerance(scope, "rel_l2", 0.1)

    assert {name for name, target in TARGETS.items() if tolerance.applies_to(*target)} == applies


@pytest.mark.parametrize(("text", "expected"), [("T=97", ("T", 97)), ("batch=1", ("batch", 1))])
def test_parse_dim(text: str, expected: tuple[str, int]) -> None:
    assert parse_dim(text) == expected


@pytest.mark.parametrize(
    "text", ["T", "T=", "=97", "T=0", "T=-3", "T=1.5", "T=x", "T=²", "T= 9", "T=b=3"]
)
def test_a_bad_dim_is_a_usage_error_showing_the_form(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError,
        match=re.escape(f"expected NAME=SIZE with SIZE >= 1, got {text!r}"),
    ):
        parse_dim(text)


def test_parse_sweep_keeps_the_sizes_in_order() -> None:
    assert parse_sweep("T=64,80,97,128") == ("T", (64, 80, 97, 128))
    assert parse_sweep("batch=4") == ("batch", (4,))


@pytest.mark.parametrize(
    "text", ["T", "T=", "=64", "T=64,", "T=64,,80", "T=0,64", "T=64;80", "T=6.4", "T=²"]
)
def test_a_bad_sweep_is_a_usage_error_with_an_example(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError,
        match=re.escape(f"expected NAME=S1,S2,... with sizes >= 1 (e.g. T=64,80,97), got {text!r}"),
    ):
        parse_sweep(text)


@pytest.mark.parametrize(("text", "expected"), [("1", 1.0), ("1.5", 1.5), ("3e1", 30.0)])
def test_parse_margin(text: str, expected: float) -> None:
    assert parse_margin(text) == expected


@pytest.mark.parametrize("text", ["0.99", "0", "-2", "x", "", "nan", "inf", "-inf"])
def test_a_margin_below_one_or_not_finite_is_a_usage_error(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError,
        match=re.escape(f"expected a margin >= 1 (e.g. 1.5), got {text!r}"),
    ):
        parse_margin(text)


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("7", 7), ("0012", 12)])
def test_parse_non_negative_int(text: str, expected: int) -> None:
    assert parse_non_negative_int(text) == expected


@pytest.mark.parametrize("text", ["-1", "1.0", "", " 3", "three", "²"])
def test_a_negative_or_non_integer_count_is_a_usage_error(text: str) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError,
        match=re.escape(f"expected a non-negative integer, got {text!r}"),
    ):
        parse_non_negative_int(text)
