"""Plugin behaviour end to end, through pytester: collection, gates, options, output files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunPytest

EXAMPLE_VARIANT_TESTS = 6  # encoder and classifier, each with fp16, int8 and int4
WEIGHT_TESTS = 6  # weights[<variant>]: one per variant file, on by default


def test_every_variant_of_a_healthy_export_passes(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, plugin_args: list[str]
) -> None:
    result = run("--onnx-dir", str(export_copy), "-m", "parity", "-v", *plugin_args)
    result.assert_outcomes(passed=EXAMPLE_VARIANT_TESTS + WEIGHT_TESTS)
    for graph in ("encoder", "classifier"):
        for variant in ("fp16", "int8", "int4"):
            assert f"export::{graph}::parity[{variant}]" in result.stdout.str()
            assert f"export::{graph}::weights[{variant}]" in result.stdout.str()


def test_header_lists_the_discovered_graphs(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy), "--collect-only")
    result.stdout.fnmatch_lines(["onnxparity: *export (seed 0, providers CPUExecutionProvider*"])
    assert "encoder" in result.stdout.str() and "classifier" in result.stdout.str()


def test_summary_table_shows_each_variant_with_its_worst_gate(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy))
    result.stdout.fnmatch_lines(
        [
            "*onnxparity*",
            "graph*variant*tier*inputs*status*worst gate*",
            "classifier*fp16*fp16*default*PASS*logits.*",
            "encoder*int4*int4*default*PASS*",
        ]
    )


def test_run_without_onnx_dir_leaves_a_plain_project_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_plain():
            assert "onnxruntime" not in sys.modules
            assert "numpy" not in sys.modules
            assert "torch" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "onnxparity:" not in result.stdout.str()
    assert "= onnxparity =" not in result.stdout.str()


def test_damaged_variant_fails_with_metric_limit_worst_element_and_next_step(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import modelkit

    target = export_copy / "encoder.int8.onnx"
    modelkit.damage_initializer(
        export_copy / "encoder.onnx", target, "hidden_proj.weight", mode="scale", factor=3.0
    )
    result = run("--onnx-dir", str(export_copy), "-k", "encoder and int8")
    result.assert_outcomes(failed=2)  # its weights test names the tripled weight too
    result.stdout.fnmatch_lines(
        [
            "*encoder[[]int8[]] vs fp32 on inputs default: * gate(s) failed",
            "*output 'hidden': rel_l2=* violates <= 0.4 (smallest passing limit: rel_l2 = *)",
            "*worst element of 'hidden' at [[]*[]]: reference=* variant=*",
            "*|error| histogram of 'hidden': *",
            "*next step: if this drift is acceptable, raise the limit: --parity-tolerance "
            "encoder/int8/*",
        ]
    )


def test_nan_in_a_variant_output_fails_whatever_the_tolerance(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import modelkit

    modelkit.damage_initializer(
        export_copy / "classifier.onnx",
        export_copy / "classifier_int8.onnx",
        "head.2.bias",
        mode="scale",
        factor=float("nan"),
    )
    result = run(
        "--onnx-dir",
        str(export_copy),
        "-k",
        "classifier and int8",
        "--parity-tolerance",
        "rel_l2=1",
        "--parity-tolerance",
        "min_cosine=0",
    )
    result.assert_outcomes(failed=2)  # the weights test fails on the NaN bias too
    result.stdout.fnmatch_lines(
        ["*NaN/Inf value(s) where the reference is finite (no tolerance can pass this)*"]
    )


def test_json_results_hold_every_measured_number(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, plugin_args: list[str]
) -> None:
    out = pytester.path / "results.json"
    run("--onnx-dir", str(export_copy), "--parity-json", str(out), *plugin_args)
    document = json.loads(out.read_text())
    assert document["schema_version"] == 1
    assert document["summary"] == {"records": 12, "passed": 12, "failed": 0}
    assert document["toolchain"]["packages"]["onnxruntime"]
    assert document["settings"]["inputs"]["seed"] == 0
    encoder_int4 = [
        r for r in document["records"] if r["graph"] == "encoder" and r["variant"] == "int4"
    ]
    record = next(r for r in encoder_int4 if r["kind"] == "parity")
    weights = next(r for r in encoder_int4 if r["kind"] == "check")
    assert weights["check"] == "weights" and weights["details"]["tier"] == "int4"
    assert record["tier"] == "int4"
    assert record["input_set"]["shapes"] == {"features": [4, 16, 16], "lengths": [4]}
    assert record["input_set"]["seed"] is not None
    hidden = next(o for o in record["parity"]["outputs"] if o["output"] == "hidden")
    assert 0 < hidden["rel_l2"] < 0.2
    assert {g["metric"] for g in record["parity"]["gates"]} == {"rel_l2", "min_cosine"}


def test_serial_and_parallel_runs_write_the_same_records(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    documents = []
    for args in ([], ["-n", "2"]):
        out = pytester.path / f"results{len(args)}.json"
        run("--onnx-dir", str(export_copy), "--parity-json", str(out), *args)
        documents.append(json.loads(out.read_text())["records"])
    assert documents[0] == documents[1]


def test_suggested_limits_calibrate_a_folder_config(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    snippet = pytester.path / "suggested.toml"
    run("--onnx-dir", str(export_copy), "--parity-suggest", str(snippet))
    text = snippet.read_text()
    assert '[graphs."encoder".variants."int8".input_sets."default".outputs."hidden"]' in text
    assert "measured" in text
    (export_copy / "parity.toml").write_text(text)
    result = run("--onnx-dir", str(export_copy))
    result.assert_outcomes(passed=EXAMPLE_VARIANT_TESTS + WEIGHT_TESTS)


def test_suggest_gives_a_damaged_variant_no_limits_and_says_why(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import modelkit

    modelkit.damage_initializer(
        export_copy / "encoder.onnx",
        export_copy / "encoder.int8.onnx",
        "hidden_proj.weight",
        mode="scale",
        factor=-1.0,
    )
    snippet = pytester.path / "suggested.toml"

    result = run("--onnx-dir", str(export_copy), "--parity-suggest", str(snippet))

    result.stdout.fnmatch_lines(
        [
            "no limits for encoder/int8: fails weight-space parity (*encoder.int8.onnx: 1 of 8 "
            "weights differ from the reference encoder.onnx*",
            "suggested limits written to *suggested.toml",
        ]
    )
    tables = [line for line in snippet.read_text().splitlines() if line.startswith("[")]
    assert not any('variants."int8"' in line and "encoder" in line for line in tables)
    assert any('"encoder".variants."int4"' in line for line in tables)


def test_suggest_never_replaces_a_hand_written_file_without_force(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    mine = pytester.path / "limits.toml"  # outside the folder: its own parity.toml is an input
    mine.write_text("[tiers.int8]\nrel_l2 = 0.2\n")

    refused = run("--onnx-dir", str(export_copy), "--parity-suggest", str(mine))
    forced = mine.read_text()
    run("--onnx-dir", str(export_copy), "--parity-suggest", str(mine), "--parity-suggest-force")

    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        [
            "*--parity-suggest *limits.toml: exists and was not written by this option*"
            "--parity-suggest-force to replace it"
        ]
    )
    assert forced == "[tiers.int8]\nrel_l2 = 0.2\n"
    assert mine.read_text().startswith("# Suggested by pytest-onnxparity --parity-suggest")


def test_a_folder_config_can_tighten_a_limit_until_it_fails(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "parity.toml").write_text(
        "[graphs.encoder.variants.int4.outputs.logits]\nmax_abs = 1e-9\n"
    )
    result = run("--onnx-dir", str(export_copy))
    result.assert_outcomes(passed=EXAMPLE_VARIANT_TESTS + WEIGHT_TESTS - 1, failed=1)
    result.stdout.fnmatch_lines(["*output 'logits': max_abs=* violates <= 1e-09*"])


def test_sweep_makes_one_test_id_per_size_for_generated_and_user_cases(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.parity(graph="encoder", variant="int8")
        def test_case(parity_case, assert_parity):
            frames = parity_case.inputs.arrays["features"].shape[1]
            assert parity_case.input_set == f"frames={frames}"
            assert_parity(parity_case)
        """
    )
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-sweep",
        "frames=8,31",
        "-k",
        "encoder",
        "-v",
        "test_user.py",
    )
    result.assert_outcomes(passed=8 + 3)  # and the encoder's 3 weights tests
    result.stdout.fnmatch_lines(
        [
            "*test_case?encoder-int8-frames=8? PASSED*",
            "*test_case?encoder-int8-frames=31? PASSED*",
            "*encoder::parity?int8-frames=8? PASSED*",
            "*encoder::parity?int8-frames=31? PASSED*",
        ]
    )


def test_tied_length_input_follows_the_signal_dimension(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "parity.toml").write_text(
        '[graphs.encoder.inputs.lengths]\ntie = "features:1"\n'
    )
    out = pytester.path / "r.json"
    run(
        "--onnx-dir",
        str(export_copy),
        "--parity-dim",
        "frames=23",
        "--parity-json",
        str(out),
    )
    record = next(
        r
        for r in json.loads(out.read_text())["records"]
        if r["graph"] == "encoder" and r["kind"] == "parity"
    )
    assert record["input_set"]["dims"] == {"batch": 4, "frames": 23}
    assert record["input_set"]["shapes"]["features"] == [4, 23, 16]


def test_deterministic_cpu_mode_is_recorded(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    out = pytester.path / "r.json"
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-deterministic",
        "--parity-json",
        str(out),
    )
    result.assert_outcomes(passed=EXAMPLE_VARIANT_TESTS + WEIGHT_TESTS)
    records = json.loads(out.read_text())["records"]
    session = next(r for r in records if r["kind"] == "parity")["session"]
    assert session["deterministic"] is True


def test_user_test_gets_cases_sessions_and_assert_parity(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        import pytest

        @pytest.mark.parity(graph="encoder", variant=["int8", "int4"])
        def test_encoder_variants(parity_case, assert_parity):
            assert parity_case.graph == "encoder"
            assert_parity(parity_case)

        @pytest.mark.parity(graph="classifier", tier="int8", min_argmax_agreement=1.0)
        def test_classifier_top1(parity_case, assert_parity):
            ref = parity_case.reference_outputs()
            var = parity_case.variant_outputs()
            assert_parity(ref, var, tier=parity_case.tier)

        def test_custom_arrays_fail_a_tight_limit(assert_parity):
            ref = {"y": np.zeros(4, dtype=np.float32)}
            var = {"y": np.full(4, 0.5, dtype=np.float32)}
            assert_parity(ref, var, max_abs=0.1)

        def test_sessions_are_shared(parity_session):
            assert parity_session("encoder", "int8") is parity_session("encoder", "int8")
        """
    )
    result = run(
        "--onnx-dir",
        str(export_copy),
        "-p",
        "no:randomly",
        "test_user_test_gets_cases_sessions_and_assert_parity.py",
    )
    # 5 user test cases + the 12 generated ones: --onnx-dir always gates the whole folder.
    result.assert_outcomes(passed=EXAMPLE_VARIANT_TESTS + WEIGHT_TESTS + 4, failed=1)
    result.stdout.fnmatch_lines(
        ["custom[[]custom[]]: * gate(s) failed", "*output 'y': max_abs=0.5 violates <= 0.1*"]
    )


def test_assert_parity_on_an_all_nan_reference_fails_and_records_no_perfect_numbers(
    run: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import numpy as np

        def test_nan_reference(assert_parity):
            ref = {"y": np.full((2, 3), np.nan, dtype=np.float32)}
            var = {"y": np.zeros((2, 3), dtype=np.float32)}
            assert_parity(ref, var, tier="int8", rel_l2=1.0, min_cosine=0.0)
        """
    )
    out = pytester.path / "r.json"

    result = run("--parity-json", str(out))

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "custom[[]custom[]]: 3 gate(s) failed",
            "  output 'y': the reference itself gives 6 NaN/Inf value(s) on these inputs*",
            "  first NaN/Inf of 'y' at [[]0, 0[]]: reference=nan variant=0",
        ]
    )
    (record,) = json.loads(out.read_text())["records"]
    stats = record["parity"]["outputs"][0]
    assert (stats["max_abs"], stats["rel_l2"], stats["cosine"]) == (None, None, None)
    assert stats["nonfinite_in_reference"] == 6 and not record["passed"]


def test_user_parity_tests_skip_without_an_export_folder(
    run: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        def test_needs_export(parity_case):
            pass
        """
    )
    result = run()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*pass --onnx-dir DIR*"])


def test_unknown_marker_keyword_names_it_and_the_allowed_ones(
    run: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parity(max_abz=0.1)
        def test_typo():
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.parity got unknown keyword(s) max_abz; allowed: graph, variant, tier*"]
    )


# --- bad input: every one a clear one-line message naming the file and the fix ------------------


def test_missing_onnx_dir_is_a_usage_error(run: RunPytest, pytester: pytest.Pytester) -> None:
    result = run("--onnx-dir", "does-not-exist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*onnxparity: --onnx-dir *does-not-exist: no such directory*"])


def test_empty_onnx_dir_is_a_usage_error(run: RunPytest, pytester: pytest.Pytester) -> None:
    empty = pytester.mkdir("empty")
    result = run("--onnx-dir", str(empty))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*onnxparity: *empty*"])


def test_file_that_is_not_onnx_fails_its_test_with_the_file_named(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "classifier_int8.onnx").write_text("this is not a model")
    result = run("--onnx-dir", str(export_copy), "-k", "classifier and int8")
    result.assert_outcomes(failed=2)  # its parity and weights tests
    result.stdout.fnmatch_lines(["*classifier_int8.onnx*"])
    assert "Traceback" not in result.stdout.str()


def test_truncated_model_fails_its_test_with_the_file_named(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    model = export_copy / "encoder.int4.onnx"
    model.write_bytes(model.read_bytes()[:500])
    result = run("--onnx-dir", str(export_copy), "-k", "encoder and int4")
    result.assert_outcomes(failed=2)  # its parity and weights tests
    result.stdout.fnmatch_lines(["*encoder.int4.onnx*"])


def test_missing_external_data_fails_with_the_sidecar_named(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import modelkit

    target = export_copy / "classifier_int8.onnx"
    modelkit.save_with_external_data(export_copy / "classifier.onnx", target)
    Path(str(target) + ".data").unlink()
    result = run("--onnx-dir", str(export_copy), "-k", "classifier and int8")
    result.assert_outcomes(failed=2)  # its parity and weights tests
    result.stdout.fnmatch_lines(["*classifier_int8.onnx*external data*"])


def test_external_data_outside_the_folder_is_refused(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, tmp_path: Path
) -> None:
    import onnx

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    model = onnx.load(export_copy / "classifier.onnx")
    onnx.save_model(
        model,
        str(outside / "classifier_int8.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    relocated = onnx.load(outside / "classifier_int8.onnx", load_external_data=False)
    for tensor in relocated.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere/weights.bin"
    onnx.save_model(relocated, str(export_copy / "classifier_int8.onnx"))
    result = run("--onnx-dir", str(export_copy), "-k", "classifier and int8")
    result.assert_outcomes(failed=2)  # its parity and weights tests
    result.stdout.fnmatch_lines(["*classifier_int8.onnx*outside the export folder*"])


def test_variant_with_other_input_names_fails_with_both_named(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import onnx

    model = onnx.load(export_copy / "classifier_int8.onnx")
    old = model.graph.input[0].name
    model.graph.input[0].name = "images"
    for node in model.graph.node:
        node.input[:] = ["images" if name == old else name for name in node.input]
    onnx.save_model(model, str(export_copy / "classifier_int8.onnx"))
    result = run("--onnx-dir", str(export_copy), "-k", "classifier and int8")
    result.assert_outcomes(passed=1, failed=1)  # its weights are still the reference's
    result.stdout.fnmatch_lines(
        ["*classifier_int8.onnx: inputs [[]'images'[]] differ from the reference's [[]'pixels'[]]*"]
    )


def test_variant_with_another_output_dtype_fails(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(export_copy / "classifier_int8.onnx")
    output = model.graph.output[0]
    model.graph.node[-1].output[0] = "logits_float"
    model.graph.node.append(
        helper.make_node("ArgMax", ["logits_float"], [output.name], axis=1, keepdims=1)
    )
    output.type.tensor_type.elem_type = TensorProto.INT64
    onnx.save_model(model, str(export_copy / "classifier_int8.onnx"))
    result = run("--onnx-dir", str(export_copy), "-k", "classifier and int8")
    result.assert_outcomes(passed=1, failed=1)  # its weights are still the reference's
    result.stdout.fnmatch_lines(["*output 'logits': variant dtype int64 cannot be compared*"])


def test_variant_with_an_op_onnxruntime_lacks_fails_to_load(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import onnx
    from onnx import helper

    model = onnx.load(export_copy / "classifier_int8.onnx")
    model.graph.node.insert(
        0, helper.make_node("Frobnicate", ["pixels"], ["unused"], domain="com.example")
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save_model(model, str(export_copy / "classifier_int8.onnx"))
    result = run("--onnx-dir", str(export_copy), "-k", "classifier and int8")
    # The weights test needs no onnxruntime session: it still compares every weight.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*classifier_int8.onnx: onnxruntime cannot load this model*"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("rel_l2=-1", "*must be a finite, non-negative number, got '-1'*"),
        ("rel_l2=lots", "*must be a non-negative number, got 'lots'*"),
        ("rel_l3=0.1", "*unknown tolerance key 'rel_l3'; allowed: max_abs*"),
    ],
)
def test_bad_command_line_tolerance_is_a_usage_error(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, value: str, message: str
) -> None:
    result = run("--onnx-dir", str(export_copy), "--parity-tolerance", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_config_key_names_the_file_and_the_allowed_keys(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "parity.toml").write_text("[graphs.encoder]\nrefrence = 'fp32'\n")
    result = run("--onnx-dir", str(export_copy))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*parity.toml [[]graphs.encoder[]]: unknown key 'refrence'; allowed keys: reference, *"]
    )


def test_negative_tolerance_in_config_is_a_usage_error(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (export_copy / "parity.toml").write_text("[tolerance]\nmax_abs = -0.5\n")
    result = run("--onnx-dir", str(export_copy))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*parity.toml*max_abs must be a finite, non-negative number*"])


def test_dim_for_an_unknown_axis_names_the_known_ones(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy), "--parity-dim", "T=97")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*dimension(s) T given by --parity-dim*named axes: batch (*), frames (*)*"]
    )


def test_pyproject_section_configures_the_run(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.onnxparity]
        seed = 7

        [tool.onnxparity.tiers.int4]
        rel_l2 = 1e-6
        """
    )
    result = run("--onnx-dir", str(export_copy), "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=4 + WEIGHT_TESTS, failed=2)
    result.stdout.fnmatch_lines(["onnxparity: *(seed 7,*"])


def test_plugin_import_stays_light() -> None:
    code = (
        "import sys, pytest_onnxparity.plugin.main;"
        "heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'torch') if m in sys.modules];"
        "print(heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"
