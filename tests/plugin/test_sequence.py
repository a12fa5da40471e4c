"""The sequence gates wired into the plugin, through pytester: a greedy adapter in a conftest.py,
per-clip and corpus items per variant set, the per-clip table, clip sources, RTF, xdist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# Imported once here: pytester's in-process runs forget modules first imported during a run,
# and datasets registers pyarrow extension types that cannot be registered a second time.
import datasets  # noqa: F401
import jiwer  # noqa: F401
import pytest
import scipy.signal  # noqa: F401
import soundfile  # noqa: F401

from tests.conftest import RunPytest
from tests.paths import CLIPS_DIR
from tests.plugin.seq_fixtures import CLIPS, SeqExport, conftest_text, write_export

RELEASE_GATES = """
require_token_equality = false
max_forced_argmax_mismatches = 1
max_wer = 0.05
"""
ALL_SETS = """
variant_sets = { int8 = "int8", int4 = "int4", mixed = { decoder_init = "int4", decoder_step = "int4" }, same = "fp32", damaged = { decoder_step = "damaged" } }
"""  # noqa: E501


@pytest.fixture(scope="session")
def seq_export(tmp_path_factory: pytest.TempPathFactory) -> SeqExport:
    """The sequence kit exported with int8/int4/damaged variants, clips and an audiofolder."""
    return write_export(tmp_path_factory.mktemp("seq"))


def project(
    pytester: pytest.Pytester,
    seq_export: SeqExport,
    table: str,
    *,
    adapter: bool = True,
    sleep_for: tuple[str, float] | None = None,
    torch_reference: bool = False,
) -> None:
    """A project: its export folder, ``[tool.onnxparity.sequence]`` holding ``table`` and a
    conftest.py with the adapter (and the torch model as the reference pipeline)."""
    shutil.copytree(seq_export.export, pytester.path / "export")
    pytester.makepyprojecttoml(
        f'[tool.onnxparity]\ntags = {{ damaged = "fp32" }}\n\n[tool.onnxparity.sequence]\n{table}'
    )
    if adapter:
        torch_model = seq_export.torch_model if torch_reference else None
        pytester.makeconftest(conftest_text(sleep_for, torch_model))


def sequence_run(run: RunPytest, *args: str) -> pytest.RunResult:
    return run("--onnx-dir", "export", "-k", "sequence", *args)


def records(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    return [
        {key: value for key, value in record.items() if key != "duration_s"}
        for record in document["records"]
        if record.get("check", "").startswith("sequence")
    ]


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


def test_identical_and_quantized_variant_sets_pass_clip_by_clip_and_as_a_corpus(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    table = (
        f'clips_dir = "{seq_export.clips}"\n'
        'variant_sets = { same = "fp32", int8 = "int8", int4 = "int4", '
        'mixed = { decoder_init = "int4", decoder_step = "int4" } }\n'
        f"{RELEASE_GATES}"
        "[tool.onnxparity.sequence.overrides.same]\n"
        "require_token_equality = true\nrequire_transcript_match = true\n"
        "max_argmax_mismatches = 0\nmax_forced_argmax_mismatches = 0\nmin_first_divergence = 99\n"
        "max_wer = 0.0\nmax_cer = 0.0\nmax_clip_wer = 0.0\nmax_wer_increase_vs_truth = 0.0\n"
        "max_token_edits = 0\n"
    )
    project(pytester, seq_export, table)
    result = sequence_run(run, "-v")
    result.assert_outcomes(passed=4 * (CLIPS + 1))
    result.stdout.fnmatch_lines(
        [
            "*onnxparity sequence: clips_dir *clips; variant sets: all",
            "*export::sequence[[]same-clip-000] PASSED*",
            "*export::sequence[[]same] PASSED*",
            "*export::sequence[[]mixed-clip-003] PASSED*",
            "*export::sequence[[]mixed] PASSED*",
            "*= onnxparity sequence =*",
            "variant set*clips*tokens equal*forced argmax*wer*cer*wer vs truth (set / ref)*status",
            f"same*{CLIPS}*{CLIPS}/{CLIPS}*0*0*0*0 / 0*PASS",
        ]
    )


def test_a_damaged_decoder_fails_the_token_and_wer_gates_with_the_per_clip_table(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    table = (
        f'clips_dir = "{seq_export.clips}"\n'
        'variant_sets = { damaged = { decoder_step = "damaged" } }\n'
        "max_wer = 0.05\n"
    )
    project(pytester, seq_export, table)
    result = sequence_run(run)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 2  # the corpus and at least one clip
    assert outcomes["failed"] + outcomes.get("passed", 0) == CLIPS + 1
    result.stdout.fnmatch_lines(
        [
            "*_ sequence[[]damaged-clip-* _*",
            "sequence gates failed for clip 'clip-*' of variant set 'damaged': 1 of 1 gates",
            "  token_equality: 1 > 0 (1 of 1 clips differ; first: clip-* diverges at token *)",
            "clip*dur_s*reference*variant*match*wer*edits*diverges",
            "clip-*NO*",
            "reference tokens: [[]*] (* tokens)",
            "variant tokens:   [[]*] (* tokens)",
            "Next: the test sequence[[]damaged] gates the whole set with every clip's row*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ sequence[[]damaged] _*",
            f"sequence gates failed for variant set 'damaged': 2 of 2 gates on {CLIPS} clips",
            f"  token_equality: * > 0 (* of {CLIPS} clips differ; first: clip-* diverges at *)",
            "  max_wer: * > 0.05 (* edits / * words; worst clip clip-*: *)",
            "per clip, fp32 ONNX reference vs variant:",
            "clip*dur_s*reference*variant*match*wer*edits*diverges",
            "clip-000  *",
            "*NO*",
            f"clip-{CLIPS - 1:03d}  *",
            "Next: fix the graphs of variant set 'damaged', or relax its limits in "
            "[[]sequence.overrides.damaged] if the change is acceptable.",
        ]
    )
    result.stdout.fnmatch_lines(["damaged*/*FAIL"])


def test_each_gate_a_clip_is_held_to_fails_the_damaged_set_clip_by_clip(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    table = (
        f'clips_dir = "{seq_export.clips}"\n'
        'variant_sets = { damaged = { decoder_step = "damaged" } }\n'
        "require_token_equality = false\nmax_forced_argmax_mismatches = 0\n"
        "min_first_divergence = 99\nmax_clip_wer = 0.0\nmax_token_edits = 0\n"
    )
    project(pytester, seq_export, table)
    result = sequence_run(run)
    result.stdout.fnmatch_lines(
        [
            "sequence gates failed for variant set 'damaged': 4 of 4 gates *",
            "  max_forced_argmax_mismatches: * > 0 (worst clip clip-*: * steps)",
            "  min_first_divergence: * < 99 (earliest: clip clip-*; * of * clips diverge earlier)",
            "  max_clip_wer: * > 0 (worst clip clip-*: * edits / * words; * clips above *)",
            "  max_token_edits: * > 0 (of * reference tokens; worst clip clip-*: * edits)",
        ]
    )


def test_the_json_results_hold_each_clip_and_the_per_clip_table_of_each_set(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(
        pytester,
        seq_export,
        f'clips_dir = "{seq_export.clips}"\nvariant_sets = {{ int8 = "int8" }}\n{RELEASE_GATES}',
    )
    out = pytester.path / "results.json"
    sequence_run(run, "--parity-json", str(out)).assert_outcomes(passed=CLIPS + 1)
    found = {record["nodeid"].split("::")[-1]: record for record in records(out)}
    corpus = found["sequence[int8]"]
    assert (corpus["check"], corpus["graph"], corpus["variant"]) == ("sequence", "pipeline", "int8")
    details = corpus["details"]
    assert details["files"] == {
        "encoder": "encoder.int8.onnx",
        "decoder_init": "decoder_init.int8.onnx",
        "decoder_step": "decoder_step.int8.onnx",
    }
    assert details["reference_files"]["encoder"] == "encoder.onnx"
    assert (details["tier"], details["tags"]["decoder_step"]) == ("int8", "int8")
    assert details["clip_source"] == f"clips_dir {seq_export.clips}"
    assert details["corpus"]["clips"] == CLIPS
    assert [clip["clip_id"] for clip in details["clips"]] == [f"clip-{i:03d}" for i in range(CLIPS)]
    row = details["clips"][0]
    assert {"duration_s", "reference_text", "variant_text", "transcript_match", "token_edits"} <= (
        set(row)
    )
    assert row["wer_vs_reference"]["unit"] == "word"
    clip = found["sequence[int8-clip-002]"]
    assert clip["check"] == "sequence-clip"
    assert clip["details"]["clip"]["clip_id"] == "clip-002"
    assert clip["details"]["clip"] == details["clips"][2]


def test_a_parallel_run_writes_the_same_sequence_records_as_a_serial_one(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(
        pytester,
        seq_export,
        f'clips_dir = "{seq_export.clips}"\n{ALL_SETS}{RELEASE_GATES}',
    )
    documents = []
    for args in ([], ["-n", "2"]):
        out = pytester.path / f"results{len(args)}.json"
        sequence_run(run, "--parity-json", str(out), *args)
        documents.append(records(out))
    assert len(documents[0]) == 5 * (CLIPS + 1)
    assert documents[0] == documents[1]


# --------------------------------------------------------------------------------------------
# The PyTorch reference pipeline
# --------------------------------------------------------------------------------------------


def test_the_fp32_onnx_set_is_gated_against_torch_and_each_set_reported_against_both(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(
        pytester,
        seq_export,
        f'clips_dir = "{seq_export.clips}"\nvariant_sets = {{ int8 = "int8" }}\n{RELEASE_GATES}',
        torch_reference=True,
    )
    out = pytester.path / "results.json"
    result = sequence_run(run, "-v", "--parity-json", str(out))
    result.assert_outcomes(passed=2 * (CLIPS + 1))
    result.stdout.fnmatch_lines(
        ["*export::sequence[[]fp32-clip-000] PASSED*", "*export::sequence[[]fp32] PASSED*"]
    )
    found = {record["nodeid"].split("::")[-1]: record for record in records(out)}
    fp32 = found["sequence[fp32]"]["details"]
    assert (fp32["reference"], fp32["reference_label"]) == ("pytorch", "PyTorch")
    assert fp32["limits"]["require_token_equality"] is True  # token-exact by default
    assert fp32["corpus"]["token_mismatched_clips"] == 0
    assert fp32["against"] == {}
    int8 = found["sequence[int8]"]["details"]
    assert (int8["reference"], int8["reported_against"]) == ("fp32", ["pytorch"])
    against_torch = int8["against"]["pytorch"]
    assert against_torch["corpus"]["clips"] == CLIPS
    assert len(against_torch["clips"]) == CLIPS
    clip = found["sequence[int8-clip-001]"]["details"]
    assert clip["against"]["pytorch"]["clip"]["clip_id"] == "clip-001"


def test_an_fp32_export_with_one_weight_changed_fails_the_gate_against_torch(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(pytester, seq_export, f'clips_dir = "{seq_export.clips}"\n', torch_reference=True)
    export = pytester.path / "export"
    shutil.copy(export / "decoder_step.damaged.onnx", export / "decoder_step.onnx")
    result = sequence_run(run, "-k", "fp32")
    assert result.parseoutcomes()["failed"] >= 2  # the corpus and at least one clip
    result.stdout.fnmatch_lines(
        [
            "*_ sequence[[]fp32] _*",
            "sequence gates failed for variant set 'fp32' against the PyTorch pipeline: "
            f"1 of 1 gates on {CLIPS} clips",
            f"  token_equality: * > 0 (* of {CLIPS} clips differ; first: clip-* diverges at *)",
            "per clip, PyTorch reference vs variant:",
            "Next: the fp32 ONNX pipeline ('fp32') decodes differently from the PyTorch "
            "pipeline: check the export*",
        ]
    )


def test_a_variant_set_named_fp32_clashes_with_the_gated_fp32_onnx_set(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    table = f'clips_dir = "{seq_export.clips}"\nvariant_sets = {{ fp32 = "int8" }}\n'
    project(pytester, seq_export, table, torch_reference=True)
    result = sequence_run(run)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["onnxparity: *: variant set 'fp32' is the name of the fp32 ONNX set, which is gated*"]
    )


# --------------------------------------------------------------------------------------------
# Clips and sets
# --------------------------------------------------------------------------------------------


def test_parity_clips_limit_keeps_the_first_clips_and_variant_set_filters_the_sets(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(pytester, seq_export, f"{ALL_SETS}{RELEASE_GATES}")
    result = sequence_run(
        run,
        "--collect-only",
        "-q",
        f"--parity-clips={seq_export.clips}",
        "--parity-clips-limit",
        "2",
        "--parity-variant-set",
        "int8",
        "--parity-variant-set",
        "mixed",
    )
    collected = [line for line in result.stdout.lines if "::sequence[" in line]
    assert [line.split("::")[-1] for line in collected] == [
        "sequence[int8-clip-000]",
        "sequence[int8-clip-001]",
        "sequence[int8]",
        "sequence[mixed-clip-000]",
        "sequence[mixed-clip-001]",
        "sequence[mixed]",
    ]


def test_the_variant_sets_default_to_the_tags_every_graph_has(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(pytester, seq_export, f'clips_dir = "{seq_export.clips}"\nlimit = 1\n')
    result = sequence_run(run, "--collect-only", "-q")
    names = {line.split("::")[-1] for line in result.stdout.lines if "::sequence[" in line}
    assert names == {
        "sequence[int4-clip-000]",
        "sequence[int4]",
        "sequence[int8-clip-000]",
        "sequence[int8]",
    }


def test_a_local_audiofolder_dataset_streams_its_rows(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    table = (
        'text_column = "sentence"\nstreaming = true\nsplit = "test"\n'
        f'variant_sets = {{ int8 = "int8" }}\n{RELEASE_GATES}max_wer_vs_truth = 0.0\n'
    )
    project(pytester, seq_export, f'dataset = "unused/hub-name"\n{table}')
    result = sequence_run(
        run,
        "-v",
        f"--parity-dataset={seq_export.audiofolder}",
        "--parity-clips-limit",
        "3",
    )
    result.assert_outcomes(passed=3 + 1)
    result.stdout.fnmatch_lines(
        [
            "*onnxparity sequence: dataset *audiofolder (split test, streamed), first 3 clips*",
            "*sequence[[]int8-clip-002] PASSED*",
        ]
    )


def test_the_committed_speech_clips_run_through_the_pipeline(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(
        pytester,
        seq_export,
        'variant_sets = { same = "fp32" }\nrequire_transcript_match = true\n',
    )
    result = sequence_run(run, "-v", f"--parity-clips={CLIPS_DIR}")
    result.assert_outcomes(passed=3 + 1)
    result.stdout.fnmatch_lines(
        ["*sequence[[]same-fox] PASSED*", "*sequence[[]same-narrowband] PASSED*"]
    )


# --------------------------------------------------------------------------------------------
# Real-time factor
# --------------------------------------------------------------------------------------------


def test_a_slow_variant_set_fails_a_relative_rtf_budget(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    # 0.4 s of sleep per clip against ~20 ms of decoding: a 10x effect against a 3x budget.
    project(
        pytester,
        seq_export,
        f'clips_dir = "{seq_export.clips}"\nvariant_sets = {{ int8 = "int8" }}\n',
        sleep_for=("int8", 0.4),
    )
    result = run(
        "--onnx-dir",
        "export",
        "-k",
        "rtf",
        "--parity-speed-budget",
        "int8:rtf<=3x",
        "--parity-clips-limit",
        "1",
        "--parity-timing-repeats",
        "1",
        "--parity-timing-warmup",
        "0",
        "-p",
        "no:benchmark",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ pipeline::rtf[[]int8] _*",
            "pipeline[[]int8] rtf * is *x the reference fp32's (median of interleaved pairs; "
            "reference median *), above 3x (budget int8:rtf<=3x from --parity-speed-budget)",
            "  measured: median of 1 passes over the clips after 0 warm-up *",
            "  slowest clip: clip-000 rtf *",
            "  context: CPUExecutionProvider, intra-op threads *, onnxruntime *",
        ]
    )


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


def test_a_missing_adapter_is_one_failing_test_with_one_clear_line(
    run: RunPytest, pytester: pytest.Pytester, seq_export: SeqExport
) -> None:
    project(pytester, seq_export, f'clips_dir = "{seq_export.clips}"\n', adapter=False)
    result = sequence_run(run)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ sequence _*",
            "onnxparity: no pipeline adapter: sequence gates are configured (*pyproject.toml "
            "[[]tool.onnxparity.sequence]) but no conftest.py implements "
            "pytest_onnxparity_pipeline_adapter(config); return your adapter from it "
            "(see docs/sequence.md)",
            "FAILED export::sequence - *",
        ]
    )


@pytest.mark.parametrize(
    ("table", "args", "message"),
    [
        (
            'clips_dir = "clips"\nmax_wrr = 0.1\n',
            [],
            "ERROR: onnxparity: *pyproject.toml [[]tool.onnxparity.sequence]: unknown key "
            "'max_wrr'; allowed keys: require_token_equality, *",
        ),
        (
            'clips_dir = "clips"\n',
            ["--parity-clips-limit", "0"],
            "*error: argument --parity-clips-limit: expected a number of clips >= 1, got '0'",
        ),
    ],
    ids=["unknown-key", "bad-limit"],
)
def test_a_bad_sequence_config_is_a_usage_error_naming_the_key(
    run: RunPytest,
    pytester: pytest.Pytester,
    seq_export: SeqExport,
    table: str,
    args: list[str],
    message: str,
) -> None:
    project(pytester, seq_export, table)
    result = sequence_run(run, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("table", "args", "message"),
    [
        (
            'clips_dir = "no-such-folder"\n',
            [],
            "onnxparity: *no-such-folder: no such folder; point clips_dir at a folder *",
        ),
        (
            'clips_dir = "{clips}"\nvariant_sets = {{ q = {{ encoder = "int2" }} }}\n',
            [],
            "onnxparity: *variant_sets.q: graph 'encoder' has no variant 'int2' (it has fp32, "
            "int4, int8); export it or fix the set",
        ),
        (
            'clips_dir = "{clips}"\n',
            ["--parity-variant-set", "int3"],
            "onnxparity: --parity-variant-set int3: no such variant set (sets: int4, int8)",
        ),
    ],
    ids=["missing-folder", "unknown-tag", "unknown-set"],
)
def test_clips_or_sets_that_resolve_to_nothing_fail_one_test_naming_the_fix(
    run: RunPytest,
    pytester: pytest.Pytester,
    seq_export: SeqExport,
    table: str,
    args: list[str],
    message: str,
) -> None:
    project(pytester, seq_export, table.format(clips=seq_export.clips))
    result = sequence_run(run, *args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*_ sequence _*", message, "FAILED export::sequence - *"])
