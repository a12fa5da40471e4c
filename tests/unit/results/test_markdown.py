"""Unit tests for the Markdown rendering of the parity metadata block."""

from __future__ import annotations

from typing import Any

from pytest_onnxparity.results.markdown import markdown_table, number, render_markdown

BLOCK: dict[str, Any] = {
    "schema": "pytest-onnxparity/metadata",
    "schema_version": 1,
    "generator": "pytest-onnxparity 0.1.0",
    "toolchain": {
        "python": "3.11.7",
        "onnxruntime": "1.32.0",
        "onnx": "1.23.2",
        "providers": ["CPUExecutionProvider"],
        "cpu": "Some CPU",
    },
    "settings": {"seed": 0},
    "graphs": {
        "encoder": {
            "inputs": {"features": {"dtype": "float32", "shape": ["batch", None, 16]}},
            "outputs": {"hidden": {"dtype": "float32", "shape": None}},
            "reference": {
                "variant": "fp32",
                "file": "encoder.onnx",
                "size_bytes": 23011,
                "checks": {"health:checker": {"passed": True}},
            },
            "variants": {
                "int8": {
                    "status": "passed",
                    "tier": "int8",
                    "file": "encoder.int8.onnx",
                    "size_bytes": 12700,
                    "size_ratio": 0.5519,
                    "outputs": {
                        "hidden": {"max_abs": 0.001532, "rel_l2": 0.004141, "cosine": 0.99999143},
                        "lo|gits": {"max_abs": 0.00145, "argmax_agreement": 0.9375},
                    },
                    "checks": {
                        "coverage": {"passed": True, "fraction": 1.0, "quantized": 4},
                        "health:checker": {"passed": True},
                        "health:opset": {"passed": False, "opset": 9},
                        "latency": {"passed": False, "enforced": False, "latency_ms": 0.0191},
                    },
                },
                "int4": {"status": "failed", "tier": "int4", "file": "encoder.int4.onnx"},
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
                            "wer": 0.02,
                            "cer": 0.0125,
                            "wer_vs_truth": 0.1,
                            "reference_wer_vs_truth": 0.08,
                        }
                    },
                }
            }
        },
    },
}


def test_parity_table_has_a_row_per_graph_variant_and_output() -> None:
    text = render_markdown(BLOCK)
    assert text.startswith("## ONNX parity\n\n### Parity per graph × variant\n\n")
    assert (
        "| graph | variant | tier | size | status | output | max_abs | rel_l2 | cosine "
        "| argmax_agreement |" in text
    )
    assert "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |" in text
    assert (
        "| encoder | int8 | int8 | 12.7 kB (0.55×) | ✅ pass | hidden | 0.00153 | 0.00414 "
        "| 0.99999143 | – |" in text
    )
    # A pipe in a name is escaped so the table keeps its columns.
    assert "| ✅ pass | lo\\|gits | 0.00145 | – | – | 0.9375 |" in text
    assert "| encoder | int4 | int4 | – | ❌ fail | – | – | – | – | – |" in text
    # A sequence variant set has no file: it is not a parity row.
    assert "| pipeline | int8 | " not in text.split("### Multi-clip parity")[0]


def test_multi_clip_table_shows_matches_and_error_rates() -> None:
    section = render_markdown(BLOCK).split("### Multi-clip parity\n\n")[1].split("\n\n")[0]
    lines = section.splitlines()
    assert lines[0].startswith("| graph | variant set | status | clips | transcripts matching |")
    assert lines[2] == (
        "| pipeline | int8 | ❌ fail | 3 | 2/3 | 1 | 2.00% | 1.25% | 8.00% → 10.00% |"
    )


def test_checks_table_folds_health_into_one_row_and_lists_numbers() -> None:
    section = render_markdown(BLOCK).split("### Checks\n\n")[1].split("\n\n")[0]
    assert section.splitlines()[2:] == [
        "| encoder | fp32 | health | ✅ pass | 1 of 1 passed |",
        "| encoder | int8 | health | ❌ fail | 1 of 2 passed; failed: health:opset |",
        "| encoder | int8 | coverage | ✅ pass | fraction=1, quantized=4 |",
        "| encoder | int8 | latency | note | latency_ms=0.0191 |",
    ]


def test_io_table_and_toolchain_line() -> None:
    text = render_markdown(BLOCK)
    assert "| encoder | input | features | float32 | [batch, ?, 16] |" in text
    assert "| encoder | output | hidden | float32 | [?] |" in text
    assert text.endswith(
        "Measured with pytest-onnxparity 0.1.0 · Python 3.11.7 · onnxruntime 1.32.0 · "
        "onnx 1.23.2 · CPUExecutionProvider · Some CPU · input seed 0\n"
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
