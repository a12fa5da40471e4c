"""Localization wired into the plugin, through pytester: failure messages, JSON, drift plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Imported once here: pytester's in-process runs forget modules first imported during a run.
import matplotlib.backends.backend_agg
import matplotlib.figure
import matplotlib.ticker  # noqa: F401
import modelkit
import pytest

from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
from pytest_onnxparity.diagnose.localize.records import Localization
from pytest_onnxparity.plugin.localize import LocalizeSettings, draw_plots, summary_lines
from pytest_onnxparity.results.records import ResultCollector
from tests.conftest import RunPytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ENCODER_MATMULS = {"/input_proj/MatMul", "/hidden_proj/MatMul", "/output_proj/MatMul"}


def damage_encoder_int8(export: Path) -> None:
    """The int8 variant becomes the reference with ``hidden_proj``'s weights tripled."""
    modelkit.damage_initializer(
        export / "encoder.onnx",
        export / "encoder.int8.onnx",
        "hidden_proj.weight",
        mode="scale",
        factor=3.0,
    )


def records(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The parity records by graph and variant (the weights checks' records left out)."""
    document = json.loads(path.read_text())
    return {(r["graph"], r["variant"]): r for r in document["records"] if r["kind"] == "parity"}


def test_a_failing_variant_with_auto_localization_names_the_damaged_layer_first(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    damage_encoder_int8(export_copy)
    (export_copy / "parity.toml").write_text("[localize]\nauto = true\n")
    plots, out = pytester.path / "plots", pytester.path / "results.json"
    result = run(
        "--onnx-dir",
        str(export_copy),
        "-k",
        "encoder",
        "--parity-localize-dir",
        str(plots),
        "--parity-json",
        str(out),
    )
    result.assert_outcomes(passed=4, failed=2)  # weights[int8] names the tripled weight too
    result.stdout.fnmatch_lines(
        [
            "*encoder[[]int8[]] vs fp32 on inputs default: * gate(s) failed",
            "*next step: *",
            "localization of 'int8' against the reference of 'encoder' (onnxruntime graph "
            "optimisation level 'disable' for the instrumented runs; 14 tensors matched; "
            "1 batch(es) within * MB; weight-space parity as the prior):",
            "  damaged: 1 node(s) (damaged from 8× the op type's noise, *",
            "  first damaged: '/hidden_proj/MatMul_output_0' from MatMul '/hidden_proj/MatMul' "
            "(depth 20): adds rel_l2 2 on its own; reads 'hidden_proj.weight', failing "
            "weight-space parity; drift rel_l2 2, SQNR -6.0 dB, *",
            "    weight: MatMul '/hidden_proj/MatMul' reads 'hidden_proj.weight' "
            "(float32 [[]32, 32[]]): weight rel_l2 2, fails weight-space parity",
            "  top 1 by damage (error added on its own over the noise):",
            "    1. '/hidden_proj/MatMul_output_0' from MatMul '/hidden_proj/MatMul' "
            "*[[]damaged[]]",
            "  drift first past rel_l2 0.05: '/hidden_proj/MatMul_output_0' from MatMul "
            "'/hidden_proj/MatMul' (depth 20), rel_l2 2",
            f"  drift and damage by depth: {plots / 'encoder.drift.png'}",
        ]
    )
    found = records(out)
    localization = found["encoder", "int8"]["localization"]
    assert localization["first_damaged"] == "/hidden_proj/MatMul_output_0"
    assert localization["weights_checked"] is True
    (source,) = localization["sources"]["/hidden_proj/MatMul_output_0"]
    assert (source["weight"], source["failed"]) == ("hidden_proj.weight", True)
    assert localization["damaged"] == ["/hidden_proj/MatMul_output_0"]
    assert localization["first_past_tolerance"] == "/hidden_proj/MatMul_output_0"
    assert localization["top"] == ["/hidden_proj/MatMul_output_0"]
    assert localization["plot"] == str(plots / "encoder.drift.png")
    assert (plots / "encoder.drift.png").read_bytes().startswith(PNG_MAGIC)
    # auto localizes failing tests only.
    assert "localization" not in found["encoder", "int4"]
    assert "localization" not in found["encoder", "fp16"]


def test_a_failing_variant_is_not_localized_unless_asked(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    damage_encoder_int8(export_copy)
    result = run("--onnx-dir", str(export_copy), "-k", "encoder and int8")
    result.assert_outcomes(failed=2)  # parity and weights
    assert "localization of" not in result.stdout.str()
    assert "onnxparity localize" not in result.stdout.str()


def test_localize_flag_writes_one_plot_per_graph_and_the_json_references_it(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, plugin_args: list[str]
) -> None:
    out = pytester.path / "out" / "results.json"
    result = run(
        "--onnx-dir",
        str(export_copy),
        "--parity-localize",
        "--parity-json",
        str(out),
        *plugin_args,
    )
    result.assert_outcomes(passed=12)  # 6 parity and 6 weights tests
    result.stdout.fnmatch_lines(
        [
            "*= onnxparity localize =*",
            "instrumented runs at onnxruntime graph optimisation level disable; *",
            "classifier/int4 [[]default[]]: no damaged node (most: *); drift first past *",
            f"drift plot written to {out.parent / 'classifier.drift.png'}",
            f"drift plot written to {out.parent / 'encoder.drift.png'}",
        ]
    )
    found = records(out)
    assert len(found) == 6
    for (graph, _), record in found.items():
        plot = Path(record["localization"]["plot"])
        assert plot == out.parent / f"{graph}.drift.png"
        assert plot.read_bytes().startswith(PNG_MAGIC)


def test_healthy_onnxruntime_quantizers_damage_nothing_and_rank_their_quantized_layers_first(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    out = pytester.path / "results.json"
    run(
        "--onnx-dir",
        str(export_copy),
        "-k",
        "encoder and int",
        "--parity-localize",
        "--parity-json",
        str(out),
    )
    found = records(out)
    matched = {
        variant: {d["tensor"]: d for d in found["encoder", variant]["localization"]["matched"]}
        for variant in ("int8", "int4")
    }
    # MatMulNBits quantizes the three MatMuls and nothing else: they add all the error.
    int4 = found["encoder", "int4"]["localization"]
    assert int4["damaged"] == [] and int4["first_damaged"] is None
    assert {matched["int4"][name]["node"] for name in int4["top"][:3]} == ENCODER_MATMULS
    assert matched["int4"][int4["first_past_tolerance"]]["op_type"] == "MatMul"
    # Dynamic int8 quantizes the MatMuls and the Conv: they lead; int8 stays under tolerance.
    int8 = found["encoder", "int8"]["localization"]
    assert int8["damaged"] == []
    assert int8["first_past_tolerance"] is None
    assert {matched["int8"][name]["op_type"] for name in int8["top"][:4]} == {"MatMul", "Conv"}
    # 4-bit weights drift more than 8-bit ones at every quantized layer.
    for name in int8["top"][:3]:
        assert matched["int4"][name]["rel_l2"] > matched["int8"][name]["rel_l2"]


def test_localization_never_changes_the_verdict_or_the_measured_numbers(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    plain, localized = pytester.path / "plain.json", pytester.path / "localized.json"
    for out, extra in ((plain, ()), (localized, ("--parity-localize",))):
        result = run(
            "--onnx-dir",
            str(export_copy),
            "-k",
            "classifier",
            "--parity-json",
            str(out),
            *extra,
        )
        result.assert_outcomes(passed=6)  # 3 parity and 3 weights tests
    before, after = records(plain), records(localized)
    assert before.keys() == after.keys()
    for key, record in after.items():
        assert "localization" in record
        for measured in ("passed", "error", "parity", "input_set", "session"):
            assert record[measured] == before[key][measured]


def test_svg_plots_and_the_optimisation_level_come_from_the_localize_table(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    damage_encoder_int8(export_copy)
    (export_copy / "parity.toml").write_text(
        '[localize]\nauto = true\nplot_format = "svg"\ngraph_optimization_level = "basic"\n'
        "top_n = 2\ntolerance_rel_l2 = 0.5\n"
    )
    plots = pytester.path / "plots"
    result = run(
        "--onnx-dir",
        str(export_copy),
        "-k",
        "encoder and int8",
        "--parity-localize-dir",
        str(plots),
    )
    result.assert_outcomes(failed=2)  # parity and weights
    result.stdout.fnmatch_lines(
        [
            "onnxparity localize: failing parity tests (instrumented runs at graph opt basic "
            "within * MB, damaged from 8× the op type's noise, rel_l2 tolerance 0.5)",
            "*localization of 'int8' against the reference of 'encoder' (onnxruntime graph "
            "optimisation level 'basic' for the instrumented runs; * tensors matched; *):",
            "  first damaged: '/hidden_proj/MatMul_output_0' from MatMul *",
            "  drift first past rel_l2 0.5: '/hidden_proj/MatMul_output_0' from MatMul *",
            f"  drift and damage by depth: {plots / 'encoder.drift.svg'}",
        ]
    )
    assert b"<svg" in (plots / "encoder.drift.svg").read_bytes()


def test_a_sweep_localizes_every_input_set_into_one_plot_per_graph(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    out = pytester.path / "results.json"
    run(
        "--onnx-dir",
        str(export_copy),
        "-k",
        "encoder and int4",
        "--parity-sweep",
        "frames=8,31",
        "--parity-localize",
        "--parity-json",
        str(out),
    )
    document = json.loads(out.read_text())
    localized = [r for r in document["records"] if "localization" in r]
    assert sorted(r["input_set"]["name"] for r in localized) == ["frames=31", "frames=8"]
    assert {r["localization"]["plot"] for r in localized} == {str(out.parent / "encoder.drift.png")}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "tolerence = 0.1",
            "*parity.toml [[]localize[]]: unknown key 'tolerence'; allowed keys: auto, "
            "tolerance_rel_l2, damage_ratio, top_n, memory_mb, *",
        ),
        (
            'graph_optimization_level = "max"',
            "*parity.toml [[]localize[]]: graph_optimization_level must be one of disable, "
            "basic, extended, all, got 'max'",
        ),
        ("auto = 1", "*parity.toml [[]localize[]]: auto must be true or false, got 1"),
    ],
)
def test_a_bad_localize_table_is_a_usage_error_naming_the_key(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, table: str, message: str
) -> None:
    (export_copy / "parity.toml").write_text(f"[localize]\n{table}\n")
    result = run("--onnx-dir", str(export_copy), "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: onnxparity: {message}"])


def test_the_localize_table_may_live_in_pyproject_and_its_errors_name_it(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyprojecttoml("[tool.onnxparity.localize]\ntop_n = 0\n")
    result = run("--onnx-dir", str(export_copy), "--rootdir", str(pytester.path), "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: onnxparity: *pyproject.toml [[]tool.onnxparity.localize[]]: "
            "top_n must be an integer >= 1, got 0"
        ]
    )


def test_a_localize_dir_that_is_a_file_is_a_usage_error(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    taken = pytester.path / "taken"
    taken.write_text("")
    result = run("--onnx-dir", str(export_copy), "--parity-localize-dir", str(taken))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--parity-localize-dir: expected a folder for the drift plots, got *taken*"]
    )


def test_without_matplotlib_the_summary_says_why_no_plot_was_drawn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    collector = ResultCollector()
    collector.add(
        {
            "kind": "parity",
            "nodeid": "export::g::parity[int8]",
            "graph": "g",
            "variant": "int8",
            "input_set": {"name": "default"},
            "localization": Localization("g", "int8", "disable", (), (), (), None).to_json(),
        }
    )
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    outcome = draw_plots(
        collector, LocalizeSettings(LocalizeOptions(), every_test=True), tmp_path / "r.json"
    )
    assert outcome.written == []
    assert outcome.problem is not None
    assert outcome.problem.endswith("pip install matplotlib")
    assert collector.records[0]["localization"]["plot"] is None
    assert summary_lines(collector.records)[1] == (
        "g/int8 [default]: no damaged node; drift first past rel_l2 0.05: none"
    )
