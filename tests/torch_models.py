"""Small torch modules that several test modules share, beyond fixtures/modelkit.py's."""

from __future__ import annotations

import modelkit
import torch
from torch import nn


class TinyDecoder(nn.Module):
    """Downstream of TinyEncoder: ``encoder_hidden`` [b, T, 32], ``lengths`` -> ``scores``."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            self.proj = modelkit.Projection(32, 4)
        self.eval()

    def forward(self, encoder_hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.proj(encoder_hidden) * lengths.to(encoder_hidden.dtype)[:, None, None]
