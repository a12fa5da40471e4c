"""Unit tests for baselines: the fail spec parsed once into rules, rules, reading and comparing."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.results.baseline import (
    DEFAULT_FAIL_SPEC,
    BaselineError,
    RegressionRule,
    compare,
    metric_table,
    parse_fail_spec,
    read_baseline,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_abs:2x", [RegressionRule("max_abs", "ratio", 2.0)]),
        ("rtf:+10%", [RegressionRule("rtf", "percent", 10.0)]),
        ("wer:+0.5pp", [RegressionRule("wer", "points", 0.5)]),
        ("argmax_mismatches:+3", [RegressionRule("argmax_mismatches", "absolute", 3.0)]),
        ("latency.latency_ms:+.5%", [RegressionRule("latency.latency_ms", "percent", 0.5)]),
        (
            "max_abs:2x, wer:+0.5pp,rtf:+10%",
            [
                RegressionRule("max_abs", "ratio", 2.0),
                RegressionRule("wer", "points", 0.5),
                RegressionRule("rtf", "percent", 10.0),
            ],
        ),
    ],
)
def test_fail_spec_is_parsed_into_rules(text: str, expected: list[RegressionRule]) -> None:
    assert list(parse_fail_spec(text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_abs", "expected METRIC:LIMIT[,METRIC:LIMIT...] where LIMIT is Nx"),
        ("max_abs:two", "got 'max_abs:two'"),
        ("max_abs:2y", "got 'max_abs:2y'"),
        ("max_abs:2x,", "got ''"),
        ("max_abs:+2x", "a ratio is written without '+'"),
        ("max_abs:0.5x", "must be >= 1"),
        ("rtf:10%", "write an increase with '+' (e.g. rtf:+10%)"),
        ("max_abs:2x,max_abs:3x", "'max_abs' is given twice"),
    ],
)
def test_bad_fail_spec_is_a_usage_error_naming_the_form(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse_fail_spec(text)


def test_default_fail_spec_parses() -> None:
    assert {rule.metric for rule in parse_fail_spec(DEFAULT_FAIL_SPEC)} >= {"max_abs", "wer"}


def test_rule_text_round_trips() -> None:
    for text in ("max_abs:2x", "rtf:+10%", "wer:+0.5pp", "token_edits:+3"):
        assert parse_fail_spec(text)[0].text == text


@pytest.mark.parametrize(
    ("spec", "metric", "old", "new", "regressed", "improved"),
    [
        ("max_abs:2x", "max_abs", 0.01, 0.02, False, False),
        ("max_abs:2x", "max_abs", 0.01, 0.0201, True, False),
        ("max_abs:2x", "max_abs", 0.01, 0.0049, False, True),
        ("max_abs:2x", "max_abs", 0.0, 1e-9, True, False),
        ("rtf:+10%", "rtf", 0.2, 0.219, False, False),
        ("rtf:+10%", "rtf", 0.2, 0.221, True, False),
        ("wer:+0.5pp", "wer", 0.02, 0.0249, False, False),
        ("wer:+0.5pp", "wer", 0.02, 0.0251, True, False),
        ("wer:+0.5pp", "wer", 0.02, 0.0149, False, True),
        ("argmax_mismatches:+2", "argmax_mismatches", 1, 3, False, False),
        ("argmax_mismatches:+2", "argmax_mismatches", 1, 4, True, False),
        # Higher is better: the rule reads 1 - cosine, so falling from 0.999 to 0.997 is 3x.
        ("cosine:2x", "cosine", 0.999, 0.9985, False, False),
        ("cosine:2x", "cosine", 0.999, 0.997, True, False),
        ("cosine:2x", "cosine", 0.999, 0.9999, False, True),
    ],
)
def test_rule_judges_the_direction_of_each_metric(
    spec: str, metric: str, old: float, new: float, regressed: bool, improved: bool
) -> None:
    rule = parse_fail_spec(spec)[0]
    assert rule.regressed(metric, old, new) is regressed
    assert rule.improved(metric, old, new) is improved


def test_dotted_rule_matches_only_that_checks_number() -> None:
    rule = parse_fail_spec("latency.latency_ms:+10%")[0]
    assert rule.matches("latency", "latency_ms")
    assert not rule.matches("other", "latency_ms")
    assert parse_fail_spec("rtf:+10%")[0].matches("rtf", "rtf")


def _metadata(max_abs: float, wer: float | None = None) -> dict[str, Any]:
    variants: dict[str, Any] = {
        "int8": {
            "status": "passed",
            "size_bytes": 100,
            "outputs": {"logits": {"max_abs": max_abs, "cosine": 0.999}},
            "checks": {"latency": {"passed": True, "latency_ms": 1.0}},
        }
    }
    graphs: dict[str, Any] = {
        "encoder": {
            "reference": {"variant": "fp32", "file": "encoder.onnx", "size_bytes": 200},
            "variants": variants,
        }
    }
    if wer is not None:
        graphs["pipeline"] = {"variants": {"int8": {"checks": {"sequence": {"wer": wer}}}}}
    return {"schema": "pytest-onnxparity/metadata", "schema_version": 1, "graphs": graphs}


def test_metric_table_reads_outputs_checks_and_sizes() -> None:
    table = metric_table(_metadata(0.1, wer=0.02))
    assert table[("encoder", "int8", "logits", "max_abs")] == 0.1
    assert table[("encoder", "int8", "latency", "latency_ms")] == 1.0
    assert table[("encoder", "int8", "file", "size_bytes")] == 100
    assert table[("encoder", "fp32", "file", "size_bytes")] == 200
    assert table[("pipeline", "int8", "sequence", "wer")] == 0.02
    assert not any(metric == "passed" for *_, metric in table)


def test_comparison_lists_each_regression_and_improvement() -> None:
    rules = parse_fail_spec("max_abs:2x,wer:+0.5pp,rtf:+10%")
    worse = compare(_metadata(0.1, wer=0.02), _metadata(0.3, wer=0.04), rules, "old.json")
    assert worse.failed
    assert [(c.subject, c.metric) for c in worse.regressions] == [
        ("logits", "max_abs"),
        ("sequence", "wer"),
    ]
    lines = worse.lines()
    assert lines[0].startswith("baseline old.json: 2 regression(s), 0 improvement(s)")
    assert "  REGRESSED encoder/int8 logits.max_abs: 0.1 -> 0.3 (x3; rule max_abs:2x)" in lines
    assert "  REGRESSED pipeline/int8 sequence.wer: 0.02 -> 0.04 (+2pp; rule wer:+0.5pp)" in lines
    assert "  rule(s) that matched no metric of both runs: rtf:+10%" in lines
    better = compare(_metadata(0.3, wer=0.04), _metadata(0.1, wer=0.02), rules)
    assert not better.failed
    assert len(better.improvements) == 2
    assert any(
        line.startswith("  improved  encoder/int8 logits.max_abs") for line in better.lines()
    )


def test_graph_missing_from_this_run_is_noted_not_failed() -> None:
    rules = parse_fail_spec("max_abs:2x")
    comparison = compare(_metadata(0.1, wer=0.02), _metadata(0.1), rules)
    assert not comparison.failed
    assert comparison.missing == ("pipeline/int8",)
    assert json.loads(json.dumps(comparison.to_json()))["missing"] == ["pipeline/int8"]


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_results_and_metadata_files_are_read(tmp_path: Path) -> None:
    results = {"schema": "pytest-onnxparity/results", "schema_version": 1, "records": []}
    assert read_baseline(_write(tmp_path / "r.json", results)) == results
    metadata = _metadata(0.1)
    assert read_baseline(_write(tmp_path / "m.json", metadata)) == metadata


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file; write one on the run to compare against with --parity-json PATH"),
        (
            "{not json",
            "not valid JSON (Expecting property name enclosed in double quotes at line 1",
        ),
        ("[]", "not a pytest-onnxparity results or metadata file (schema None)"),
        ('{"schema": "other"}', "not a pytest-onnxparity results or metadata file"),
        (
            '{"schema": "pytest-onnxparity/results", "schema_version": 7}',
            "results schema version 7 is newer than this pytest-onnxparity reads (1..1); "
            "upgrade pytest-onnxparity",
        ),
        (
            '{"schema": "pytest-onnxparity/metadata", "schema_version": 0}',
            "metadata schema version 0 is older than this pytest-onnxparity reads (1..1)",
        ),
        (
            '{"schema": "pytest-onnxparity/results", "schema_version": "1"}',
            "without an integer schema_version",
        ),
    ],
)
def test_unusable_baseline_is_refused_with_the_reason(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BaselineError, match=re.escape(message)) as error:
        read_baseline(path)
    assert str(path) in str(error.value)


def _broken(nonfinite: int) -> dict[str, Any]:
    metadata = _metadata(0.1)
    outputs = metadata["graphs"]["encoder"]["variants"]["int8"]["outputs"]["logits"]
    outputs["nonfinite_in_variant"] = nonfinite
    if nonfinite:
        outputs.update(max_abs=None, cosine=None)
    return metadata


def test_a_variant_that_turned_nan_is_a_regression_and_never_an_improvement() -> None:
    rules = parse_fail_spec(DEFAULT_FAIL_SPEC)

    comparison = compare(_broken(0), _broken(64), rules)

    assert [(c.metric, c.old, c.new) for c in comparison.regressions] == [
        ("nonfinite_in_variant", 0.0, 64.0)
    ]
    assert comparison.improvements == ()
