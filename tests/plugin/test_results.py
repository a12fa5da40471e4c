"""Results end to end, through pytester: the schema, serial and xdist runs merged into the same
files, the atomic write, the metadata block and its Markdown, baselines and the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_onnxparity.results.records import schema_path
from tests.conftest import RunPytest

MODEL_FILES = 8  # encoder and classifier: the fp32 reference and fp16, int8, int4 each


@pytest.fixture(autouse=True)
def no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI running this suite must not get our test runs in its own step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def outputs(pytester: pytest.Pytester, name: str) -> list[str]:
    folder = pytester.path / name
    return [
        "--parity-json",
        str(folder / "results.json"),
        "--parity-metadata",
        str(folder / "metadata.json"),
        "--parity-markdown",
        str(folder / "parity.md"),
    ]


def without_timings(document: Any) -> Any:
    """The document less what differs from run to run: the date, the run section (workers,
    durations) and the seconds per variant."""
    if isinstance(document, dict):
        return {
            key: without_timings(value)
            for key, value in document.items()
            if key not in ("created", "run", "duration_s", "command_line")
        }
    if isinstance(document, list):
        return [without_timings(value) for value in document]
    return document


def damage_encoder_int8(export: Path, factor: float) -> None:
    """Scale one weight of encoder.int8: still inside its tier's limits, but further off."""
    import modelkit

    modelkit.damage_initializer(
        export / "encoder.onnx",
        export / "encoder.int8.onnx",
        "hidden_proj.weight",
        mode="scale",
        factor=factor,
    )


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


def test_results_file_validates_against_the_shipped_schema(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    out = pytester.path / "results.json"
    args = ["--onnx-dir", str(export_copy), "--parity-json", str(out)]
    result = run(*args, "--parity-health-checks", "all")
    assert result.ret == pytest.ExitCode.OK
    document = json.loads(out.read_text())
    validate(document)
    kinds = {(r["kind"], r.get("check", "").split(":")[0]) for r in document["records"]}
    assert kinds >= {("parity", ""), ("check", "health"), ("check", "coverage")}
    int4 = document["graphs"]["encoder"]["variants"]["int4"]
    assert int4["status"] == "passed"
    assert int4["input_sets"]["default"]["shapes"] == {"features": [4, 16, 16], "lengths": [4]}
    assert {g["metric"] for g in int4["gates"]} == {"rel_l2", "min_cosine"}
    assert 0 < int4["outputs"]["hidden"]["rel_l2"] < 0.2
    assert int4["checks"]["coverage"]["numbers"]["weights"] == 4
    io = document["graphs"]["encoder"]["io"]
    assert [spec["name"] for spec in io["inputs"]] == ["features", "lengths"]
    assert document["toolchain"]["packages"]["onnxruntime"]
    command_line = document["command_line"]
    assert f"--onnx-dir={export_copy}" in command_line


def test_serial_and_parallel_runs_write_the_same_files_opening_each_session_once(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    # --dist loadscope: one graph's tests on one worker (see docs/results.md on loadgroup).
    # Both in fresh processes (-n 0 runs serially in a subprocess): the toolchain lists the
    # optional packages a run imported, and an in-process run shares this process's imports.
    runs = {
        "serial": ("-n", "0"),
        "parallel": ("-n", "2", "--dist", "loadscope"),
    }
    for name, args in runs.items():
        result = run("--onnx-dir", str(export_copy), *outputs(pytester, name), *args)
        assert result.ret == pytest.ExitCode.OK
    read = {name: pytester.path / name for name in runs}
    serial, parallel = (json.loads((read[n] / "results.json").read_text()) for n in runs)
    validate(parallel)
    assert without_timings(serial) == without_timings(parallel)
    assert len(serial["records"]) == 12  # 6 parity, 6 weights
    for name in ("metadata.json", "parity.md"):
        assert (read["serial"] / name).read_text() == (read["parallel"] / name).read_text()
    assert serial["run"]["workers"] == {"main": {"sessions_opened": MODEL_FILES}}
    assert not serial["run"]["distributed"] and parallel["run"]["distributed"]
    assert set(parallel["run"]["workers"]) == {"gw0", "gw1"}
    assert parallel["run"]["sessions_opened"] == MODEL_FILES
    assert set(parallel["run"]["durations_s"]) == {r["nodeid"] for r in parallel["records"]}


def test_interrupted_write_leaves_the_previous_results_file_whole(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    out = pytester.path / "results.json"
    run("--onnx-dir", str(export_copy), "--parity-json", str(out))
    previous = out.read_text()
    # Ctrl-C lands after the new document is in the temp file, before it replaces the old one.
    pytester.makeconftest(
        """
        import os

        def interrupted(fd):
            raise KeyboardInterrupt

        os.fsync = interrupted
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--onnx-dir={export_copy}", "--parity-json", str(out)
    )
    assert result.ret != pytest.ExitCode.OK
    assert "KeyboardInterrupt" in result.stdout.str() + result.stderr.str()
    assert out.read_text() == previous
    assert sorted(p.name for p in pytester.path.iterdir() if p.name.startswith(".results")) == []


def test_metadata_block_and_markdown_tables_describe_every_graph_and_variant(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = run("--onnx-dir", str(export_copy), *outputs(pytester, "out"))
    result.stdout.fnmatch_lines(
        [
            # Paths inside the working folder are shown relative to it.
            f"parity metadata written to {Path('out', 'metadata.json')}",
            f"markdown written to {Path('out', 'parity.md')}",
            f"markdown appended to {step_summary} (GITHUB_STEP_SUMMARY)",
        ]
    )
    block = json.loads((pytester.path / "out" / "metadata.json").read_text())
    assert block["schema"] == "pytest-onnxparity/metadata"
    encoder = block["graphs"]["encoder"]
    assert encoder["inputs"]["features"] == {"dtype": "float32", "shape": ["batch", "frames", 16]}
    assert encoder["reference"]["file"] == "encoder.onnx"
    assert sorted(encoder["variants"]) == ["fp16", "int4", "int8"]
    int8 = encoder["variants"]["int8"]
    assert int8["status"] == "passed" and int8["file"] == "encoder.int8.onnx"
    assert int8["limits"]["hidden"] == {"min_cosine": 0.92, "rel_l2": 0.4}
    assert set(int8["outputs"]["logits"]) >= {"max_abs", "rel_l2", "cosine", "argmax_mismatches"}
    assert block["toolchain"]["onnxruntime"] and block["toolchain"]["providers"]
    markdown = (pytester.path / "out" / "parity.md").read_text()
    lines = pytest.LineMatcher(markdown.splitlines())
    lines.fnmatch_lines(
        [
            "## ONNX parity",
            "### Parity per graph × variant",
            "| graph | variant | tier | size | status | inputs | output | max_abs | mean_abs *",
            "| classifier | fp16 | fp16 | * kB (1.83x smaller) | ✅ pass | synthesized: default "
            "| logits | * |",
            "| encoder | int8 | int8 | * | ✅ pass | synthesized: default | hidden | * |",
            "### Graph inputs and outputs",
            "| encoder | input | features | float32 | [[]batch, frames, 16[]] |",
            "Measured with pytest-onnxparity * · Python * · onnxruntime *",
        ]
    )
    assert step_summary.read_text() == "earlier step\n" + markdown + "\n"


def test_a_hook_edits_the_metadata_block_before_it_is_written(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makeconftest(
        """
        def pytest_onnxparity_update_metadata(metadata, config):
            metadata["model"] = "org/tiny@v2"
            del metadata["toolchain"]["cpu"]
        """
    )
    out = pytester.path / "metadata.json"
    run("--onnx-dir", str(export_copy), "--parity-metadata", str(out))
    block = json.loads(out.read_text())
    assert block["model"] == "org/tiny@v2"
    assert "cpu" not in block["toolchain"]
    # Keys are written sorted, so the edit lands in a stable place.
    assert list(block) == sorted(block)


def test_ini_keys_write_the_files_relative_to_the_rootdir(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makeini(
        f"""
        [pytest]
        parity_onnx_dir = {export_copy}
        parity_metadata = card/metadata.json
        parity_markdown = card/parity.md
        """
    )
    run("-q")
    assert json.loads((pytester.path / "card" / "metadata.json").read_text())["graphs"]
    assert (pytester.path / "card" / "parity.md").read_text().startswith("## ONNX parity")


def test_summary_counts_tests_and_sessions_and_says_where_files_went(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    out = pytester.path / "results.json"
    result = run("--onnx-dir", str(export_copy), "--parity-json", str(out))
    result.stdout.fnmatch_lines(
        [
            "*= onnxparity =*",
            "graph*variant*tier*inputs*status*worst gate*",
            "encoder*int4*int4*default*PASS*hidden.rel_l2 * <= 0.55",
            f"6 parity tests (6 passed), 6 checks (6 passed); {MODEL_FILES} sessions opened "
            f"(main: {MODEL_FILES})",
            "results written to results.json",
        ]
    )


def test_a_regressed_variant_fails_the_session_and_each_regression_is_listed(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    # Weight-space parity would fail the 5% rescale on its own; this test is about the baseline.
    weights_off = ("--parity-weights", "off")
    baseline = pytester.path / "baseline.json"
    run("--onnx-dir", str(export_copy), "--parity-json", str(baseline), *weights_off)
    damage_encoder_int8(export_copy, 1.05)
    result = run(
        "--onnx-dir",
        str(export_copy),
        *weights_off,
        "--parity-baseline",
        str(baseline),
        "--parity-baseline-fail",
        "max_abs:2x,rel_l2:+50%,wer:+0.5pp",
    )
    # Every test still passes its own limits; the run as a whole got worse.
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"baseline {baseline}: 4 regression(s), 0 improvement(s) over 18 compared metric(s) "
            "(rules max_abs:2x, rel_l2:+50%, wer:+0.5pp)",
            "  REGRESSED encoder/int8 hidden.max_abs: 0.00* -> 0.01* (x*; rule max_abs:2x)",
            "  REGRESSED encoder/int8 hidden.rel_l2: * -> * (+*%; rule rel_l2:+50%)",
            "  REGRESSED encoder/int8 logits.max_abs: * -> * (x*; rule max_abs:2x)",
            "  REGRESSED encoder/int8 logits.rel_l2: * -> * (+*%; rule rel_l2:+50%)",
            "  rule(s) that matched no metric of both runs: wer:+0.5pp",
            "  next step: fix the variants, or if the change is intended, relax "
            "--parity-baseline-fail or store this run's file as the new baseline",
        ]
    )


def test_an_improved_variant_passes_and_the_improvement_is_shown(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    clean = export_copy.parent / "clean.int8.onnx"
    clean.write_bytes((export_copy / "encoder.int8.onnx").read_bytes())
    damage_encoder_int8(export_copy, 1.05)
    baseline = pytester.path / "metadata.json"
    run("--onnx-dir", str(export_copy), "--parity-metadata", str(baseline))
    (export_copy / "encoder.int8.onnx").write_bytes(clean.read_bytes())
    result = run("--onnx-dir", str(export_copy), "--parity-baseline", str(baseline))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"baseline {baseline}: 0 regression(s), 10 improvement(s) over * compared metric(s)*",
            "  improved  encoder/int8 hidden.cosine: 0.999* -> 0.9999* (x0.0* of 1-cosine; "
            "rule cosine:2x)",
            "  improved  encoder/int8 hidden.max_abs: 0.01* -> 0.00* (x0.*; rule max_abs:2x)",
        ]
    )
    assert "REGRESSED" not in result.stdout.str()


def test_a_results_file_from_before_the_graphs_section_is_read_as_a_baseline(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    baseline = pytester.path / "old.json"
    run("--onnx-dir", str(export_copy), "--parity-json", str(baseline))
    old = json.loads(baseline.read_text())
    del old["graphs"], old["run"]
    baseline.write_text(json.dumps(old))
    result = run("--onnx-dir", str(export_copy), "--parity-baseline", str(baseline))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"baseline {baseline}: 0 regression(s), 0 improvement(s) over 63 compared metric(s)*"]
    )


def test_a_baseline_from_a_newer_schema_is_refused_before_the_run(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    baseline = pytester.path / "new.json"
    baseline.write_text('{"schema": "pytest-onnxparity/results", "schema_version": 2}')
    result = run("--onnx-dir", str(export_copy), "--parity-baseline", str(baseline))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: onnxparity: baseline {baseline}: pytest-onnxparity/results schema version 2 "
            "is newer than this pytest-onnxparity reads (1..1); upgrade pytest-onnxparity, or "
            "regenerate the baseline with this version"
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--parity-baseline-fail", "max_abs:2"],
            "*argument --parity-baseline-fail: 'max_abs:2': write an increase with '+' "
            "(e.g. max_abs:+2), or a ratio as Nx",
        ),
        (
            ["--parity-baseline-fail", "max_abs:2x"],
            "ERROR: onnxparity: --parity-baseline-fail needs --parity-baseline OLD.json *",
        ),
        (
            ["--parity-baseline", "missing.json"],
            "ERROR: onnxparity: baseline *missing.json: no such file; write one on the run to "
            "compare against with --parity-json PATH (or --parity-metadata PATH)",
        ),
    ],
)
def test_bad_baseline_options_are_usage_errors(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, args: list[str], message: str
) -> None:
    result = run("--onnx-dir", str(export_copy), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_fail_spec_names_the_ini_key(run: RunPytest, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nparity_baseline_fail = max_abs:lots\n")
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: onnxparity: ini parity_baseline_fail: expected METRIC*"])
