"""Which positions of a token-level output are real: the attention mask among a graph's inputs.

A padded batch of sentences has outputs at every position, padding included; what a model does
at padding positions is noise nobody reads (a quantized variant may differ there the most), so
an output whose leading axes are the mask's ([batch, sequence, ...] against [batch, sequence])
is compared over the positions the mask keeps. Per output, the tolerance key ``mask`` names the
input to use, or ``"none"`` to compare every position. Pure numpy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pytest_onnxparity.config.tolerances import NO_MASK

# attention_mask, encoder_attention_mask, input_mask, padding_mask, mask …
_MASK_NAME = re.compile(r"(^|[._/-])(attention_mask|input_mask|padding_mask|mask)$", re.I)


class MaskError(ValueError):
    """The mask an output's tolerance names cannot be applied; the message says why."""


@dataclass(frozen=True)
class RealPositions:
    """The positions of an output that a mask input keeps."""

    input: str
    keep: np.ndarray


def is_attention_mask_name(name: str) -> bool:
    """An input named like an attention or padding mask."""
    return _MASK_NAME.search(name) is not None


def attention_masks(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs that are attention masks: named so, of rank 2 ([batch, sequence])."""
    return {
        name: array
        for name, array in inputs.items()
        if is_attention_mask_name(name)
        and np.asarray(array).ndim == 2
        and np.asarray(array).dtype.kind in "biuf"
    }


def real_positions(mask: np.ndarray) -> np.ndarray:
    """Where ``mask`` keeps a token: non-zero entries of a 0/1 (or boolean) mask; the zero
    entries of an additive one (0 to keep, a large negative number to drop)."""
    mask = np.asarray(mask)
    if mask.dtype.kind == "f" and bool((mask < 0).any()):
        keep: np.ndarray = mask == 0
        return keep
    keep = mask != 0
    return keep


def positions_for(
    output: str,
    shape: tuple[int, ...],
    choice: str | None,
    inputs: Mapping[str, np.ndarray],
) -> RealPositions | None:
    """The positions of ``output`` (of ``shape``) to compare, or None for every position.

    ``choice`` is the output's ``mask`` tolerance key: None picks the one attention mask whose
    shape leads the output's; an input's name uses that input (an error when it does not fit);
    ``"none"`` compares everything. A mask that keeps nothing is not applied.
    """
    if choice == NO_MASK:
        return None
    if choice is not None:
        if choice not in inputs:
            raise MaskError(
                f"output {output!r}: mask {choice!r} is not an input of this input set (inputs "
                f'{sorted(inputs)}); name the attention mask input, or mask = "none"'
            )
        mask = np.asarray(inputs[choice])
        if not _leads(mask.shape, shape):
            raise MaskError(
                f"output {output!r} of shape {list(shape)} cannot be masked by {choice!r} of "
                f'shape {list(mask.shape)} (it must match the leading axes); set mask = "none" '
                "for this output"
            )
        candidates = {choice: mask}
    else:
        candidates = {
            name: mask
            for name, mask in attention_masks(inputs).items()
            if _leads(mask.shape, shape)
        }
        if len(candidates) > 1:
            # Several masks fit (encoder and decoder masks of equal shape): only a config knows.
            return None
    for name, mask in candidates.items():
        keep = real_positions(mask)
        if keep.any():
            return RealPositions(name, keep)
    return None


def _leads(mask_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return len(mask_shape) <= len(shape) and tuple(shape[: len(mask_shape)]) == tuple(mask_shape)
