"""Tests for the graph health checks: every check passes a sound graph and fails a broken one."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import modelkit
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.diagnose.coverage import CoverageOptions
from pytest_onnxparity.diagnose.health.config import (
    ALL_CHECKS,
    HealthOptions,
    parse_check_list,
    parse_health_config,
    parse_health_options,
)
from pytest_onnxparity.diagnose.health.run import run_health_check, warning_lines
from pytest_onnxparity.onnxfile.dequantize import dequantize
from pytest_onnxparity.onnxfile.graph import GraphIndex, load_structure
from pytest_onnxparity.onnxfile.weight_forms import locate_forms
from pytest_onnxparity.results.records import CheckResult

WHERE = "pyproject.toml [tool.onnxparity.health]"
RNG = np.random.default_rng(0)


def save_graph(
    path: Path,
    nodes: Sequence[onnx.NodeProto],
    initializers: Mapping[str, np.ndarray] | None = None,
    *,
    inputs: Sequence[tuple[str, int, list[int | str | None]]] = (("x", TensorProto.FLOAT, [2, 4]),),
    outputs: Sequence[tuple[str, int, list[int | str | None]]] = (
        ("y", TensorProto.FLOAT, [None, None]),
    ),
    opset: int = 17,
    extra_opsets: Mapping[str, int] | None = None,
    ir_version: int = 8,
) -> Path:
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in inputs],
        [helper.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in outputs],
        [
            numpy_helper.from_array(np.asarray(value), name)
            for name, value in (initializers or {}).items()
        ],
    )
    opsets = [helper.make_opsetid("", opset)]
    opsets += [
        helper.make_opsetid(domain, version) for domain, version in (extra_opsets or {}).items()
    ]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir_version
    onnx.save(model, path)
    return path


def matmul_graph(path: Path, weight: np.ndarray, bias: np.ndarray | None = None) -> Path:
    """``y = x @ W (+ b)``; x is [batch, K]."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y" if bias is None else "h"], name="mm")]
    initializers = {"W": weight.astype(np.float32)}
    if bias is not None:
        nodes.append(helper.make_node("Add", ["h", "b"], ["y"], name="add"))
        initializers["b"] = bias.astype(np.float32)
    return save_graph(
        path, nodes, initializers, inputs=[("x", TensorProto.FLOAT, [None, weight.shape[0]])]
    )


def check(
    name: str,
    path: Path,
    reference: Path | None = None,
    options: HealthOptions = HealthOptions(),  # noqa: B008 - frozen
    outputs: Mapping[str, np.ndarray] | None = None,
) -> CheckResult:
    result = run_health_check(
        name,
        path,
        graph="g",
        variant="v",
        reference_path=reference,
        options=options,
        run_outputs=None if outputs is None else (lambda: outputs),
    )
    json.dumps(result.to_json(), allow_nan=False)  # every record must travel as plain JSON
    return result


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def test_default_options_run_every_check_and_enforce_no_constraint() -> None:
    options = parse_health_options({}, WHERE)
    assert options == HealthOptions()
    assert options.checks == ALL_CHECKS
    assert (options.opset, options.ir_version, options.allowed_domains) == (None, None, None)


def test_options_read_bounds_a_single_version_and_normalize_the_default_domain() -> None:
    options = parse_health_options(
        {
            "checks": ["checker", "domains"],
            "opset": 20,
            "ir_version": [9, 10],
            "allowed_domains": ["", "ai.onnx.ml"],
            "constant_output_ok": ["lengths"],
            "min_quantized_fraction": 0.9,
        },
        WHERE,
    )
    assert options.checks == ("checker", "domains")
    assert options.opset == (20, 20)
    assert options.ir_version == (9, 10)
    assert options.allowed_domains == ("ai.onnx", "ai.onnx.ml")
    assert options.constant_output_ok == ("lengths",)


def test_unknown_key_is_an_error_naming_the_source_and_every_allowed_key() -> None:
    with pytest.raises(ConfigError) as error:
        parse_health_options({"opsets": [17, 20]}, WHERE)
    message = str(error.value)
    assert message.startswith(f"{WHERE}: unknown key 'opsets'; allowed keys: checks, opset")
    assert "min_quantized_fraction, require_quantized" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"opset": [20, 17]}, "opset must be a version or [min, max] with 1 <= min <= max"),
        ({"opset": "20"}, "opset must be a version or [min, max]"),
        ({"ir_version": [0, 3]}, "ir_version must be a version or [min, max]"),
        ({"opset": [True, 20]}, "opset must be a version"),
        ({"checks": ["checker", "speed"]}, "checks names unknown check 'speed'; choose from"),
        ({"checks": "checker"}, "checks must be a list of strings"),
        ({"allowed_domains": []}, "allowed_domains is empty, which no graph can meet"),
        ({"allowed_domains": "ai.onnx"}, "allowed_domains must be a list of strings"),
        ({"constant_output_ok": "lengths"}, "constant_output_ok must be a list of strings"),
    ],
)
def test_bad_option_values_are_errors_naming_the_key(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^pyproject\.toml") as error:
        parse_health_options(raw, WHERE)
    assert expected in str(error.value)


def test_a_file_takes_the_top_table_then_its_tier_then_its_tag_then_its_graph() -> None:
    config = parse_health_config(
        {
            "opset": 17,
            "allowed_domains": ["ai.onnx"],
            "min_quantized_fraction": 0.5,
            "variants": {
                "int4": {"allowed_domains": ["ai.onnx", "com.microsoft"], "opset": 21},
                "q4f16": {"opset": 20, "require_quantized": ["MatMul"]},
            },
            "graphs": {"decoder": {"opset": 19, "checks": ["checker"]}},
        },
        WHERE,
    )
    assert config.enabled
    encoder_int8 = config.for_file("encoder", "int8", "int8")
    assert encoder_int8.health.opset == (17, 17)
    assert encoder_int8.health.allowed_domains == ("ai.onnx",)
    assert encoder_int8.coverage == CoverageOptions(min_quantized_fraction=0.5)
    encoder_q4 = config.for_file("encoder", "q4f16", "int4")
    assert encoder_q4.health.opset == (20, 20)
    assert encoder_q4.health.allowed_domains == ("ai.onnx", "com.microsoft")
    assert encoder_q4.coverage == CoverageOptions(0.5, ("MatMul",))
    decoder_q4 = config.for_file("decoder", "q4f16", "int4")
    assert (decoder_q4.health.opset, decoder_q4.checks) == ((19, 19), ("checker",))


def test_the_command_line_checks_replace_every_scope_and_none_turns_the_checks_off() -> None:
    raw = {"graphs": {"decoder": {"checks": ["checker"]}}}
    config = parse_health_config(raw, WHERE, checks_override=("opset", "coverage"))
    assert config.for_file("decoder", "fp32", "fp32").checks == ("opset", "coverage")
    assert not parse_health_config(raw, WHERE, checks_override=()).enabled
    assert not parse_health_config(None, WHERE).enabled
    assert parse_health_config({}, WHERE).for_file("g", "fp32", "fp32").checks == ALL_CHECKS
    assert parse_health_config(None, WHERE, checks_override=ALL_CHECKS).enabled


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"graphs": {"enc": {"opsets": 1}}}, "[graphs.enc]: unknown key 'opsets'; allowed keys"),
        ({"variants": {"int4": {"opset": "21"}}}, "[variants.int4]: opset must be a version"),
        ({"graphs": ["enc"]}, "graphs must be a table of graphs.<name> tables"),
        ({"graphs": {"enc": {"graphs": {}}}}, "[graphs.enc]: unknown key 'graphs'"),
    ],
)
def test_bad_scope_tables_are_errors_naming_the_scope_and_key(
    raw: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_health_config(raw, WHERE)
    assert str(error.value).startswith(WHERE)
    assert expected in str(error.value)


def test_scopes_must_name_a_graph_tag_or_tier_of_the_folder() -> None:
    config = parse_health_config({"variants": {"q4": {}}, "graphs": {"encoder": {}}}, WHERE)
    config.check_scopes(["encoder"], ["fp32", "q4"], ["fp32", "int4"])
    with pytest.raises(ConfigError) as error:
        config.check_scopes(["encoder"], ["fp32", "int4"], ["fp32", "int4"])
    assert str(error.value) == (
        f"{WHERE} [variants.q4]: 'q4' is not a variant tag or tier of the export folder; "
        "known: fp32, int4"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", ALL_CHECKS),
        ("none", ()),
        ("checker, opset,checker", ("checker", "opset")),
        ("coverage", ("coverage",)),
    ],
)
def test_the_check_list_option_reads_names_all_and_none(
    text: str, expected: tuple[str, ...]
) -> None:
    assert parse_check_list(text) == expected


@pytest.mark.parametrize(
    ("text", "unknown"), [("chekcer", "'chekcer'"), ("", "''"), ("all,none", "'all'")]
)
def test_an_unknown_name_in_the_check_list_names_it_and_the_known_ones(
    text: str, unknown: str
) -> None:
    with pytest.raises(ValueError) as error:
        parse_check_list(text)
    assert str(error.value) == (
        f"unknown check {unknown}; expected a comma list of checker, opset, domains, "
        "initializers, structure, outputs, coverage, or all, or none"
    )


def test_warning_lines_list_each_health_warning_and_cut_the_rest() -> None:
    def record(check: str, *warnings: str) -> dict[str, object]:
        return {
            "kind": "check",
            "check": check,
            "graph": "g",
            "variant": "fp32",
            "warnings": warnings,
        }

    records = [
        record("health:initializers", "a", "b"),
        record("coverage", "c"),
        record("speed", "not ours"),
        {"kind": "parity", "graph": "g", "variant": "int8"},
    ]
    assert warning_lines(records, limit=2) == [
        "health warnings (3):",
        "  g[fp32] health:initializers: a",
        "  g[fp32] health:initializers: b",
        "  … and 1 more in the records (--parity-json)",
    ]
    assert warning_lines(records[2:]) == []


def test_an_unknown_check_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown health check 'size'"):
        check("size", Path("model.onnx"))


# --------------------------------------------------------------------------------------------
# checker
# --------------------------------------------------------------------------------------------


def test_checker_passes_a_sound_model_stored_with_external_data(tmp_path: Path) -> None:
    source = matmul_graph(tmp_path / "source.onnx", RNG.standard_normal((4, 3)))
    path = modelkit.save_with_external_data(source, tmp_path / "external" / "model.onnx")
    result = check("checker", path)
    assert result.passed, result.message
    assert result.check == "health:checker"
    assert result.details["external_data_problems"] == []


def test_checker_fails_an_unknown_operator_and_names_the_node(tmp_path: Path) -> None:
    path = save_graph(tmp_path / "m.onnx", [helper.make_node("NoSuchOp", ["x"], ["y"], name="n0")])
    result = check("checker", path)
    assert not result.passed
    first_line = result.message.splitlines()[0]
    assert first_line == (
        f"{path}: onnx.checker rejects the model; fix the export or quantization step that wrote it"
    )
    assert "NoSuchOp" in result.message


def test_checker_names_the_fix_for_nodes_out_of_topological_order(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["h"], ["y"], name="second"),
        helper.make_node("Relu", ["x"], ["h"], name="first"),
    ]
    result = check("checker", save_graph(tmp_path / "m.onnx", nodes))
    assert not result.passed
    assert "sort its nodes topologically" in result.message.splitlines()[0]


def test_checker_fails_when_the_external_data_file_is_missing(tmp_path: Path) -> None:
    source = matmul_graph(tmp_path / "source.onnx", RNG.standard_normal((4, 3)))
    path = modelkit.save_with_external_data(source, tmp_path / "external" / "model.onnx")
    (tmp_path / "external" / "model.onnx.data").unlink()
    result = check("checker", path)
    assert not result.passed
    assert "onnx.checker rejects the model" in result.message
    assert "model.onnx.data" in result.message


def test_checker_fails_when_the_external_data_file_is_cut_short(tmp_path: Path) -> None:
    source = matmul_graph(tmp_path / "source.onnx", RNG.standard_normal((64, 64)))
    path = modelkit.save_with_external_data(source, tmp_path / "external" / "model.onnx")
    sidecar = tmp_path / "external" / "model.onnx.data"
    sidecar.write_bytes(sidecar.read_bytes()[:100])
    result = check("checker", path)
    assert not result.passed
    assert "1 tensors point past the end of their external data file" in result.message
    assert "W: needs bytes 0..16384 of model.onnx.data, which has 100" in result.message


def test_checker_fails_a_file_over_the_protobuf_limit_with_the_external_data_fix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "huge.onnx"
    with path.open("wb") as handle:
        handle.truncate(2**31)  # sparse: no disk space used
    result = check("checker", path)
    assert not result.passed
    assert "over protobuf's 2 GiB limit" in result.message
    assert "save_as_external_data=True" in result.message


def test_a_file_that_is_not_protobuf_fails_every_check_that_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "pointer.onnx"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
    for name in ("checker", "opset", "structure"):
        result = check(name, path)
        assert not result.passed, name
        assert str(path) in result.message


# --------------------------------------------------------------------------------------------
# opset and domains
# --------------------------------------------------------------------------------------------


def test_opset_outside_the_bounds_fails_naming_the_opset_and_the_fix(tmp_path: Path) -> None:
    path = save_graph(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["y"])], opset=17)
    result = check("opset", path, options=HealthOptions(opset=(18, 21)))
    assert not result.passed
    assert result.message == (
        f"{path}: ai.onnx opset 17 is outside opset [18, 21]; re-export with an opset from 18 to "
        "21 (torch.onnx.export(..., opset_version=...)) or change opset in "
        "[tool.onnxparity.health]"
    )


def test_ir_version_outside_the_bounds_fails(tmp_path: Path) -> None:
    path = save_graph(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["y"])], ir_version=8)
    result = check("opset", path, options=HealthOptions(opset=(17, 17), ir_version=(10, 10)))
    assert not result.passed
    assert "IR version 8 is outside ir_version [10, 10]" in result.message
    assert "opset 17" not in result.message


def test_opset_within_the_bounds_passes_and_records_every_import(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "m.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        extra_opsets={"com.microsoft": 1},
    )
    result = check("opset", path, options=HealthOptions(opset=(17, 21), ir_version=(8, 10)))
    assert result.passed
    assert result.details["opset_imports"] == {"ai.onnx": 17, "com.microsoft": 1}
    assert result.details["ir_version"] == 8


def test_com_microsoft_node_fails_ai_onnx_only_listing_it_by_name_and_op_type(
    tmp_path: Path,
) -> None:
    nodes = [
        helper.make_node("Gelu", ["x"], ["h"], name="act", domain="com.microsoft"),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    path = save_graph(tmp_path / "m.onnx", nodes, extra_opsets={"com.microsoft": 1})
    result = check("domains", path, options=HealthOptions(allowed_domains=("",)))
    assert not result.passed
    lines = result.message.splitlines()
    assert lines[0].startswith(
        f"{path}: 1 nodes use domain(s) com.microsoft outside allowed_domains ['ai.onnx']"
    )
    assert lines[1:] == ["  act (com.microsoft::Gelu)"]
    assert result.details["offending_nodes"] == [
        {"name": "act", "op_type": "Gelu", "domain": "com.microsoft"}
    ]


def test_domains_pass_unconstrained_and_count_nodes_per_domain(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Gelu", ["x"], ["h"], name="act", domain="com.microsoft"),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    path = save_graph(tmp_path / "m.onnx", nodes, extra_opsets={"com.microsoft": 1})
    result = check("domains", path)
    assert result.passed
    assert result.details["nodes_by_domain"] == {"ai.onnx": 1, "com.microsoft": 1}


# --------------------------------------------------------------------------------------------
# initializers
# --------------------------------------------------------------------------------------------


def test_nan_in_an_initializer_fails_naming_the_tensor_and_its_reader(tmp_path: Path) -> None:
    weight = RNG.standard_normal((4, 3))
    weight[1, 2] = np.nan
    weight[0, 0] = np.inf
    result = check("initializers", matmul_graph(tmp_path / "m.onnx", weight))
    assert not result.passed
    assert "1 float tensors hold NaN or Inf" in result.message
    assert "  W: 1 NaN, 1 Inf of 12 values, read by mm (MatMul)" in result.message
    assert result.details["non_finite"] == [
        {"name": "W", "nan": 1, "inf": 1, "size": 12, "by_design": False}
    ]


def masked_fill_graph(path: Path, fill: np.ndarray) -> Path:
    """``y = where(x > 0, x, fill)``: the single-value fill an exporter writes for masks."""
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["positive"], name="mask"),
        helper.make_node("Where", ["positive", "x", "fill"], ["y"], name="masked_fill"),
    ]
    return save_graph(path, nodes, {"zero": np.float32(0), "fill": fill})


def test_a_single_minus_inf_mask_fill_is_a_warning_in_the_reference_and_its_variants(
    tmp_path: Path,
) -> None:
    reference = masked_fill_graph(tmp_path / "ref.onnx", np.float32(-np.inf))
    result = check("initializers", reference)
    assert result.passed, result.message
    assert result.warnings == (
        f"{reference}: 1 single-value ±Inf constants taken as deliberate mask fills or clamp "
        "bounds (e.g. fill, read by masked_fill (Where))",
    )
    variant = masked_fill_graph(tmp_path / "fp16.onnx", np.float16(-np.inf))
    result = check("initializers", variant, reference)
    assert result.passed, result.message
    assert result.warnings == ()  # the reference's warning covers it
    assert result.details["non_finite"][0]["by_design"]


def test_a_finite_constant_that_overflowed_to_inf_in_the_variant_fails(tmp_path: Path) -> None:
    reference = masked_fill_graph(tmp_path / "ref.onnx", np.float32(-70000.0))
    variant = masked_fill_graph(tmp_path / "fp16.onnx", np.float16(-np.inf))
    result = check("initializers", variant, reference)
    assert not result.passed
    assert "  fill: 0 NaN, 1 Inf of 1 values, read by masked_fill (Where)" in result.message


def test_a_nan_scalar_is_never_taken_as_deliberate(tmp_path: Path) -> None:
    result = check("initializers", masked_fill_graph(tmp_path / "ref.onnx", np.float32(np.nan)))
    assert not result.passed
    assert "1 float tensors hold NaN or Inf" in result.message


def test_an_int8_embedding_gathered_by_quantize_dynamic_is_compared_after_dequantizing(
    tmp_path: Path,
) -> None:
    nodes = [
        helper.make_node("Gather", ["E", "ids"], ["h"], name="embed"),
        helper.make_node("MatMul", ["h", "W"], ["y"], name="proj"),
    ]
    weights = {"E": RNG.standard_normal((10, 4)), "W": RNG.standard_normal((4, 3))}
    reference = save_graph(
        tmp_path / "ref.onnx",
        nodes,
        {name: value.astype(np.float32) for name, value in weights.items()},
        inputs=[("ids", TensorProto.INT64, [None])],
    )
    variant = modelkit.quantize_int8_dynamic(reference, tmp_path / "int8.onnx")
    assert check("initializers", variant, reference).details["compared"] == 2
    model = onnx.load(variant)
    for tensor in model.graph.initializer:
        if tensor.name == "E_scale":
            tensor.CopyFrom(numpy_helper.from_array(np.float32(0), "E_scale"))
    onnx.save(model, variant)
    result = check("initializers", variant, reference)
    assert not result.passed
    assert "  E -> E_quantized as uint8: all zeros, read by embed (Gather)" in result.message


def test_weight_zeroed_in_the_variant_fails_against_the_reference(tmp_path: Path) -> None:
    reference = matmul_graph(tmp_path / "ref.onnx", RNG.standard_normal((4, 3)), np.zeros(3))
    variant = modelkit.damage_initializer(reference, tmp_path / "variant.onnx", "W", mode="zero")
    result = check("initializers", variant, reference)
    assert not result.passed
    assert "1 weights are all-zero, constant or far off where the reference (ref.onnx) varies" in (
        result.message
    )
    assert "  W -> W as float: all zeros, read by mm (MatMul); the reference spans" in (
        result.message
    )


def test_zero_biases_in_reference_and_variant_pass(tmp_path: Path) -> None:
    reference = matmul_graph(tmp_path / "ref.onnx", RNG.standard_normal((4, 3)), np.zeros(3))
    variant = modelkit.convert_fp16(reference, tmp_path / "fp16.onnx")
    result = check("initializers", variant, reference)
    assert result.passed, result.message
    assert result.details["compared"] == 1  # a zero reference tensor cannot collapse


def test_constant_int8_weight_fails_after_dequantizing(tmp_path: Path) -> None:
    reference = matmul_graph(tmp_path / "ref.onnx", RNG.standard_normal((4, 3)))
    nodes = [
        helper.make_node(
            "DequantizeLinear", ["W_quantized", "W_scale", "W_zero_point"], ["W_dq"], name="W_DQ"
        ),
        helper.make_node("MatMul", ["x", "W_dq"], ["y"], name="mm"),
    ]
    initializers = {
        "W_quantized": np.full((4, 3), 5, dtype=np.int8),
        "W_scale": np.float32(0.02),
        "W_zero_point": np.int8(0),
    }
    variant = save_graph(tmp_path / "variant.onnx", nodes, initializers)
    result = check("initializers", variant, reference)
    assert not result.passed
    assert (
        "W -> W_quantized as DequantizeLinear: constant 0.1, read by W_DQ (DequantizeLinear)"
        in (result.message)
    )


def test_near_constant_tensor_rounded_to_one_value_by_fp16_passes(tmp_path: Path) -> None:
    gain = np.array([1.0, 1.0001, 0.99995, 1.00002])
    reference = save_graph(
        tmp_path / "ref.onnx",
        [helper.make_node("Mul", ["x", "gain"], ["y"], name="scale")],
        {"gain": gain.astype(np.float32)},
    )
    variant = modelkit.convert_fp16(reference, tmp_path / "fp16.onnx")
    assert np.ptp(numpy_helper.to_array(onnx.load(variant).graph.initializer[0])) == 0
    result = check("initializers", variant, reference)
    assert result.passed, result.message


def test_all_zero_weight_matrix_of_a_reference_is_a_warning(tmp_path: Path) -> None:
    path = matmul_graph(tmp_path / "ref.onnx", np.zeros((4, 3)), np.zeros(3))
    result = check("initializers", path)
    assert result.passed
    assert result.warnings == (
        f"{path}: weight W is all zeros in the reference (read by mm (MatMul)); check the "
        "checkpoint that was exported",
    )


@pytest.mark.parametrize(("bits", "symmetric"), [(4, True), (4, False), (8, False), (2, False)])
def test_matmulnbits_dequantization_matches_onnxruntime(
    tmp_path: Path, bits: int, symmetric: bool
) -> None:
    import onnxruntime as ort

    k, n = 40, 24  # K not a multiple of the block size: the last block is padded
    weight = RNG.standard_normal((k, n)).astype(np.float32)
    reference = matmul_graph(tmp_path / "ref.onnx", weight)
    quantizer = modelkit.MatMulNBitsQuantizer(
        onnx.load(reference), bits=bits, block_size=16, is_symmetric=symmetric
    )
    quantizer.process()
    variant = tmp_path / "nbits.onnx"
    onnx.save(quantizer.model.model, variant)
    session = ort.InferenceSession(str(variant), providers=["CPUExecutionProvider"])
    from_ort = session.run(None, {"x": np.eye(k, dtype=np.float32)})[0]

    variant_index = GraphIndex.of(load_structure(variant))
    (form,) = locate_forms(GraphIndex.of(load_structure(reference)), variant_index)["W"]
    assert form.storage == "MatMulNBits"
    dequantized = dequantize(form, variant_index, tmp_path)
    assert dequantized is not None
    values, step = dequantized
    np.testing.assert_allclose(values, from_ort, rtol=0, atol=1e-6)
    assert np.max(np.abs(values - weight)) <= step


# --------------------------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------------------------


def test_dangling_input_fails_naming_the_node_its_op_and_the_input(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]
    path = save_graph(tmp_path / "m.onnx", nodes)
    result = check("structure", path)
    assert not result.passed
    assert result.message.splitlines()[:2] == [
        f"{path}: 1 node inputs are dangling; the step that edited the graph dropped their "
        "producers, so re-run it",
        "  input 'ghost' of add (Add): no node, initializer or graph input makes it",
    ]


def test_input_from_an_outer_scope_is_not_dangling(tmp_path: Path) -> None:
    branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="inner")],
        "branch",
        [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0, name="max"),
        helper.make_node("Cast", ["m"], ["c"], to=TensorProto.BOOL, name="cast"),
        helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch, name="if"),
    ]
    result = check("structure", save_graph(tmp_path / "m.onnx", nodes))
    assert result.passed, result.message


def test_unused_initializer_fails_naming_it(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "m.onnx",
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        {"W": np.ones((16, 64), dtype=np.float32)},
    )
    result = check("structure", path)
    assert not result.passed
    assert "1 initializers are unused" in result.message
    assert "  initializer 'W' (float32[16, 64]): no node reads it" in result.message


def test_graph_outputs_that_differ_from_the_reference_fail(tmp_path: Path) -> None:
    reference = save_graph(tmp_path / "ref.onnx", [helper.make_node("Relu", ["x"], ["y"])])
    variant = save_graph(
        tmp_path / "variant.onnx",
        [helper.make_node("Relu", ["x"], ["logits"])],
        inputs=[("x", TensorProto.FLOAT, [2, 4, 1])],
        outputs=[("logits", TensorProto.FLOAT, [None, None])],
    )
    result = check("structure", variant, reference)
    assert not result.passed
    assert f"graph inputs/outputs differ from the reference {reference}" in result.message
    for line in (
        "graph input 'x': rank 3 in the variant, 2 in the reference",
        "graph output 'y': missing; the reference has it",
        "graph output 'logits': not in the reference",
    ):
        assert f"  {line}" in result.message


def test_float16_inputs_of_an_fp16_variant_are_a_warning_not_a_failure(tmp_path: Path) -> None:
    reference = save_graph(tmp_path / "ref.onnx", [helper.make_node("Relu", ["x"], ["y"])])
    variant = save_graph(
        tmp_path / "variant.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        inputs=[("x", TensorProto.FLOAT16, [2, 4])],
        outputs=[("y", TensorProto.FLOAT16, [None, None])],
    )
    result = check("structure", variant, reference)
    assert result.passed, result.message
    assert f"{variant}: graph input 'x': float16 in the variant, float32 in the reference" in (
        result.warnings
    )


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def test_nan_output_fails_with_counts(tmp_path: Path) -> None:
    logits = np.ones((2, 3), dtype=np.float32)
    logits[0, 1] = np.nan
    result = check("outputs", tmp_path / "m.onnx", outputs={"logits": logits})
    assert not result.passed
    assert "  logits: 1 NaN, 0 Inf of 6 values" in result.message


def test_constant_output_fails_unless_listed_in_constant_output_ok(tmp_path: Path) -> None:
    outputs = {"logits": np.full((2, 3), 0.5, dtype=np.float32)}
    result = check("outputs", tmp_path / "m.onnx", outputs=outputs)
    assert not result.passed
    assert "1 outputs are non-finite or constant on the synthesized inputs" in result.message
    assert "  logits: every one of its 6 values is 0.5; if that is by design, list it in" in (
        result.message
    )
    allowed = HealthOptions(constant_output_ok=("logits",))
    assert check("outputs", tmp_path / "m.onnx", options=allowed, outputs=outputs).passed


def test_constant_integer_outputs_and_varying_floats_pass(tmp_path: Path) -> None:
    outputs: dict[str, np.ndarray] = {
        "lengths": np.array([8, 8], dtype=np.int64),
        "logits": RNG.standard_normal((2, 3)).astype(np.float16),
    }
    result = check("outputs", tmp_path / "m.onnx", outputs=outputs)
    assert result.passed
    assert result.details["outputs"]["logits"] == {
        "dtype": "float16",
        "shape": [2, 3],
        "nan": 0,
        "inf": 0,
        "constant": False,
    }


def test_outputs_check_without_a_runner_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs run_outputs"):
        check("outputs", tmp_path / "m.onnx")


# --------------------------------------------------------------------------------------------
# Real exports and onnxruntime's quantizers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["int8", "int4", "fp16"])
def test_onnxruntime_variants_pass_initializers_structure_and_outputs(
    mlp_export: Path, variant: str
) -> None:
    reference = mlp_export / "mlp.onnx"
    path = mlp_export / modelkit.variant_filename("mlp", variant)
    outputs = modelkit.run_onnx(path, modelkit.signature_inputs(path))
    for name in ("initializers", "structure", "outputs"):
        result = check(name, path, reference, outputs=outputs)
        assert result.passed, result.message
        assert not result.warnings
    assert check("initializers", path, reference).details["uncompared"] == []


def test_int4_variant_fails_ai_onnx_only_and_passes_the_checker(mlp_export: Path) -> None:
    path = mlp_export / "mlp_int4.onnx"
    assert check("checker", path).passed
    result = check("domains", path, options=HealthOptions(allowed_domains=("ai.onnx",)))
    assert not result.passed
    assert "  /layers/layers.2/MatMul_Q4 (com.microsoft::MatMulNBits)" in result.message


def test_int4_variant_with_zeroed_block_scales_fails_after_dequantizing(
    mlp_export: Path, tmp_path: Path
) -> None:
    model = onnx.load(mlp_export / "mlp_int4.onnx")
    for tensor in model.graph.initializer:
        if tensor.name == "layers.2.weight_scales":
            zeros = np.zeros_like(numpy_helper.to_array(tensor))
            tensor.CopyFrom(numpy_helper.from_array(zeros, tensor.name))
    broken = tmp_path / "mlp_int4.onnx"
    onnx.save(model, broken)
    result = check("initializers", broken, mlp_export / "mlp.onnx")
    assert not result.passed
    assert (
        "  layers.2.weight -> layers.2.weight_Q4 as MatMulNBits: all zeros, read by "
        "/layers/layers.2/MatMul_Q4 (com.microsoft::MatMulNBits)"
    ) in result.message
