"""The Hub's model-index from the metadata block: WER/CER against ground truth per pipeline, as
YAML or JSON that huggingface_hub accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_onnxparity.results.model_index import (
    ModelIndexError,
    build_model_index,
    dumps_model_index,
    model_index_results,
    validate_model_index,
)

LIBRISPEECH = {"type": "openslr/librispeech_asr", "name": "openslr/librispeech_asr",
               "config": "clean", "split": "test"}  # fmt: skip


def sequence(reference: str, **numbers: Any) -> dict[str, Any]:
    return {
        "passed": True,
        **numbers,
        "about": {"reference": reference, "dataset": LIBRISPEECH},
    }


BLOCK: dict[str, Any] = {
    "graphs": {
        "pipeline": {
            "variants": {
                "fp32": {
                    "checks": {
                        "sequence": sequence(
                            "pytorch",
                            wer_vs_truth=0.0427,
                            cer_vs_truth=0.0151,
                            reference_wer_vs_truth=0.0425,
                            reference_cer_vs_truth=0.015,
                            wer=0.001,
                        )
                    }
                },
                "int8": {
                    "checks": {
                        "sequence": sequence(
                            "fp32",
                            wer_vs_truth=0.0431,
                            cer_vs_truth=0.0155,
                            reference_wer_vs_truth=0.0427,
                            reference_cer_vs_truth=0.0151,
                        )
                    }
                },
            }
        },
        "encoder": {"variants": {"int8": {"outputs": {"y": {"max_abs": 0.1}}}}},
    }
}


def test_each_pipelines_wer_and_cer_against_ground_truth_in_percent() -> None:
    (result,) = model_index_results(BLOCK)
    assert result["task"] == {
        "type": "automatic-speech-recognition",
        "name": "Automatic Speech Recognition",
    }
    assert result["dataset"] == LIBRISPEECH
    assert result["metrics"] == [
        {"type": "cer", "value": 1.5, "name": "CER (PyTorch)"},
        {"type": "cer", "value": 1.51, "name": "CER (fp32 ONNX)"},
        {"type": "cer", "value": 1.55, "name": "CER (int8 ONNX)"},
        {"type": "wer", "value": 4.25, "name": "WER (PyTorch)"},
        {"type": "wer", "value": 4.27, "name": "WER (fp32 ONNX)"},
        {"type": "wer", "value": 4.31, "name": "WER (int8 ONNX)"},
    ]
    # Parity against the reference's transcripts (wer=0.001) is no evaluation result.
    assert all(metric["value"] != 0.1 for metric in result["metrics"])


def test_huggingface_hub_accepts_the_model_index_and_reads_back_every_metric() -> None:
    hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.repocard_data import model_index_to_eval_results

    index = build_model_index(BLOCK, "org/tiny-asr")
    assert validate_model_index(index) == hub.__version__
    name, results = model_index_to_eval_results(index)
    assert name == "org/tiny-asr"
    assert {(r.metric_type, r.metric_name, r.metric_value) for r in results} >= {
        ("wer", "WER (int8 ONNX)", 4.31),
        ("cer", "CER (PyTorch)", 1.5),
    }
    assert {r.dataset_split for r in results} == {"test"}


def test_the_yaml_front_matter_parses_to_the_same_model_index() -> None:
    yaml = pytest.importorskip("yaml")
    index = build_model_index(BLOCK, "org/tiny-asr")
    text = dumps_model_index(index)
    assert text.startswith('model-index:\n- name: "org/tiny-asr"\n  results:\n  - task:\n')
    assert yaml.safe_load(text) == {"model-index": index}
    assert json.loads(dumps_model_index(index, as_json=True)) == {"model-index": index}


def test_a_run_without_ground_truth_gives_a_model_index_without_results() -> None:
    index = build_model_index({"graphs": {"encoder": {"variants": {}}}}, "model")
    assert index == [{"name": "model", "results": []}]
    assert dumps_model_index(index) == 'model-index:\n- name: "model"\n  results: []\n'


def test_a_model_index_the_hub_refuses_is_an_error_naming_why() -> None:
    pytest.importorskip("huggingface_hub")
    with pytest.raises(ModelIndexError, match="huggingface_hub refuses the model-index"):
        validate_model_index([{"name": "m", "results": [{"task": {}, "metrics": []}]}])
