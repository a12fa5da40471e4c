"""The model card of a whole run: the sequence kit's project with real encoder inputs, sequence
gates against the PyTorch and the fp32 ONNX pipelines, health checks and timings, written as
``--parity-markdown``, ``--parity-metadata`` and ``--parity-model-index``. The project runs once
(in a subprocess); each test checks one section of what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import cardprojects
import pytest

WHISPER = 'normalization = { preset = "whisper" }'


@dataclass(frozen=True)
class Card:
    stdout: str
    markdown: str
    metadata: dict[str, Any]
    model_index: str

    def section(self, heading: str) -> pytest.LineMatcher:
        body = self.markdown.split(f"### {heading}\n\n")[1].split("\n### ")[0]
        return pytest.LineMatcher(body.strip().splitlines())


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    root = cardprojects.write_seq_project(tmp_path_factory.mktemp("card") / "seq", WHISPER)
    out = root / "out"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--onnx-dir",
        "export",
        "--parity-health-checks",
        "all",
        "--parity-timing",
        "--parity-timing-repeats",
        "3",
        "--parity-speed-budget",
        "int8:rtf<=5x",
        "--parity-json",
        str(out / "results.json"),
        "--parity-metadata",
        str(out / "parity-metadata.json"),
        "--parity-markdown",
        str(out / "parity.md"),
        "--parity-model-index",
        str(out / "model-index.yaml"),
    ]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return Card(
        stdout=done.stdout,
        markdown=(out / "parity.md").read_text(),
        metadata=json.loads((out / "parity-metadata.json").read_text()),
        model_index=(out / "model-index.yaml").read_text(),
    )


def test_parity_rows_show_every_error_statistic_with_its_limit_and_input_set(card: Card) -> None:
    card.section("Parity per graph × variant").fnmatch_lines(
        [
            "| graph | variant | tier | size | status | inputs | output | max_abs | mean_abs "
            "| p99_abs | rel_l2 | cosine | argmax mismatches | non-finite |",
            # Logits get argmax mismatches as n/N; caches and hidden states do not.
            "| decoder_init | int8 | int8 | * kB (*x smaller) | ✅ pass | synthesized: default "
            "| cross_keys | * | * | * | * ≤ 0.4 | * ≥ 0.92 | – | 0 |",
            "| decoder_init | int8 | int8 | * | synthesized: default | logits | * | */4 | 0 |",
            # The encoder ran on the clips' features: real inputs first, then synthesized.
            "| encoder | int4 | int4 | * | real: clip-000, clip-001, clip-002 +1 more | memory *",
            "| encoder | int4 | int4 | * | synthesized: default | memory *",
        ]
    )
    int8 = card.metadata["graphs"]["encoder"]["variants"]["int8"]
    assert int8["inputs"] == "real"
    assert set(int8["outputs_by_inputs"]) == {"real", "synthesized"}
    assert {"max_abs", "mean_abs", "p99_abs"} <= set(int8["outputs"]["memory"])


def test_sequence_rows_compare_each_set_with_pytorch_and_with_fp32_onnx(card: Card) -> None:
    card.section("Sequence parity per variant set").fnmatch_lines(
        [
            "| variant set | tier | against | status | clips | transcripts match "
            "| token-exact clips | first step agrees | token Levenshtein | argmax mismatches "
            "| teacher-forced argmax mismatches | WER | CER | WER vs ground truth |",
            "| fp32 | fp32 | PyTorch (gated) | ✅ pass | 4 | 4/4 | 4/4 | 4/4 | 0 of * tokens "
            "| 0/* | 0/* | 0.00% | 0.00% | *% (reference *%) |",
            "| int8 | int8 | fp32 ONNX (gated) | ✅ pass | 4 | */4 | */4 | */4 | * of * tokens "
            "| */* | */* | *% | *% | *% (reference *%) |",
            # Reported against PyTorch: free-running only, no teacher forcing.
            "| int8 | int8 | PyTorch (reported) | reported | 4 | */4 | */4 | */4 | * of * tokens "
            "| */* | – | *% | *% | *% (reference *%) |",
            "clips: clips_dir *clips; WER/CER normalisation: transformers' Whisper "
            "EnglishTextNormalizer (no spelling mapping).",
        ]
    )


def test_per_clip_rows_give_transcript_match_wer_and_token_levenshtein(card: Card) -> None:
    card.section("Sequence parity per clip").fnmatch_lines(
        [
            "| clip | variant set | against | transcript match | WER | CER | token Levenshtein "
            "| first divergence | argmax mismatches |",
            "| clip-000 | fp32 | PyTorch (gated) | Y | 0.00% | 0.00% | 0 | – | 0/* |",
            "| clip-003 | int4 | fp32 ONNX (gated) | ? | *% | *% | * | * | */* |",
            "| clip-003 | int4 | PyTorch (reported) | ? | *% | *% | * | * | */* |",
        ]
    )


def test_speed_rows_give_the_interleaved_ratio_and_its_iqr(card: Card) -> None:
    card.section("Speed").fnmatch_lines(
        [
            "| encoder | int8 | latency_ms | * | *x | – | ✅ pass |",
            "| pipeline | int8 | rtf | * | *x (median of interleaved pairs, IQR *; reference * "
            "in those rounds) | int8:rtf<=5x | ✅ pass |",
        ]
    )


def test_files_show_opset_ir_version_operator_domains_and_producer(card: Card) -> None:
    card.section("Graph files: opset, IR version, operators").fnmatch_lines(
        [
            "Operators outside ai.onnx in 3 file(s): decoder_init/int4 (ai.onnx + com.microsoft: "
            "MatMulNBits ×8); *",
            "| encoder | fp32 | encoder.onnx | 17 | * | ai.onnx only | pytorch * |",
            "| encoder | int8 | encoder.int8.onnx | 17 | * | ai.onnx only | onnx.quantize * |",
        ]
    )


def test_health_has_one_column_per_check(card: Card) -> None:
    card.section("Health checks").fnmatch_lines(
        [
            "| graph | variant | checker | domains | initializers | opset | outputs | structure |",
            "| encoder | int4 | ✅ pass | ✅ pass | ✅ pass | ✅ pass | ✅ pass | ✅ pass |",
        ]
    )


def test_the_toolchain_names_transformers_torch_onnx_and_the_exporters(card: Card) -> None:
    lines = pytest.LineMatcher(card.markdown.splitlines())
    lines.fnmatch_lines(
        [
            "Files written by (their `producer`): pytorch * (*); onnx.quantize * (*)",
            "Measured with pytest-onnxparity * · onnxruntime * · onnx * · numpy * · torch * "
            "· transformers * · jiwer * · CPUExecutionProvider *",
        ]
    )
    assert card.metadata["toolchain"]["transformers"]


def test_the_model_index_holds_each_pipelines_wer_and_cer_and_the_hub_accepts_it(
    card: Card,
) -> None:
    pytest.LineMatcher(card.stdout.splitlines()).fnmatch_lines(
        ["model-index written to *model-index.yaml", "model-index: 8 metric(s), accepted by *"]
    )
    assert card.model_index.startswith('model-index:\n- name: "export"\n')
    for name in ("WER (PyTorch)", "WER (fp32 ONNX)", "CER (int8 ONNX)", "WER (int4 ONNX)"):
        assert f'name: "{name}"' in card.model_index
