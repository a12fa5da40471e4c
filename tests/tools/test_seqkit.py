"""The sequence model kit end to end: a trained encoder/decoder exported to ONNX, quantized,
decoded by a greedy adapter, and judged by the sequence gates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import seqkit

from pytest_onnxparity.runtime.sessions import OnnxRunner
from pytest_onnxparity.speech.audio.clips import Clip, load_audio_folder
from pytest_onnxparity.speech.sequence.clip_compare import compare_variant_set
from pytest_onnxparity.speech.sequence.config import parse_sequence_options
from pytest_onnxparity.speech.sequence.gates import SequenceGates
from pytest_onnxparity.speech.sequence.pipeline import (
    PipelineOutput,
    decode_references,
    run_adapter,
    run_reference_pipeline,
)
from pytest_onnxparity.speech.sequence.verdict import evaluate_sequence
from pytest_onnxparity.speech.transcripts import TextNormalization

NORM = TextNormalization()
QUANTIZED_SETS = {
    "int8": dict.fromkeys(seqkit.GRAPH_ROLES, "int8"),
    "int4": dict.fromkeys(seqkit.GRAPH_ROLES, "int4"),
    "mixed": {"encoder": "fp32", "decoder_init": "int4", "decoder_step": "int4"},
}
# What a project would ship for quantized decoders: no exact-token demand, but at most one
# teacher-forced argmax flip and 5 % corpus WER against the reference.
RELEASE_GATES = SequenceGates(
    require_token_equality=False,
    max_forced_argmax_mismatches=1,
    max_wer=0.05,
    max_wer_increase_vs_truth=0.05,
)


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seqkit")


@pytest.fixture(scope="session")
def reference_paths(export_dir: Path) -> dict[str, Path]:
    return seqkit.export_seq_model(export_dir)


@pytest.fixture(scope="session")
def reference_graphs(reference_paths: dict[str, Path]) -> dict[str, OnnxRunner]:
    return seqkit.open_graphs(reference_paths)


@pytest.fixture(scope="session")
def clips() -> list[Clip]:
    return seqkit.synthetic_clips(12, seed=7)


@pytest.fixture(scope="session")
def adapter() -> seqkit.GreedyAdapter:
    return seqkit.greedy_adapter(max_steps=8)


@pytest.fixture(scope="session")
def references(
    adapter: seqkit.GreedyAdapter, reference_graphs: dict[str, OnnxRunner], clips: list[Clip]
) -> dict[str, PipelineOutput]:
    return decode_references(adapter, reference_graphs, clips)


def run_set(
    paths: dict[str, Path],
    adapter: seqkit.GreedyAdapter,
    clips: list[Clip],
    references: dict[str, PipelineOutput],
    gates: SequenceGates,
    name: str,
) -> dict[str, object]:
    comparisons = compare_variant_set(
        adapter, seqkit.open_graphs(paths), clips, references, NORM, teacher_forcing=True
    )
    return evaluate_sequence(comparisons, gates, variant_set=name).to_json()


# --------------------------------------------------------------------------------------------
# The kit
# --------------------------------------------------------------------------------------------


def test_features_are_16_band_frames_every_10_ms() -> None:
    features = seqkit.log_mel_features(seqkit.synthesize_words(["one", "two"]), 16000)
    assert features.shape == (1, 70, 16)  # 0.72 s: 1 + (11520 - 400) // 160
    assert features.dtype == np.float32


def test_the_tokenizer_round_trips_words_and_skips_special_tokens() -> None:
    ids = seqkit.TOKENIZER.encode("three one four")
    assert ids == [5, 3, 6]
    assert seqkit.TOKENIZER.decode([seqkit.BOS, *ids, seqkit.EOS]) == "three one four"


def test_the_trained_model_transcribes_unseen_clips_in_torch(clips: list[Clip]) -> None:
    model = seqkit.train_seq_model()
    decoded = [
        seqkit.TOKENIZER.decode(model.greedy(seqkit.log_mel_features(c.audio, c.sample_rate)))
        for c in clips
    ]
    assert sum(text == c.text for text, c in zip(decoded, clips, strict=True)) >= 11


def test_the_export_has_an_encoder_and_prefill_and_step_decoders_with_state(
    reference_graphs: dict[str, OnnxRunner],
) -> None:
    def names(runner: OnnxRunner, kind: str) -> list[str]:
        return [spec.name for spec in getattr(runner, kind)]

    assert names(reference_graphs["encoder"], "inputs") == ["features"]
    assert names(reference_graphs["decoder_init"], "outputs") == [
        "logits",
        "hidden",
        "context",
        "position",
        "cross_keys",
        "cross_values",
    ]
    assert names(reference_graphs["decoder_step"], "inputs") == [
        "token",
        "hidden",
        "context",
        "position",
        "cross_keys",
        "cross_values",
    ]


def test_onnx_greedy_decoding_matches_torch_and_is_not_trivial(
    clips: list[Clip], references: dict[str, PipelineOutput]
) -> None:
    model = seqkit.train_seq_model()
    for clip in clips:
        expected = model.greedy(seqkit.log_mel_features(clip.audio, clip.sample_rate))
        assert references[clip.id].tokens == tuple(expected), clip.id
    sequences = {references[c.id].tokens for c in clips}
    assert len(sequences) == len(clips)
    assert min(len(tokens) for tokens in sequences) >= 2


def test_teacher_forcing_on_its_own_tokens_reproduces_the_free_run_logits(
    adapter: seqkit.GreedyAdapter,
    reference_graphs: dict[str, OnnxRunner],
    clips: list[Clip],
    references: dict[str, PipelineOutput],
) -> None:
    clip = clips[0]
    forced = run_adapter(adapter, reference_graphs, clip, references[clip.id].tokens)
    free_logits = references[clip.id].step_logits
    assert forced.step_logits is not None and free_logits is not None
    assert forced.step_logits.shape == (len(references[clip.id].tokens) + 1, len(seqkit.VOCAB))
    np.testing.assert_allclose(forced.step_logits, free_logits, rtol=0, atol=1e-6)


def test_a_clip_at_another_sample_rate_decodes_to_the_same_tokens(
    adapter: seqkit.GreedyAdapter,
    reference_graphs: dict[str, OnnxRunner],
    references: dict[str, PipelineOutput],
) -> None:
    clip = seqkit.synthetic_clip("clip-000", ["four", "two"], seed=3, sample_rate=22050)
    assert run_adapter(adapter, reference_graphs, clip).text == "four two"


# --------------------------------------------------------------------------------------------
# Gates on real graphs
# --------------------------------------------------------------------------------------------


def test_the_reference_graphs_as_a_variant_set_pass_every_gate(
    reference_paths: dict[str, Path],
    adapter: seqkit.GreedyAdapter,
    clips: list[Clip],
    references: dict[str, PipelineOutput],
) -> None:
    gates = SequenceGates(
        max_argmax_mismatches=0,
        max_forced_argmax_mismatches=0,
        require_transcript_match=True,
        max_wer=0.0,
        max_wer_increase_vs_truth=0.0,
        max_cer=0.0,
        max_token_edits=0,
    )
    result = run_set(reference_paths, adapter, clips, references, gates, "fp32")
    assert result["passed"], result["message"]


@pytest.mark.parametrize("name", QUANTIZED_SETS)
def test_quantized_variant_sets_pass_release_gates(
    name: str,
    reference_paths: dict[str, Path],
    export_dir: Path,
    adapter: seqkit.GreedyAdapter,
    clips: list[Clip],
    references: dict[str, PipelineOutput],
) -> None:
    paths = seqkit.make_variant_set(reference_paths, QUANTIZED_SETS[name], export_dir)
    result = run_set(paths, adapter, clips, references, RELEASE_GATES, name)
    assert result["passed"], result["message"]
    corpus = result["details"]["corpus"]  # type: ignore[index]
    assert corpus["clips"] == len(clips)
    assert corpus["argmax_mismatches_forced"] <= 1
    json.dumps(result, allow_nan=False)


def test_a_damaged_decoder_fails_token_and_wer_gates_with_the_per_clip_table(
    reference_paths: dict[str, Path],
    export_dir: Path,
    adapter: seqkit.GreedyAdapter,
    clips: list[Clip],
    references: dict[str, PipelineOutput],
) -> None:
    damaged = seqkit.damaged_variant_set(reference_paths, export_dir)
    gates = SequenceGates(max_wer=0.02, max_forced_argmax_mismatches=0)
    result = run_set(damaged, adapter, clips, references, gates, "damaged")
    assert not result["passed"]
    pytest.LineMatcher(str(result["message"]).splitlines()).fnmatch_lines(
        [
            "sequence gates failed for variant set 'damaged': 3 of 3 gates on 12 clips",
            "  token_equality: * > 0 (* of 12 clips differ; first: clip-* diverges at token *)",
            "  max_forced_argmax_mismatches: * > 0 (worst clip clip-*: * steps)",
            "  max_wer: * > 0.02 (* edits / * words; worst clip clip-*: *)",
            "per clip, fp32 ONNX reference vs variant:",
            "clip*dur_s*reference*variant*match*wer*edits*diverges",
            "clip-000*",
            "*NO*",
            "clip-011*",
        ]
    )
    details = result["details"]
    assert len(details["clips"]) == 12  # type: ignore[index]
    json.dumps(result, allow_nan=False)


@pytest.fixture(scope="session")
def torch_references(clips: list[Clip]) -> dict[str, PipelineOutput]:
    pipeline = seqkit.TorchPipeline(seqkit.train_seq_model())
    return {clip.id: run_reference_pipeline(pipeline, clip) for clip in clips}


def test_the_fp32_onnx_pipeline_matches_the_torch_pipeline_token_for_token(
    reference_paths: dict[str, Path],
    adapter: seqkit.GreedyAdapter,
    clips: list[Clip],
    torch_references: dict[str, PipelineOutput],
) -> None:
    comparisons = compare_variant_set(
        adapter,
        seqkit.open_graphs(reference_paths),
        clips,
        torch_references,
        NORM,
        teacher_forcing=True,
    )
    gates = SequenceGates(max_forced_argmax_mismatches=0, require_transcript_match=True)
    result = evaluate_sequence(comparisons, gates, variant_set="fp32", reference="pytorch")
    assert result.passed, result.message
    assert result.details["reference_label"] == "PyTorch"
    corpus = result.details["corpus"]
    assert corpus["first_step_agreeing_clips"] == len(clips)
    assert corpus["reference_steps"] == corpus["reference_tokens"] + len(clips)


def test_an_fp32_export_with_one_weight_changed_fails_the_gate_against_torch(
    reference_paths: dict[str, Path],
    export_dir: Path,
    adapter: seqkit.GreedyAdapter,
    clips: list[Clip],
    torch_references: dict[str, PipelineOutput],
) -> None:
    damaged = seqkit.damaged_variant_set(reference_paths, export_dir)
    comparisons = compare_variant_set(
        adapter, seqkit.open_graphs(damaged), clips, torch_references, NORM, teacher_forcing=False
    )
    result = evaluate_sequence(
        comparisons, SequenceGates(), variant_set="fp32", reference="pytorch"
    )
    assert not result.passed
    pytest.LineMatcher(str(result.message).splitlines()).fnmatch_lines(
        [
            "sequence gates failed for variant set 'fp32' against the PyTorch pipeline: "
            "1 of 1 gates on 12 clips",
            "  token_equality: * > 0 (* of 12 clips differ; first: clip-* diverges at token *)",
            "per clip, PyTorch reference vs variant:",
            "Next: the fp32 ONNX pipeline ('fp32') decodes differently from the PyTorch "
            "pipeline: check the export*",
        ]
    )


def test_a_config_driven_run_over_mixed_variant_sets(
    reference_paths: dict[str, Path],
    export_dir: Path,
    adapter: seqkit.GreedyAdapter,
    references: dict[str, PipelineOutput],
    clips: list[Clip],
    tmp_path: Path,
) -> None:
    seqkit.write_clip_folder(clips[:3], tmp_path / "clips", audio_format="wav")
    seqkit.write_clip_folder(clips[3:6], tmp_path / "clips", audio_format="flac")
    options = parse_sequence_options(
        {
            "clips_dir": "clips",
            "sample_rate": seqkit.GreedyAdapter.sample_rate,
            "graphs": list(seqkit.GRAPH_ROLES),
            "variant_sets": {
                "int8": "int8",
                "mixed": {"decoder_init": "int4", "decoder_step": "int4"},
            },
            "require_token_equality": False,
            "max_wer_vs_truth": 0.1,
            "overrides": {"mixed": {"max_wer": 0.05}},
        },
        "pyproject.toml [tool.onnxparity.sequence]",
    )
    assert options.source is not None
    folder_clips = options.source.load(base_dir=tmp_path)
    assert [c.id for c in folder_clips] == [c.id for c in clips[:6]]
    folder_references = decode_references(
        adapter, seqkit.open_graphs(reference_paths), folder_clips
    )
    assert all(folder_references[c.id].tokens == references[c.id].tokens for c in folder_clips)
    for name, tags in options.variant_sets.items():
        paths = seqkit.make_variant_set(reference_paths, tags, export_dir)
        gates = options.gates_for(name)
        comparisons = compare_variant_set(
            adapter,
            seqkit.open_graphs(paths),
            folder_clips,
            folder_references,
            options.normalization,
            teacher_forcing=gates.needs_teacher_forcing,
        )
        result = evaluate_sequence(comparisons, gates, variant_set=name)
        assert result.passed, result.message
        assert {g["gate"] for g in result.details["gates"]} == (
            {"max_wer_vs_truth", "max_wer"} if name == "mixed" else {"max_wer_vs_truth"}
        )


@pytest.mark.skipif(
    not seqkit.espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
def test_espeak_ng_makes_speech_clips_the_pipeline_can_run_on(
    tmp_path: Path, adapter: seqkit.GreedyAdapter, reference_graphs: dict[str, OnnxRunner]
) -> None:
    seqkit.espeak_clip("Seven three nine.", tmp_path / "spoken.wav")
    (clip,) = load_audio_folder(tmp_path, sample_rate=16000)
    assert clip.text == "Seven three nine."
    assert 0.5 < clip.duration_s < 5.0
    output = run_adapter(adapter, reference_graphs, clip)
    # The toy model only knows tones, so the transcript is not asserted: the point is that real
    # speech flows through loading, features and all three graphs.
    assert len(output.tokens) <= adapter.max_steps
    assert output.step_logits is not None
