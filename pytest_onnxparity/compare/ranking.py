"""Class-axis statistics of a comparison: argmax agreement and top-k overlap.

Pure numpy. Both mean something only for a float output with a class axis of two or more; where
they do not, they are None (a gate asking for them then fails as a configuration error).
"""

from __future__ import annotations

import numpy as np


def argmax_agreement(
    reference: np.ndarray, variant: np.ndarray, axis: int | None
) -> tuple[int | None, float | None, int | None]:
    """``(axis, agreement, mismatches)``: the fraction of positions whose argmax over ``axis``
    matches and how many do not; None where it means nothing."""
    if not has_class_axis(reference, axis):
        return None, None, None
    assert axis is not None
    ref_arg = np.argmax(reference, axis=axis)
    var_arg = np.argmax(variant, axis=axis)
    mismatches = int(np.count_nonzero(ref_arg != var_arg))
    positions = max(int(ref_arg.size), 1)
    return axis % reference.ndim, 1.0 - mismatches / positions, mismatches


def has_class_axis(reference: np.ndarray, axis: int | None) -> bool:
    """A float array with an axis ``axis`` of two or more classes."""
    if axis is None or reference.ndim == 0 or not np.issubdtype(reference.dtype, np.floating):
        return False
    return -reference.ndim <= axis < reference.ndim and reference.shape[axis] >= 2


def topk_overlap(
    reference: np.ndarray, variant: np.ndarray, k: int, axis: int | None = -1
) -> float | None:
    """Mean fraction of the reference's top-``k`` classes along ``axis`` that are also among
    the variant's top ``k``, over every other position (e.g. each image of a batch).

    ``k`` larger than the axis is cut to its size. None where it means nothing (no float class
    axis of two or more). Non-finite values rank as the lowest, so a NaN never counts as a top
    class. Ties are broken by index, the same way on both sides.
    """
    if not has_class_axis(reference, axis):
        return None
    assert axis is not None
    k = min(k, reference.shape[axis])
    ref_top = _top_indices(reference, k, axis)
    var_top = _top_indices(variant, k, axis)
    # Rows of k class indices per position; count the reference's classes found in the variant's.
    shared = (ref_top[..., :, None] == var_top[..., None, :]).any(axis=-1).sum(axis=-1)
    return float(shared.mean() / k) if shared.size else 1.0


def _top_indices(values: np.ndarray, k: int, axis: int) -> np.ndarray:
    """The indices of the ``k`` largest values along ``axis``, moved to the last axis."""
    moved = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    ranked = np.where(np.isfinite(moved), moved, -np.inf)
    # A stable sort of the negated values keeps the lower index first among equal values.
    return np.argsort(-ranked, axis=-1, kind="stable")[..., :k]
