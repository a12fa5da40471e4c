"""Export folders for the benchmark: residual-MLP graphs of a few MB with fp16/int8/int4 variants.

Built with the model kit (``fixtures/modelkit.py``), so importing this module imports torch;
``bench_plugin.py`` imports it only when it has to build a folder.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import modelkit

VARIANTS = ("fp16", "int8", "int4")


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
