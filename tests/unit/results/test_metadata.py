"""Unit tests for the per graph × variant views: the results grouping and the metadata block."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_onnxparity.results.metadata import build_metadata, dumps_stable
from pytest_onnxparity.results.numbers import check_numbers, round_number
from pytest_onnxparity.results.views import group_by_graph, input_kind, worst_stats

EXPORT = {
    "root": "/models/export",
    "graphs": [
        {
            "name": "encoder",
            "reference": "fp32",
            "variants": ["int8"],
            "total_bytes": 300,
            "files": [
                {"relpath": "encoder.onnx", "variant": "fp32", "tier": "fp32", "size_bytes": 200,
                 "total_bytes": 200},
                {"relpath": "encoder.int8.onnx", "variant": "int8", "tier": "int8",
                 "size_bytes": 50, "total_bytes": 50},
            ],
        }
    ],
    "unknown_tags": [],
}  # fmt: skip
IO = {
    "encoder": {
        "file": "encoder.onnx",
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 16]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 4]}],
    }
}


def _stats(output: str, max_abs: float, cosine: float, mismatches: int) -> dict[str, Any]:
    return {
        "output": output,
        "max_abs": max_abs,
        "mean_abs": max_abs / 4,
        "p99_abs": max_abs / 2,
        "rel_l2": max_abs / 10,
        "cosine": cosine,
        "argmax_agreement": 1.0 - mismatches / 8,
        "argmax_mismatches": mismatches,
        "nonfinite_in_variant": 0,
    }


def _parity(input_set: str, max_abs: float, cosine: float, mismatches: int) -> dict[str, Any]:
    return {
        "kind": "parity",
        "nodeid": f"export::encoder::parity[int8-{input_set}]",
        "graph": "encoder",
        "variant": "int8",
        "tier": "int8",
        "reference": "fp32 (encoder.onnx)",
        "input_set": {"name": input_set, "source": "synthesized", "seed": 7, "shapes": {"x": [1]}},
        "session": {},
        "passed": True,
        "error": None,
        "parity": {
            "passed": True,
            "outputs": [_stats("y", max_abs, cosine, mismatches)],
            "gates": [
                {"output": "y", "metric": "rel_l2", "value": max_abs / 10, "limit": 0.1,
                 "passed": True},
                {"output": "y", "metric": "min_cosine", "value": cosine, "limit": 0.99,
                 "passed": True},
            ],
            "tolerances": {},
        },
    }  # fmt: skip


def _check(check: str, details: dict[str, Any], passed: bool = True, **extra: Any) -> dict:
    return {
        "kind": "check",
        "nodeid": f"export::encoder::{check}[int8]",
        "check": check,
        "graph": extra.pop("graph", "encoder"),
        "variant": extra.pop("variant", "int8"),
        "passed": passed,
        "enforced": extra.pop("enforced", True),
        "message": "",
        "warnings": [],
        "details": details,
    }


SEQUENCE_DETAILS = {
    "variant_set": "int8",
    "gates": [],
    "corpus": {
        "clips": 3,
        "duration_s": 4.5,
        "token_mismatched_clips": 1,
        "token_edits": 2,
        "transcript_mismatched_clips": 1,
        "argmax_mismatches_forced": None,
        "wer_vs_reference": {"unit": "word", "edits": 1, "reference_length": 50, "rate": 0.02},
        "cer_vs_reference": {"unit": "char", "edits": 2, "reference_length": 200, "rate": 0.01},
        "wer_vs_truth": None,
    },
    "clips": [{"clip_id": "a"}, {"clip_id": "b"}, {"clip_id": "c"}],
}
LATENCY_DETAILS = {
    "measurement": {"metric": "latency_ms", "value": 2.0, "repeats": 5, "warmup": 1},
    "reference": {"metric": "latency_ms", "value": 4.0},
    "context": {"intra_op_threads": 2},
    "budgets": [],
}
RECORDS = [
    _parity("frames=8", 0.02, 0.9999, 1),
    _parity("frames=31", 0.05, 0.9990, 2),
    _check("coverage", {"weights": 4, "quantized": 3, "fraction": 0.75, "rows": []}),
    _check("health:opset", {"opset": 17}, variant="fp32"),
    _check("latency", LATENCY_DETAILS, passed=False, enforced=False),
    _check("sequence", SEQUENCE_DETAILS, graph="pipeline"),
]


def test_worst_over_input_sets_is_largest_error_lowest_agreement_summed_counts() -> None:
    worst = worst_stats([_stats("y", 0.02, 0.9999, 1), _stats("y", 0.05, 0.999, 2)])
    assert worst["max_abs"] == 0.05
    assert worst["cosine"] == 0.999
    assert worst["argmax_agreement"] == 0.75
    assert worst["argmax_mismatches"] == 3
    assert worst_stats([{"max_abs": 1.0, "argmax_agreement": None}])["argmax_agreement"] is None


def test_grouping_has_every_discovered_file_and_every_record() -> None:
    durations = {RECORDS[0]["nodeid"]: 0.25, RECORDS[1]["nodeid"]: 0.5}
    graphs = group_by_graph(RECORDS, EXPORT, IO, durations)
    assert list(graphs) == ["encoder", "pipeline"]
    encoder = graphs["encoder"]
    assert encoder["reference"] == "fp32" and encoder["io"] == IO["encoder"]
    assert list(encoder["variants"]) == ["fp32", "int8"]
    reference, int8 = encoder["variants"]["fp32"], encoder["variants"]["int8"]
    assert reference["role"] == "reference" and reference["status"] == "passed"
    assert reference["checks"]["health:opset"]["numbers"] == {"opset": 17}
    assert int8["file"] == "encoder.int8.onnx" and int8["total_bytes"] == 50
    assert set(int8["input_sets"]) == {"frames=8", "frames=31"}
    assert int8["outputs"]["y"]["max_abs"] == 0.05
    assert {(g["input_set"], g["metric"]) for g in int8["gates"]} == {
        ("frames=8", "rel_l2"),
        ("frames=8", "min_cosine"),
        ("frames=31", "rel_l2"),
        ("frames=31", "min_cosine"),
    }
    assert int8["duration_s"] == 0.75
    # A failed timing note does not fail the variant.
    assert int8["status"] == "passed"
    assert int8["checks"]["latency"]["enforced"] is False
    assert graphs["pipeline"]["variants"]["int8"]["role"] == "variant"


def test_a_file_without_records_is_not_run_and_errors_and_failures_rank_worst() -> None:
    error = {**_parity("default", 0.1, 0.99, 0), "error": "cannot load", "passed": False}
    failed = _check("coverage", {}, passed=False)
    assert group_by_graph([], EXPORT)["encoder"]["variants"]["int8"]["status"] == "not run"
    assert group_by_graph([failed], EXPORT)["encoder"]["variants"]["int8"]["status"] == "failed"
    view = group_by_graph([failed, error], EXPORT)["encoder"]["variants"]["int8"]
    assert view["status"] == "error"
    assert view["errors"] == ["cannot load"]


@pytest.mark.parametrize(
    ("check", "details", "expected"),
    [
        ("coverage", {"weights": 4, "quantized": 3, "fraction": 0.75, "rows": [{}]},
         {"weights": 4, "quantized": 3, "fraction": 0.75}),
        ("size", {"size_mb": 1.5, "is_reference": False, "budgets": [], "note": "x"},
         {"size_mb": 1.5, "is_reference": False}),
        ("latency", LATENCY_DETAILS,
         {"latency_ms": 2.0, "reference_latency_ms": 4.0, "vs_reference": 0.5, "repeats": 5,
          "warmup": 1, "intra_op_threads": 2}),
        ("rtf", {"measurement": {"metric": "rtf", "value": 0.3}}, {"rtf": 0.3}),
        ("sequence", SEQUENCE_DETAILS,
         {"clips": 3, "duration_s": 4.5, "token_mismatched_clips": 1, "token_edits": 2,
          "transcript_mismatched_clips": 1, "transcripts_matching": 2, "wer": 0.02,
          "cer": 0.01}),
        ("health:outputs", {"nan": float("nan"), "outputs": 2}, {"outputs": 2}),
    ],
)  # fmt: skip
def test_check_numbers_are_read_from_known_and_unknown_checks(
    check: str, details: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert check_numbers(check, details) == expected


def _document(records: list[dict[str, Any]], with_graphs: bool = True) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": "pytest-onnxparity/results",
        "schema_version": 1,
        "toolchain": {
            "python": "3.11.7",
            "cpu": "Some CPU",
            "providers": ["CPUExecutionProvider"],
            "packages": {"onnxruntime": "1.32.0", "torch": None, "pytest-onnxparity": "0.1.0"},
        },
        "settings": {"inputs": {"seed": 0}, "session": {"providers": ["CPUExecutionProvider"]}},
        "export": EXPORT,
        "records": records,
    }
    if with_graphs:
        document["graphs"] = group_by_graph(records, EXPORT, IO)
    return document


def test_metadata_block_is_compact_rounded_and_complete() -> None:
    block = build_metadata(_document(RECORDS))
    assert block["schema"] == "pytest-onnxparity/metadata"
    assert block["generator"] == "pytest-onnxparity 0.1.0"
    assert block["toolchain"] == {
        "python": "3.11.7",
        "cpu": "Some CPU",
        "providers": ["CPUExecutionProvider"],
        "onnxruntime": "1.32.0",
        "pytest-onnxparity": "0.1.0",
    }
    encoder = block["graphs"]["encoder"]
    assert encoder["inputs"] == {"x": {"dtype": "float32", "shape": ["batch", 16]}}
    assert encoder["reference"] == {
        "variant": "fp32",
        "file": "encoder.onnx",
        "size_bytes": 200,
        "checks": {"health:opset": {"passed": True, "opset": 17}},
    }
    int8 = encoder["variants"]["int8"]
    assert int8["size_ratio"] == 0.25
    assert int8["input_sets"] == ["frames=31", "frames=8"]
    assert int8["limits"] == {"y": {"min_cosine": 0.99, "rel_l2": 0.1}}
    assert int8["outputs"]["y"]["cosine"] == 0.999
    assert int8["checks"]["latency"] == {
        "passed": False,
        "enforced": False,
        "intra_op_threads": 2,
        "latency_ms": 2.0,
        "reference_latency_ms": 4.0,
        "repeats": 5,
        "vs_reference": 0.5,
        "warmup": 1,
    }
    sequence = block["graphs"]["pipeline"]["variants"]["int8"]["checks"]["sequence"]
    assert sequence["wer"] == 0.02 and sequence["transcripts_matching"] == 2


def test_a_results_document_without_its_graphs_section_gives_the_same_block() -> None:
    with_graphs = build_metadata(_document(RECORDS))
    without = build_metadata(_document(RECORDS, with_graphs=False))
    del with_graphs["graphs"]["encoder"]["inputs"], with_graphs["graphs"]["encoder"]["outputs"]
    assert without == with_graphs


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("max_abs", 0.000123456, 0.0001235),
        ("max_abs", 12345.678, 12350.0),
        ("max_abs", 0.0, 0.0),
        ("cosine", 0.99999998825488, 0.99999998825),
        ("cosine", 0.5, 0.5),
        ("cosine", 1.0, 1.0),
        ("argmax_agreement", 0.93751234, 0.93751),
        ("argmax_mismatches", 3, 3),
        ("passed", True, True),
    ],
)
def test_numbers_keep_four_significant_digits(metric: str, value: Any, expected: Any) -> None:
    assert round_number(metric, value) == expected


def test_stable_text_sorts_keys_and_keeps_plain_lists_on_one_line() -> None:
    text = dumps_stable({"b": {"shape": ["batch", 16], "z": None}, "a": [{"y": 1, "x": 2}]})
    assert text == (
        "{\n"
        '  "a": [\n'
        "    {\n"
        '      "x": 2,\n'
        '      "y": 1\n'
        "    }\n"
        "  ],\n"
        '  "b": {\n'
        '    "shape": ["batch", 16],\n'
        '    "z": null\n'
        "  }\n"
        "}\n"
    )
    block = build_metadata(_document(RECORDS))
    assert json.loads(dumps_stable(block)) == block
    reordered = build_metadata(_document(list(reversed(RECORDS))))
    assert dumps_stable(reordered) == dumps_stable(block)


def _nan_parity(input_set: str) -> dict[str, Any]:
    record = _parity(input_set, 0.0, 1.0, 0)
    stats = record["parity"]["outputs"][0]
    stats.update(max_abs=None, mean_abs=None, p99_abs=None, rel_l2=None, cosine=None)
    stats.update(argmax_agreement=None, argmax_mismatches=None, nonfinite_in_variant=12)
    record["passed"] = record["parity"]["passed"] = False
    return record


def test_an_input_set_with_nan_makes_the_worst_case_null_never_the_other_sets_numbers() -> None:
    records = [_parity("default", 0.002, 0.999, 1), _nan_parity("padded")]

    view = group_by_graph(records, EXPORT, IO)["encoder"]["variants"]["int8"]
    block = build_metadata(_document(records))["graphs"]["encoder"]["variants"]["int8"]

    worst = view["outputs"]["y"]
    assert (worst["max_abs"], worst["rel_l2"], worst["cosine"]) == (None, None, None)
    assert worst["nonfinite_in_variant"] == 12
    stats = block["outputs"]["y"]
    assert (stats["max_abs"], stats["rel_l2"], stats["cosine"]) == (None, None, None)
    assert stats["nonfinite_in_variant"] == 12
    json.loads(dumps_stable(block))


def test_real_and_synthesized_input_sets_are_never_one_worst_case() -> None:
    real = _parity("sentences", 0.001, 0.9999, 0)
    real["input_set"].update(source="input_data sentences.npz", synthesized=False)
    records = [_parity("default", 0.004, 0.99, 2), real]

    view = group_by_graph(records, EXPORT, IO)["encoder"]["variants"]["int8"]
    block = build_metadata(_document(records))["graphs"]["encoder"]["variants"]["int8"]

    assert view["headline_inputs"] == "real"
    assert view["outputs"]["y"]["max_abs"] == 0.001
    assert view["outputs_by_inputs"]["synthesized"]["outputs"]["y"]["max_abs"] == 0.004
    assert block["outputs"]["y"]["max_abs"] == 0.001
    assert block["outputs_by_inputs"]["synthesized"]["outputs"]["y"]["max_abs"] == 0.004
    assert block["inputs"] == "real"


def test_the_synthesized_flag_decides_the_kind_of_an_input_set() -> None:
    upstream = {"name": "default", "source": "upstream encoder", "seed": 3, "synthesized": True}
    recorded = {"name": "clips", "source": "input_data clips.npz", "seed": 3, "synthesized": False}
    assert input_kind(upstream) == "synthesized"
    assert input_kind(recorded) == "real"
    assert input_kind({"name": "default", "source": "synthesized", "seed": 7}) == "synthesized"
    assert input_kind({"name": "clip-0", "source": "hook conftest.py", "seed": None}) == "real"


def _real(name: str, max_abs: float) -> dict[str, Any]:
    record = _parity(name, max_abs, 0.9999, 0)
    record["nodeid"] = f"export::encoder::parity[int8-{name}]"
    record["input_set"] = {"name": name, "source": "hook conftest.py", "seed": None}
    return record


def test_real_inputs_win_the_headline_and_synthesized_numbers_are_kept_apart() -> None:
    records = [_parity("default", 0.232, 0.999, 0), _real("clip-0", 0.205), _real("clip-1", 0.1)]
    view = group_by_graph(records, EXPORT)["encoder"]["variants"]["int8"]
    assert view["headline_inputs"] == "real"
    assert view["outputs"]["y"]["max_abs"] == 0.205
    assert view["outputs"]["y"]["worst_input_set"] == "clip-0"
    assert view["outputs_by_inputs"]["real"]["input_sets"] == ["clip-0", "clip-1"]
    synthesized = view["outputs_by_inputs"]["synthesized"]
    assert synthesized["input_sets"] == ["default"]
    assert synthesized["outputs"]["y"]["max_abs"] == 0.232
    block = build_metadata(_document(records))["graphs"]["encoder"]["variants"]["int8"]
    assert block["inputs"] == "real" and block["outputs"]["y"]["max_abs"] == 0.205
    assert block["outputs_by_inputs"]["synthesized"]["outputs"]["y"]["max_abs"] == 0.232
    only_synthesized = build_metadata(_document(RECORDS))["graphs"]["encoder"]["variants"]["int8"]
    assert only_synthesized["inputs"] == "synthesized"
    assert "outputs_by_inputs" not in only_synthesized


def test_argmax_positions_count_the_comparisons_behind_the_mismatches() -> None:
    stats = {"shape": [2, 5, 10], "argmax_axis": -1, "argmax_mismatches": 3, "max_abs": 0.1}
    worst = worst_stats([stats, {**stats, "shape": [1, 5, 10], "argmax_mismatches": 1}])
    assert (worst["argmax_mismatches"], worst["argmax_positions"]) == (4, 15)
    kv_cache = {"shape": [1, 4, 7, 8], "argmax_axis": -1, "argmax_mismatches": None}
    assert worst_stats([kv_cache])["argmax_positions"] is None


def test_the_block_carries_each_files_format_and_the_compression_ratio() -> None:
    formats = {
        "encoder.int8.onnx": {
            "ir_version": 8,
            "opset": 17,
            "opset_imports": {"ai.onnx": 17, "com.microsoft": 1},
            "producer": "onnx.quantize 0.1.0",
            "ops_by_domain": {"ai.onnx": {"Add": 2}, "com.microsoft": {"MatMulNBits": 3}},
        }
    }
    document = _document(RECORDS)
    document["graphs"] = group_by_graph(RECORDS, EXPORT, IO, formats=formats)
    int8 = build_metadata(document)["graphs"]["encoder"]["variants"]["int8"]
    assert int8["format"] == {
        "ir_version": 8,
        "opset": 17,
        "opset_imports": {"ai.onnx": 17, "com.microsoft": 1},
        "producer": "onnx.quantize 0.1.0",
        "nodes_by_domain": {"ai.onnx": 2, "com.microsoft": 3},
        "custom_ops": {"com.microsoft": {"MatMulNBits": 3}},
    }
    assert (int8["size_ratio"], int8["compression_ratio"]) == (0.25, 4.0)


def test_sequence_checks_carry_numbers_against_each_reference_and_per_clip_items() -> None:
    clip = {"clip_id": "a", "token_edits": 1, "tokens_equal": False, "transcript_match": False}
    details = {
        **SEQUENCE_DETAILS,
        "reference": "fp32",
        "reference_label": "fp32 ONNX",
        "clip_source": "clips_dir clips",
        "normalization": {"preset": "default", "description": "jiwer ToLowerCase"},
        "dataset": {"type": "audiofolder", "name": "clips", "config": None, "split": None},
        "against": {"pytorch": {"corpus": {"clips": 3, "token_edits": 0}, "clips": []}},
    }
    clip_details = {"clip_id": "a", "clip": clip, "against": {"pytorch": {"clip": clip}}}
    records = [
        _check("sequence", details, graph="pipeline"),
        _check("sequence-clip", clip_details, graph="pipeline"),
    ]
    block = build_metadata(_document(records))
    checks = block["graphs"]["pipeline"]["variants"]["int8"]["checks"]
    sequence = checks["sequence"]
    assert sequence["against"] == {"pytorch": {"clips": 3, "token_edits": 0}}
    assert sequence["about"]["reference"] == "fp32"
    assert sequence["about"]["normalization"] == "jiwer ToLowerCase"
    assert sequence["about"]["dataset"]["type"] == "audiofolder"
    item = checks["sequence-clip"]["items"]["a"]
    assert item["token_edits"] == 1 and item["transcript_match"] is False
    assert item["against"]["pytorch"]["token_edits"] == 1


def test_an_interleaved_timing_reads_its_ratio_from_the_pairs() -> None:
    details = {**LATENCY_DETAILS, "paired": {"median": 0.6, "iqr": 0.05, "ratios": [0.6]}}
    numbers = check_numbers("latency", details)
    assert (numbers["vs_reference"], numbers["vs_reference_iqr"]) == (0.6, 0.05)
