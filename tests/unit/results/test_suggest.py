"""Unit tests for --parity-suggest: limits per input set, never for damaged variants, in the
form of the destination, never over a hand-written file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.results.suggest import (
    MARKER,
    SuggestError,
    check_destination,
    suggest,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parity_record(
    variant: str,
    tier: str = "int8",
    *,
    input_set: str = "default",
    synthesized: bool = True,
    rel_l2: float = 0.05,
    cosine: float = 0.998,
    graph: str = "model",
    **stats: Any,
) -> dict[str, Any]:
    output = {"output": "hidden", "rel_l2": rel_l2, "cosine": cosine, "max_abs": 0.2, **stats}
    gates = [
        {"output": "hidden", "metric": "rel_l2", "value": rel_l2, "limit": 0.1, "passed": True},
        {
            "output": "hidden",
            "metric": "min_cosine",
            "value": cosine,
            "limit": 0.99,
            "passed": True,
        },
    ]
    return {
        "kind": "parity",
        "nodeid": f"x::{graph}::parity[{variant}-{input_set}]",
        "graph": graph,
        "variant": variant,
        "tier": tier,
        "input_set": {"name": input_set, "source": "s", "synthesized": synthesized},
        "passed": True,
        "error": None,
        "parity": {"outputs": [output], "gates": gates},
    }


def weights_record(variant: str, passed: bool) -> dict[str, Any]:
    return {
        "kind": "check",
        "check": "weights",
        "nodeid": f"x::model::weights[{variant}]",
        "graph": "model",
        "variant": variant,
        "passed": passed,
        "enforced": True,
        "message": "" if passed else "weight 'layer.2.weight': rel_l2 1 > 0.5 (zeroed)",
        "details": {},
    }


def test_limits_are_the_gated_values_times_the_margin_per_input_set() -> None:
    records = [
        parity_record("int8", input_set="default", rel_l2=0.2),
        parity_record("int8", input_set="sentences", synthesized=False, rel_l2=0.1),
    ]

    text = suggest(records, 1.5).render(Path("parity.toml"))
    table = tomllib.loads(text)["graphs"]["model"]["variants"]["int8"]["input_sets"]

    assert table["default"]["outputs"]["hidden"]["rel_l2"] == 0.3
    assert table["sentences"]["outputs"]["hidden"]["rel_l2"] == 0.15
    assert table["sentences"]["outputs"]["hidden"]["min_cosine"] == pytest.approx(0.997)
    assert "max_abs" not in table["sentences"]["outputs"]["hidden"]  # not gated: not suggested
    assert "# input set 'sentences' (real)" in text
    assert "# input set 'default' (synthesized)" in text
    assert text.startswith(MARKER)


def test_a_variant_with_a_negative_cosine_gets_no_limits_and_the_reason() -> None:
    records = [parity_record("int8"), parity_record("int4", "int4", rel_l2=1.5, cosine=-0.16)]

    suggestion = suggest(records, 1.5)
    text = suggestion.render(Path("parity.toml"))

    assert '"int4"' not in text.replace("# no limits for model/int4", "")
    assert suggestion.lines() == [
        "no limits for model/int4: output 'hidden' has cosine -0.16 on 'default' (<= 0.5): "
        "damaged, not a tolerance"
    ]
    assert "# no limits for model/int4: output 'hidden' has cosine -0.16" in text


def test_a_failed_weights_check_excludes_its_variant() -> None:
    records = [
        parity_record("int8"),
        parity_record("int4", "int4", rel_l2=0.1),
        weights_record("int4", passed=False),
        weights_record("int8", passed=True),
    ]

    suggestion = suggest(records, 1.5)

    assert [(e.variant, e.reason) for e in suggestion.excluded] == [
        ("int4", "fails weight-space parity (weight 'layer.2.weight': rel_l2 1 > 0.5 (zeroed))")
    ]
    assert {table.variant for table in suggestion.tables} == {"int8"}


def test_an_outlier_among_its_tier_gets_no_limits() -> None:
    records = [
        parity_record("a", graph="g1", rel_l2=0.05),
        parity_record("b", graph="g2", rel_l2=0.06),
        parity_record("c", graph="g3", rel_l2=0.04),
        parity_record("d", graph="g4", rel_l2=0.45),
    ]

    suggestion = suggest(records, 1.5)

    assert [(e.graph, e.variant) for e in suggestion.excluded] == [("g4", "d")]
    assert "outlier among the 4 int8 variants" in suggestion.excluded[0].reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (parity_record("fp16", "fp16", rel_l2=0.2), "past what a healthy fp16 variant gives"),
        (parity_record("int8", nonfinite_in_variant=3, rel_l2=None), "has NaN/Inf"),  # type: ignore[arg-type]
    ],
)
def test_damage_and_nan_get_no_limits(record: dict[str, Any], reason: str) -> None:
    suggestion = suggest([record], 1.5)

    assert suggestion.tables == ()
    assert reason in suggestion.excluded[0].reason


def test_an_errored_variant_gets_no_limits() -> None:
    record = parity_record("int8")
    record["error"] = "model_int8.onnx: input 'input_ids' axis 0 is fixed to 1"

    assert "errored" in suggest([record], 1.5).excluded[0].reason


def test_a_pyproject_destination_gets_tool_onnxparity_tables() -> None:
    text = suggest([parity_record("int8")], 2.0).render(Path("proj/pyproject.toml"))

    document = tomllib.loads(text)

    assert document["tool"]["onnxparity"]["graphs"]["model"]["variants"]["int8"]


def test_a_hand_written_file_is_refused_unless_forced(tmp_path: Path) -> None:
    mine = tmp_path / "parity.toml"
    mine.write_text("[tolerance]\nrel_l2 = 0.1\n")

    with pytest.raises(
        SuggestError, match=r"exists and was not written by this option.*--parity-suggest-force"
    ):
        check_destination(mine, force=False)
    check_destination(mine, force=True)
    mine.write_text(suggest([parity_record("int8")], 1.5).render(mine))
    check_destination(mine, force=False)
    check_destination(tmp_path / "new.toml", force=False)
