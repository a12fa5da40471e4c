"""Health and coverage checks wired into the plugin, end to end through pytester.

Each check has a run where one broken file must fail it, with the message checked; the healthy
example passes every check, and the records are the same serially and on two xdist workers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import modelkit
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.conftest import RunPytest

EXAMPLE_FILES = 8  # encoder and classifier: fp32 reference, fp16, int8, int4
HEALTH_CHECKS = 6
COVERED_VARIANTS = 6  # every variant but the references is stored narrower
PARITY_TESTS = 6
WEIGHT_TESTS = 6  # weights[<variant>]: one per variant file, on by default


def health_config(export: Path, text: str) -> None:
    """Write the export folder's ``parity.toml`` (its ``[health]`` table turns the checks on)."""
    (export / "parity.toml").write_text(text)


def records(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["records"])


# --------------------------------------------------------------------------------------------
# A healthy export, selection and switching the checks on and off
# --------------------------------------------------------------------------------------------


def test_a_healthy_export_passes_every_health_and_coverage_test_and_prints_the_coverage_table(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy), "--parity-health-checks", "all", "-v")
    health_tests = EXAMPLE_FILES * HEALTH_CHECKS + COVERED_VARIANTS
    result.assert_outcomes(passed=PARITY_TESTS + WEIGHT_TESTS + health_tests)
    result.stdout.fnmatch_lines(
        [
            "*export::classifier::coverage[[]int8[]] PASSED*",
            "*export::encoder::health-checker[[]fp32[]] PASSED*",
            "*export::encoder::health-outputs[[]int4[]] PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*= onnxparity health =*",
            "graph*variant*op type*weights*quantized*as*weight parity*not quantized",
            "classifier*int4*Conv*2*0 (0%)*-*features.0.weight, features.3.weight",
            "classifier*int4*MatMul*2*2 (100%)*MatMulNBits=2*ok, rel_l2 <= 0.0*-",
            "classifier*int4*all*4*2 (50%)",
            "classifier*int8*Conv*2*2 (100%)*ConvInteger=2*-",
            "encoder*fp16*MatMul*3*3 (100%)*float16=3*-",
            "encoder*int8*MatMul*3*3 (100%)*MatMulInteger=3*-",
        ]
    )


def test_health_checks_are_off_until_a_health_table_or_the_option_asks_for_them(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    run("--onnx-dir", str(export_copy)).assert_outcomes(passed=PARITY_TESTS + WEIGHT_TESTS)
    health_config(export_copy, "[health]\n")
    result = run("--onnx-dir", str(export_copy), "-k", "health- or coverage[")
    result.assert_outcomes(
        passed=EXAMPLE_FILES * HEALTH_CHECKS + COVERED_VARIANTS,
        deselected=PARITY_TESTS + WEIGHT_TESTS,
    )
    result = run("--onnx-dir", str(export_copy), "--parity-health-checks", "none")
    result.assert_outcomes(passed=PARITY_TESTS + WEIGHT_TESTS)


def test_the_option_picks_the_checks_and_parity_marker_selects_them_by_name(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-health-checks",
        "opset, coverage",
        "-m",
        "parity",
        "-k",
        "health-",
        "-v",
    )
    result.assert_outcomes(
        passed=EXAMPLE_FILES, deselected=PARITY_TESTS + WEIGHT_TESTS + COVERED_VARIANTS
    )
    result.stdout.fnmatch_lines(["*export::classifier::health-opset[[]fp16[]] PASSED*"])
    assert "health-checker" not in result.stdout.str()


def test_a_graph_table_narrows_the_checks_of_that_graph_only(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    health_config(export_copy, '[health.graphs.classifier]\nchecks = ["checker"]\n')
    result = run("--onnx-dir", str(export_copy), "-k", "health- or coverage[")
    encoder_tests = 4 * HEALTH_CHECKS + 3
    result.assert_outcomes(passed=encoder_tests + 4, deselected=PARITY_TESTS + WEIGHT_TESTS)


# --------------------------------------------------------------------------------------------
# Each check fails on a broken file, with its message
# --------------------------------------------------------------------------------------------


def test_an_fp16_variant_left_out_of_topological_order_fails_the_checker_with_the_fix(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(export_copy / "classifier.onnx"), keep_io_types=True)
    onnx.save(model, export_copy / "classifier_fp16.onnx")
    result = run("--onnx-dir", str(export_copy), "--parity-health-checks", "checker")
    # The wire-format pre-check refuses the file before onnxruntime loads it: its parity and
    # weights tests fail with the same line as its checker test.
    result.assert_outcomes(passed=PARITY_TESTS + WEIGHT_TESTS + EXAMPLE_FILES - 3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*classifier_fp16.onnx: not a valid ONNX graph (node * reads * before * makes it: "
            "the nodes are not in topological order); sort its nodes topologically "
            "(onnxruntime.transformers.onnx_model.OnnxModel(model).topological_sort(), then save)*",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "FAILED *export::classifier::health-checker[[]fp16[]]*",
            "FAILED *export::classifier::parity[[]fp16[]]*",
            "FAILED *export::classifier::weights[[]fp16[]]*",
        ]
    )


def test_a_variant_saved_at_another_opset_fails_the_released_opset(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    path = export_copy / "classifier_int8.onnx"
    model = onnx.load(path)
    model.opset_import[0].version = 21
    onnx.save(model, path)
    health_config(export_copy, '[health]\nchecks = ["opset"]\nopset = 17\nir_version = [8, 10]\n')
    result = run("--onnx-dir", str(export_copy), "-k", "health-")
    result.assert_outcomes(passed=EXAMPLE_FILES - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*classifier_int8.onnx: ai.onnx opset 21 is outside opset [[]17, 17[]]; re-export "
            "with an opset from 17 to 17 (torch.onnx.export(..., opset_version=...)) or change "
            "opset in [[]tool.onnxparity.health[]]"
        ]
    )


def test_com_microsoft_nodes_fail_an_ai_onnx_only_release_unless_their_tier_allows_them(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    config = '[health]\nchecks = ["domains"]\nallowed_domains = ["ai.onnx"]\n'
    health_config(export_copy, config)
    result = run("--onnx-dir", str(export_copy), "-k", "health-")
    result.assert_outcomes(passed=EXAMPLE_FILES - 2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*encoder.int4.onnx: 3 nodes use domain(s) com.microsoft outside allowed_domains "
            "[[]'ai.onnx'[]]; produce the variant without those operators or allow the domain "
            "in [[]tool.onnxparity.health[]] allowed_domains (for this variant only: "
            "[[]tool.onnxparity.health.variants.int4[]])",
            "  /input_proj/MatMul_Q4 (com.microsoft::MatMulNBits)",
            "  /hidden_proj/MatMul_Q4 (com.microsoft::MatMulNBits)",
        ]
    )
    health_config(
        export_copy,
        config + '[health.variants.int4]\nallowed_domains = ["ai.onnx", "com.microsoft"]\n',
    )
    run("--onnx-dir", str(export_copy), "-k", "health-").assert_outcomes(passed=EXAMPLE_FILES)


def test_a_weight_zeroed_in_a_variant_fails_the_initializers_check(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    modelkit.damage_initializer(
        export_copy / "encoder.onnx", export_copy / "encoder.int8.onnx", "hidden_proj.weight"
    )
    result = run("--onnx-dir", str(export_copy), "--parity-health-checks", "initializers")
    # The parity and weights tests of the zeroed variant fail too.
    result.assert_outcomes(passed=PARITY_TESTS - 1 + WEIGHT_TESTS - 1 + EXAMPLE_FILES - 1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*encoder.int8.onnx: 1 weights are all-zero, constant or far off where the reference "
            "(encoder.onnx) varies, after dequantizing; re-run the quantizer and check its "
            "scales, zero points and packing (the weights test compares every weight against "
            "its tier's limits)",
            "  hidden_proj.weight -> hidden_proj.weight as float: all zeros, read by "
            "/hidden_proj/MatMul (MatMul); the reference spans [[]*, *[]]",
        ]
    )


def test_an_all_zero_weight_matrix_in_the_reference_is_a_warning_in_the_summary(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, tmp_path: Path
) -> None:
    reference = export_copy / "encoder.onnx"
    zeroed = modelkit.damage_initializer(reference, tmp_path / "zeroed.onnx", "conv.weight")
    reference.write_bytes(zeroed.read_bytes())
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-health-checks",
        "initializers",
        "-k",
        "health-",
    )
    result.assert_outcomes(passed=EXAMPLE_FILES)
    result.stdout.fnmatch_lines(
        [
            "health warnings (1):",
            "  encoder[[]fp32[]] health:initializers: *encoder.onnx: weight conv.weight is all "
            "zeros in the reference (read by /conv/Conv (Conv)); check the checkpoint that was "
            "exported",
        ]
    )


def test_an_unused_initializer_and_another_output_type_fail_the_structure_check(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import numpy as np
    from onnx import TensorProto

    path = export_copy / "classifier_int8.onnx"
    model = onnx.load(path)
    model.graph.initializer.append(
        numpy_helper.from_array(np.ones((16, 64), np.float32), "stale.weight")
    )
    output = model.graph.output[0]
    model.graph.node[-1].output[0] = "logits_float"
    model.graph.node.append(
        helper.make_node("ArgMax", ["logits_float"], [output.name], axis=1, keepdims=1)
    )
    output.type.tensor_type.elem_type = TensorProto.INT64
    onnx.save(model, path)
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-health-checks",
        "structure",
        "-k",
        "health-",
    )
    result.assert_outcomes(passed=EXAMPLE_FILES - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*classifier_int8.onnx: 1 initializers are unused; they bloat the file*",
            "  initializer 'stale.weight' (float32[[]16, 64[]]): no node reads it",
            "*classifier_int8.onnx: graph inputs/outputs differ from the reference "
            "*classifier.onnx; keep the reference's signature when making the variant*",
            "  graph output 'logits': int64 in the variant, float32 in the reference",
        ]
    )


def test_a_variant_whose_output_collapsed_to_a_constant_fails_the_outputs_check(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, tmp_path: Path
) -> None:
    no_weight = modelkit.damage_initializer(
        export_copy / "classifier.onnx", tmp_path / "no_weight.onnx", "head.2.weight"
    )
    modelkit.damage_initializer(no_weight, export_copy / "classifier_int8.onnx", "head.2.bias")
    config = '[health]\nchecks = ["outputs"]\n'
    health_config(export_copy, config)
    result = run("--onnx-dir", str(export_copy), "-k", "health-")
    result.assert_outcomes(passed=EXAMPLE_FILES - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*classifier_int8.onnx: 1 outputs are non-finite or constant on the synthesized "
            "inputs; a collapsed graph (zeroed weights, a broken quantizer, fp16 overflow)*",
            "  logits: every one of its 40 values is 0; if that is by design, list it in "
            "constant_output_ok",
        ]
    )
    health_config(
        export_copy, config + '[health.graphs.classifier]\nconstant_output_ok = ["logits"]\n'
    )
    run("--onnx-dir", str(export_copy), "-k", "health-").assert_outcomes(passed=EXAMPLE_FILES)


def test_conv_weights_left_float_by_matmulnbits_fail_the_coverage_gates(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    health_config(
        export_copy,
        '[health]\nchecks = ["coverage"]\nmin_quantized_fraction = 0.6\n'
        '[health.variants.int8]\nrequire_quantized = ["MatMul", "Conv"]\n',
    )
    result = run("--onnx-dir", str(export_copy), "-k", "coverage[")
    result.assert_outcomes(passed=COVERED_VARIANTS - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*classifier_int4.onnx: 2/4 weight tensors quantized (50%), below "
            "min_quantized_fraction 0.6; quantize these weights (check the quantizer's "
            "op_types_to_quantize / nodes_to_exclude) or relax the gate in "
            "[[]tool.onnxparity.health[]]",
            "  features.0.weight: float, read by /features/features.0/Conv (Conv)",
            "  features.3.weight: float, read by /features/features.3/Conv (Conv)",
            "",
            "op type*weights*quantized*as*not quantized",
        ]
    )
    health_config(export_copy, '[health]\nchecks = ["coverage"]\nrequire_quantized = ["Conv"]\n')
    result = run("--onnx-dir", str(export_copy), "-k", "coverage[")
    result.assert_outcomes(passed=COVERED_VARIANTS - 2, failed=2)
    result.stdout.fnmatch_lines(
        ["*encoder.int4.onnx: require_quantized: 1/1 Conv weights not quantized; quantize*"]
    )


def test_a_file_discovery_could_not_read_fails_each_of_its_checks_with_the_reason(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "classifier_int8.onnx").write_text("this is not a model")
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-health-checks",
        "all",
        "-k",
        "classifier and int8",
    )
    result.assert_outcomes(failed=1 + HEALTH_CHECKS + 1 + 1)  # parity, health, coverage, weights
    unreadable = (
        "classifier_int8.onnx: not a readable ONNX model (corrupt protobuf); re-export it or "
        "remove it from the folder"
    )
    result.stdout.fnmatch_lines(
        [
            "*_ classifier::health-checker[[]int8[]] _*",
            unreadable,
            "*_ classifier::coverage[[]int8[]] _*",
            unreadable,
        ]
    )


def test_variants_of_an_unreadable_reference_fail_the_checks_that_compare_with_it(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "encoder.onnx").write_text("")
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-health-checks",
        "structure,checker",
        "-k",
        "encoder and int4 and health-",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ encoder::health-structure[[]int4[]] _*",
            "encoder.int4.onnx cannot be compared with its reference encoder.onnx: encoder.onnx: "
            "not a readable ONNX model (empty file); re-export it or remove it from the folder",
        ]
    )


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def test_json_records_hold_the_coverage_of_dynamic_qdq_and_matmulnbits_variants(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    modelkit.quantize_qdq_static(
        export_copy / "classifier.onnx", export_copy / "classifier_int8_qdq.onnx"
    )
    out = pytester.path / "results.json"
    run(
        "--onnx-dir",
        str(export_copy),
        "--parity-health-checks",
        "coverage,domains",
        "--parity-json",
        str(out),
    )
    coverage = {
        (r["graph"], r["variant"]): r["details"]
        for r in records(out)
        if r.get("check") == "coverage"
    }

    def forms(graph: str, variant: str) -> dict[str, dict[str, int]]:
        return {row["op_type"]: row["quantized_as"] for row in coverage[graph, variant]["rows"]}

    assert forms("classifier", "int8") == {
        "Conv": {"ConvInteger": 2},
        "MatMul": {"MatMulInteger": 2},
    }
    assert forms("classifier", "int8_qdq") == {
        "Conv": {"DequantizeLinear": 2},
        "MatMul": {"DequantizeLinear": 2},
    }
    assert forms("encoder", "int4") == {"Conv": {}, "MatMul": {"MatMulNBits": 3}}
    assert coverage["encoder", "int4"]["fraction"] == 0.75
    assert coverage["encoder", "int4"]["rows"][0]["float_names"] == ["conv.weight"]
    domains = next(
        r
        for r in records(out)
        if r.get("check") == "health:domains" and (r["graph"], r["variant"]) == ("encoder", "int4")
    )
    assert domains["kind"] == "check"
    assert domains["details"]["nodes_by_domain"]["com.microsoft"] == 3


def test_serial_and_parallel_runs_write_the_same_health_records(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    documents = []
    for args in ([], ["-n", "2"]):
        out = pytester.path / f"results{len(args)}.json"
        run(
            "--onnx-dir",
            str(export_copy),
            "--parity-health-checks",
            "all",
            "--parity-json",
            str(out),
            *args,
        )
        documents.append(records(out))
    assert documents[0] == documents[1]
    checks = {r["check"] for r in documents[0] if r["kind"] == "check"}
    assert checks == {
        "coverage",
        "weights",
        *(f"health:{name}" for name in ("checker", "opset", "domains", "initializers")),
        *(f"health:{name}" for name in ("structure", "outputs")),
    }


# --------------------------------------------------------------------------------------------
# Usage errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "[health]\nopsets = 17\n",
            "*parity.toml [[]health[]]: unknown key 'opsets'; allowed keys: checks, opset, "
            "ir_version, allowed_domains, constant_output_ok, min_quantized_fraction, "
            "require_quantized, variants, graphs",
        ),
        (
            "[health.graphs.encodr]\nopset = 17\n",
            "*parity.toml [[]health[]] [[]graphs.encodr[]]: 'encodr' is not a graph of the "
            "export folder; known: classifier, encoder",
        ),
        (
            "[health.variants.int4]\nallowed_domain = ['com.microsoft']\n",
            "*parity.toml [[]health[]] [[]variants.int4[]]: unknown key 'allowed_domain'*",
        ),
        (
            "[health]\nmin_quantized_fraction = 90\n",
            "*parity.toml [[]health[]]: min_quantized_fraction must be a number from 0 to 1*",
        ),
    ],
    ids=["unknown-key", "unknown-graph", "scope-key", "bad-value"],
)
def test_a_bad_health_table_is_a_usage_error_naming_the_key(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, table: str, message: str
) -> None:
    health_config(export_copy, table)
    result = run("--onnx-dir", str(export_copy))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_pyproject_health_table_is_named_in_its_errors(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyprojecttoml('[tool.onnxparity.health]\nchecks = ["checkr"]\n')
    result = run("--onnx-dir", str(export_copy), "--rootdir", str(pytester.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*pyproject.toml [[]tool.onnxparity.health[]]: checks names unknown check 'checkr'; "
            "choose from checker, opset, domains, initializers, structure, outputs, coverage"
        ]
    )


def test_an_unknown_check_on_the_command_line_is_a_usage_error(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy), "--parity-health-checks", "chekcer")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--parity-health-checks: unknown check 'chekcer'; expected a comma list of checker*"]
    )
