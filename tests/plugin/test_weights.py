"""Weight-space parity wired into the plugin, end to end through pytester: one ``weights[...]``
test per variant file, on by default, run before the graph's parity tests, recorded in the JSON
results, shown in the terminal summary, and configured by ``[weights]`` and
``--parity-weights``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pytest_onnxparity.results.records import schema_path
from tests.conftest import RunPytest

VARIANTS = 6  # encoder and classifier, each with fp16, int8 and int4
STRICT = ("-W", "error", "--strict-markers")


@pytest.fixture
def run(run: RunPytest) -> RunPytest:
    """The shared ``run``, with warnings as errors."""
    return lambda *args: run(*STRICT, *args)


def flip_sign_bits(path: Path, tensor: str) -> None:
    """Write the packed 4-bit weight ``tensor`` as a writer with the wrong sign convention
    would: the top bit of every nibble flipped (two's complement stored as unsigned)."""
    model = onnx.load(path)
    for initializer in model.graph.initializer:
        if initializer.name == tensor:
            packed = numpy_helper.to_array(initializer)
            initializer.CopyFrom(numpy_helper.from_array(packed ^ np.uint8(0x88), tensor))
    onnx.save(model, path)


def records(path: Path) -> list[dict[str, Any]]:
    return [r for r in json.loads(path.read_text())["records"] if r.get("check") == "weights"]


def test_each_variant_gets_a_weights_test_that_runs_before_its_graphs_parity_tests(
    run: Any, export_copy: Path, plugin_args: list[str]
) -> None:
    result = run("--onnx-dir", str(export_copy), "-v", "-p", "no:randomly", *plugin_args)
    result.assert_outcomes(passed=2 * VARIANTS)
    if not plugin_args:
        result.stdout.fnmatch_lines(
            [
                "*export::classifier::weights[[]fp16[]] PASSED*",
                "*export::classifier::weights[[]int4[]] PASSED*",
                "*export::classifier::weights[[]int8[]] PASSED*",
                "*export::classifier::parity[[]fp16[]] PASSED*",
            ]
        )
    result.stdout.fnmatch_lines(
        [
            "*= onnxparity weights =*",
            "graph*variant*tier*weights*failed*unmatched*status*worst",
            "classifier*int4*int4*8*0*0%*PASS*rel_l2 0.0* <= 0.5 (head.*.weight)",
            "encoder*fp16*fp16*8*0*0%*PASS*rel_l2 0.000* <= 0.001 (*)",
        ]
    )


def test_a_sign_flipped_int4_weight_fails_naming_the_weight_and_its_reader(
    run: Any, pytester: pytest.Pytester, export_copy: Path
) -> None:
    flip_sign_bits(export_copy / "encoder.int4.onnx", "hidden_proj.weight_Q4")
    out = pytester.path / "results.json"
    result = run("--onnx-dir", str(export_copy), "-k", "weights", "--parity-json", str(out))
    result.assert_outcomes(passed=VARIANTS - 1, failed=1, deselected=VARIANTS)
    result.stdout.fnmatch_lines(
        [
            "*encoder.int4.onnx: 1 of 8 weights differ from the reference encoder.onnx beyond "
            "their tier's limits (weight space, before any inference); re-quantize from the "
            "reference and check the quantizer's packing, signs, scales and zero points.*",
            "  hidden_proj.weight as hidden_proj.weight_Q4 (MatMulNBits, packed 4-bit, blocks "
            "of 32 along K, tier int4) read by /hidden_proj/MatMul_Q4 "
            "(com.microsoft::MatMulNBits): sign or packing wrong — rel_l2 * > 0.5*",
            "FAILED *export::encoder::weights[[]int4[]]*",
        ]
    )
    result.stdout.fnmatch_lines(["encoder*int4*int4*8*1*0%*FAIL*hidden_proj.weight*"])
    document = json.loads(out.read_text())
    jsonschema.validate(document, json.loads(schema_path().read_text()))
    (failed,) = [r for r in records(out) if not r["passed"]]
    assert failed["variant"] == "int4" and failed["details"]["failed"] == 1
    (weight,) = [w for w in failed["details"]["weights"] if not w["passed"]]
    assert weight["reference"] == "hidden_proj.weight" and weight["rel_l2"] > 0.5
    assert weight["readers"] == ["/hidden_proj/MatMul_Q4 (com.microsoft::MatMulNBits)"]


@pytest.mark.parametrize(
    ("config", "ini", "args", "weights_tests"),
    [
        (None, None, ("--parity-weights", "off"), 0),
        (None, "off", (), 0),
        ("[weights]\nenabled = false\n", None, (), 0),
        ("[weights]\nenabled = false\n", None, ("--parity-weights", "on"), VARIANTS),
        ('[weights]\nskip_variants = ["int4"]\n', None, (), VARIANTS - 2),
    ],
    ids=["option-off", "ini-off", "table-off", "option-over-table", "skip-a-tier"],
)
def test_the_option_the_ini_key_and_the_table_turn_the_tests_off(
    run: Any,
    export_copy: Path,
    config: str | None,
    ini: str | None,
    args: tuple[str, ...],
    weights_tests: int,
) -> None:
    if config is not None:
        (export_copy / "parity.toml").write_text(config)
    if ini is not None:
        args = (*args, "-o", f"parity_weights={ini}")
    result = run("--onnx-dir", str(export_copy), *args)
    result.assert_outcomes(passed=VARIANTS + weights_tests)


def test_tier_limits_from_the_table_tighten_the_gate(run: Any, export_copy: Path) -> None:
    (export_copy / "parity.toml").write_text("[weights.int8]\nrel_l2 = 1e-4\n")
    result = run("--onnx-dir", str(export_copy), "-k", "weights")
    result.assert_outcomes(passed=VARIANTS - 2, failed=2, deselected=VARIANTS)
    result.stdout.fnmatch_lines(
        ["*(MatMulInteger, int8, per tensor, tier int8)*rel_l2 * > 0.0001*"]
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "[weights]\nlimit = 1\n",
            "*parity.toml [[]weights[]]: unknown key 'limit'; allowed keys: enabled, skip, "
            "skip_variants, max_unmatched_fraction, fp32, fp16, bf16, int8, int4",
        ),
        (
            "[weights.int4]\nrel_l2 = -1\n",
            "*parity.toml [[]weights[]] [[]int4[]]: rel_l2 must be a finite, non-negative "
            'number, got -1 (or "off" to stop gating it)',
        ),
        (
            "[weights]\nmax_unmatched_fraction = 2\n",
            "*max_unmatched_fraction must be a number from 0 to 1 (e.g. 0.5), got 2",
        ),
        (
            '[weights]\nskip_variants = ["int2"]\n',
            "*skip_variants names 'int2', not a variant tag or tier of the export folder; "
            "known: fp32, fp16, int4, int8",
        ),
    ],
    ids=["unknown-key", "negative-limit", "fraction", "unknown-variant"],
)
def test_a_bad_weights_table_is_a_usage_error_naming_the_file_and_the_fix(
    run: Any, export_copy: Path, config: str, message: str
) -> None:
    (export_copy / "parity.toml").write_text(config)
    result = run("--onnx-dir", str(export_copy))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_option_value_is_a_usage_error_naming_the_flag(run: Any, export_copy: Path) -> None:
    result = run("--onnx-dir", str(export_copy), "--parity-weights", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--parity-weights: expected on or off, got 'sometimes'*"])


def test_weight_space_parity_never_imports_onnxruntime(export_copy: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pytest_onnxparity.compare.weight_space import compare_weights\n"
        f"report = compare_weights(Path({str(export_copy / 'encoder.onnx')!r}), "
        f"Path({str(export_copy / 'encoder.int4.onnx')!r}), file_tier='int4')\n"
        "assert report.passed and report.comparisons\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
