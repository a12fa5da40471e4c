"""The Markdown card rendered from the parity metadata block: one test per section."""

from __future__ import annotations

from typing import Any

from pytest_onnxparity.results.markdown import markdown_table, number, render_markdown

FORMAT = {
    "ir_version": 8,
    "opset": 17,
    "opset_imports": {"ai.onnx": 17},
    "producer": "pytorch 2.13.0",
    "nodes_by_domain": {"ai.onnx": 20},
    "custom_ops": {},
}
INT4_FORMAT = {
    **FORMAT,
    "opset_imports": {"ai.onnx": 17, "com.microsoft": 1},
    "nodes_by_domain": {"ai.onnx": 14, "com.microsoft": 3},
    "custom_ops": {"com.microsoft": {"MatMulNBits": 3}},
}
CLIP = {
    "transcript_match": True,
    "tokens_equal": True,
    "wer": 0.0,
    "cer": 0.0,
    "token_edits": 0,
    "argmax_mismatches_free": 0,
    "reference_steps": 6,
}
BLOCK: dict[str, Any] = {
    "schema": "pytest-onnxparity/metadata",
    "schema_version": 1,
    "generator": "pytest-onnxparity 0.1.0",
    "model": "org/tiny-asr",
    "toolchain": {
        "python": "3.11.7",
        "onnxruntime": "1.32.0",
        "onnx": "1.23.2",
        "torch": "2.13.0",
        "transformers": "5.25.0",
        "tokenizers": "0.23.3",
        "providers": ["CPUExecutionProvider"],
        "cpu": "Some CPU",
    },
    "settings": {"seed": 0},
    "graphs": {
        "decoder": {
            "inputs": {"features": {"dtype": "float32", "shape": ["batch", None, 16]}},
            "outputs": {"hidden": {"dtype": "float32", "shape": None}},
            "reference": {
                "variant": "fp32",
                "file": "decoder.onnx",
                "size_bytes": 23011,
                "format": FORMAT,
                "checks": {"health:checker": {"passed": True}, "health:opset": {"passed": True}},
            },
            "variants": {
                "int8": {
                    "status": "passed",
                    "tier": "int8",
                    "file": "decoder.int8.onnx",
                    "size_bytes": 12700,
                    "compression_ratio": 1.812,
                    "format": {**FORMAT, "producer": "onnx.quantize 0.1.0"},
                    "inputs": "real",
                    "input_sets": ["clip-0", "clip-1", "default"],
                    "outputs": {
                        "hidden": {"max_abs": 0.0205, "mean_abs": 0.004, "p99_abs": 0.0151},
                        "logits|2": {
                            "max_abs": 0.00145,
                            "cosine": 0.9999,
                            "argmax_mismatches": 3,
                            "argmax_positions": 190,
                            "nonfinite_in_variant": 0,
                        },
                    },
                    "outputs_by_inputs": {
                        "real": {"input_sets": ["clip-0", "clip-1"], "outputs": {}},
                        "synthesized": {
                            "input_sets": ["default"],
                            "outputs": {"hidden": {"max_abs": 0.232, "mean_abs": 0.01}},
                        },
                    },
                    "limits": {"hidden": {"max_abs": 0.05}, "logits|2": {"min_cosine": 0.99}},
                    "checks": {
                        "coverage": {"passed": True, "fraction": 1.0, "quantized": 4},
                        "health:checker": {"passed": True},
                        "health:opset": {"passed": False, "opset": 9},
                        "latency": {
                            "passed": True,
                            "latency_ms": 0.0191,
                            "reference_latency_ms": 0.02,
                            "vs_reference": 0.93,
                            "vs_reference_iqr": 0.05,
                            "about": {"budgets": "int8:latency_ms<=1.5x"},
                        },
                    },
                },
                "int4": {
                    "status": "failed",
                    "tier": "int4",
                    "file": "decoder.int4.onnx",
                    "size_bytes": 9000,
                    "size_ratio": 0.4,
                    "format": INT4_FORMAT,
                    "inputs": "synthesized",
                    "input_sets": ["default"],
                    "outputs": {
                        "logits": {"nonfinite_in_variant": 12, "nonfinite_in_reference": 0}
                    },
                },
            },
        },
        "pipeline": {
            "variants": {
                "int8": {
                    "status": "failed",
                    "checks": {
                        "sequence": {
                            "passed": False,
                            "clips": 3,
                            "transcripts_matching": 2,
                            "token_mismatched_clips": 1,
                            "first_step_agreeing_clips": 3,
                            "token_edits": 2,
                            "reference_tokens": 17,
                            "reference_steps": 20,
                            "argmax_mismatches_free": 2,
                            "argmax_mismatches_forced": 1,
                            "wer": 0.02,
                            "cer": 0.0125,
                            "wer_vs_truth": 0.1,
                            "reference_wer_vs_truth": 0.08,
                            "about": {
                                "reference": "fp32",
                                "tier": "int8",
                                "clip_source": "clips_dir clips",
                                "normalization": "jiwer ToLowerCase, RemovePunctuation",
                            },
                            "against": {
                                "pytorch": {
                                    "clips": 3,
                                    "transcripts_matching": 3,
                                    "token_mismatched_clips": 0,
                                    "reference_steps": 20,
                                    "argmax_mismatches_free": 0,
                                    "wer": 0.0,
                                }
                            },
                        },
                        "sequence-clip": {
                            "passed": False,
                            "runs": 1,
                            "failed": 1,
                            "items": {
                                "clip-0": {
                                    **CLIP,
                                    "passed": False,
                                    "transcript_match": False,
                                    "tokens_equal": False,
                                    "wer": 0.2,
                                    "token_edits": 2,
                                    "first_divergence": 4,
                                    "argmax_mismatches_free": 2,
                                    "against": {"pytorch": CLIP},
                                }
                            },
                        },
                        "rtf": {
                            "passed": True,
                            "rtf": 0.012,
                            "vs_reference": 1.1,
                            "about": {"budgets": "rtf<=0.3"},
                        },
                    },
                }
            }
        },
    },
}


def section(text: str, heading: str) -> list[str]:
    """The lines of one ``### heading`` section."""
    return text.split(f"### {heading}\n\n")[1].split("\n### ")[0].strip().splitlines()


def test_the_title_names_the_model_and_non_finite_outputs_come_first() -> None:
    text = render_markdown(BLOCK)
    assert text.startswith("## ONNX parity: org/tiny-asr\n\n> ⚠ **decoder/int4 `logits`**")
    assert "(synthesized inputs): ⚠ 12 in the variant non-finite values (NaN/inf)" in text


def test_parity_rows_carry_limits_input_sets_argmax_n_of_n_and_non_finite_counts() -> None:
    lines = section(render_markdown(BLOCK), "Parity per graph × variant")
    assert lines[2] == (
        "| graph | variant | tier | size | status | inputs | output | max_abs | mean_abs "
        "| p99_abs | rel_l2 | cosine | argmax mismatches | non-finite |"
    )
    rows = lines[4:]
    # Real inputs are the headline; the synthesized numbers follow, each naming its sets.
    assert rows[0] == (
        "| decoder | int8 | int8 | 12.7 kB (1.81x smaller) | ✅ pass | real: clip-0, clip-1 "
        "| hidden | 0.0205 ≤ 0.05 | 0.004 | 0.0151 | – | – | – | 0 |"
    )
    # Argmax as n/N for a class output; a pipe in a name is escaped.
    assert rows[1].endswith("| logits\\|2 | 0.00145 | – | – | – | 0.9999 ≥ 0.99 | 3/190 | 0 |")
    assert rows[2].startswith("| decoder | int8 | int8 | 12.7 kB (1.81x smaller) | ✅ pass ")
    assert "| synthesized: default | hidden | 0.232 ≤ 0.05 | 0.01 |" in rows[2]
    # NaN outputs do not read as a perfect match, and a version-1 size_ratio reads as compression.
    assert rows[3] == (
        "| decoder | int4 | int4 | 9.0 kB (2.50x smaller) | ❌ fail | synthesized: default "
        "| logits | – | – | – | – | – | – | ⚠ 12 in the variant |"
    )
    assert "| pipeline |" not in "\n".join(rows)  # a sequence set is no parity row


def test_sequence_rows_per_set_and_reference_with_n_of_n_counts_and_rates() -> None:
    lines = section(render_markdown(BLOCK), "Sequence parity per variant set")
    assert lines[0].startswith(
        "| variant set | tier | against | status | clips | transcripts match | token-exact clips "
        "| first step agrees | token Levenshtein | argmax mismatches | teacher-forced argmax "
    )
    assert lines[2] == (
        "| int8 | int8 | fp32 ONNX (gated) | ❌ fail | 3 | 2/3 | 2/3 | 3/3 | 2 of 17 tokens | 2/20 "
        "| 1/20 | 2.00% | 1.25% | 10.00% (reference 8.00%) |"
    )
    assert lines[3] == (
        "| int8 | int8 | PyTorch (reported) | reported | 3 | 3/3 | 3/3 | – | – | 0/20 | – "
        "| 0.00% | – | – |"
    )
    assert lines[5] == (
        "clips: clips_dir clips; WER/CER normalisation: jiwer ToLowerCase, RemovePunctuation."
    )


def test_per_clip_rows_show_transcript_match_wer_and_levenshtein_against_each_reference() -> None:
    lines = section(render_markdown(BLOCK), "Sequence parity per clip")
    assert lines[2:] == [
        "| clip-0 | int8 | fp32 ONNX (gated) | N | 20.00% | 0.00% | 2 | 4 | 2/6 |",
        "| clip-0 | int8 | PyTorch (reported) | Y | 0.00% | 0.00% | 0 | – | 0/6 |",
    ]


def test_speed_rows_show_the_interleaved_ratio_with_its_spread() -> None:
    lines = section(render_markdown(BLOCK), "Speed")
    assert lines[2:] == [
        "| decoder | int8 | latency_ms | 0.0191 | 0.93x (median of interleaved pairs, IQR 0.05; "
        "reference 0.02 in those rounds) | int8:latency_ms<=1.5x | ✅ pass |",
        "| pipeline | int8 | rtf | 0.012 | 1.10x | rtf<=0.3 | ✅ pass |",
    ]


def test_file_formats_say_opset_ir_version_and_operator_domains() -> None:
    lines = section(render_markdown(BLOCK), "Graph files: opset, IR version, operators")
    assert lines[0] == (
        "Operators outside ai.onnx in 1 file(s): decoder/int4 (ai.onnx + com.microsoft: "
        "MatMulNBits ×3)."
    )
    assert lines[4:] == [
        "| decoder | fp32 | decoder.onnx | 17 | 8 | ai.onnx only | pytorch 2.13.0 |",
        "| decoder | int8 | decoder.int8.onnx | 17 | 8 | ai.onnx only | onnx.quantize 0.1.0 |",
        "| decoder | int4 | decoder.int4.onnx | 17 (+ com.microsoft 1) | 8 "
        "| ai.onnx + com.microsoft: MatMulNBits ×3 | pytorch 2.13.0 |",
    ]
    only_onnx = {"graphs": {"g": {"variants": {"int8": {"format": FORMAT}}}}}
    assert (
        "Every file uses ai.onnx operators only: no com.microsoft or other custom ops."
        in render_markdown(only_onnx)
    )


def test_health_has_a_column_per_check_not_one_folded_row() -> None:
    lines = section(render_markdown(BLOCK), "Health checks")
    assert lines == [
        "| graph | variant | checker | opset |",
        "| --- | --- | --- | --- |",
        "| decoder | fp32 | ✅ pass | ✅ pass |",
        "| decoder | int8 | ✅ pass | ❌ fail |",
    ]


def test_other_checks_keep_their_numbers() -> None:
    lines = section(render_markdown(BLOCK), "Checks")
    assert lines[2:] == ["| decoder | int8 | coverage | ✅ pass | fraction=1, quantized=4 |"]


def test_io_table_exporters_and_the_toolchain_with_transformers() -> None:
    text = render_markdown(BLOCK)
    assert "| decoder | input | features | float32 | [batch, ?, 16] |" in text
    assert "| decoder | output | hidden | float32 | [?] |" in text
    assert (
        "Files written by (their `producer`): pytorch 2.13.0 (decoder/fp32, decoder/int4); "
        "onnx.quantize 0.1.0 (decoder/int8)"
    ) in text
    assert text.endswith(
        "Measured with pytest-onnxparity 0.1.0 · Python 3.11.7 · onnxruntime 1.32.0 · "
        "onnx 1.23.2 · torch 2.13.0 · transformers 5.25.0 · tokenizers 0.23.3 · "
        "CPUExecutionProvider · Some CPU · input seed 0\n"
    )


def test_empty_block_renders_only_the_title_and_toolchain() -> None:
    text = render_markdown({"generator": "pytest-onnxparity 0.1.0", "graphs": {}})
    assert text == "## ONNX parity\n\nMeasured with pytest-onnxparity 0.1.0\n"
    assert markdown_table(["a"], []) == []


def test_number_cells() -> None:
    assert number("max_abs", None) == "–"
    assert number("max_abs", 0.000123456) == "0.000123"
    assert number("cosine", 0.99999998825) == "0.99999998825"
    assert number("clips", 3) == "3"
    assert number("is_reference", True) == "yes"
