"""The error of one intermediate tensor against the reference's, with mask fill left out.

Additive attention masks fill masked positions with a huge negative number (``finfo.min``,
``-1e9``) or ``-inf``. Those elements dominate a tensor's norm, so its rel_l2 reads ~1e-38 —
perfect agreement — whatever the rest does. Elements whose reference value is non-finite or at
least :data:`FILL_MAGNITUDE` in size are therefore *fill*: counted, and left out of every
statistic; a tensor that is all fill is *masked* and has no statistics at all. Arrays are read
in chunks so a large activation costs a few MB of temporaries, not three copies of itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FILL_MAGNITUDE = 1e8
"""Reference values this large are mask fill: no float32 activation of a network that fp16 can
carry gets near it (fp16 ends at 65504), while ``-1e9`` and ``finfo(float32).min`` are the usual
fills."""

CHUNK_ELEMENTS = 1 << 16
"""Small enough that float32 dot products lose nothing that shows in three digits."""


class ShapeDifferenceError(ValueError):
    """The two tensors have different shapes: they are not the same tensor."""


@dataclass(frozen=True)
class PairStatistics:
    """The error of a variant tensor against the reference's on the non-fill elements.

    ``fill`` counts reference elements left out as mask fill (non-finite or
    ``|x| >= FILL_MAGNITUDE``); ``nonfinite_in_variant`` counts NaN/Inf in the variant where the
    reference is an ordinary number, and makes ``rel_l2`` infinite.
    """

    shape: tuple[int, ...]
    elements: int
    fill: int
    nonfinite_in_variant: int
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float

    @property
    def masked(self) -> bool:
        """Every element is mask fill: nothing to compare."""
        return self.elements > 0 and self.fill == self.elements

    @property
    def fill_fraction(self) -> float:
        return self.fill / self.elements if self.elements else 0.0


def compare_tensors(
    reference: np.ndarray, variant: np.ndarray, *, rel_l2_only: bool = False
) -> PairStatistics:
    """Compare ``variant`` with ``reference`` element by element.

    Arithmetic is in float32 (float64 where either side is) over chunks of
    :data:`CHUNK_ELEMENTS`, whose sums are added up in float64. ``rel_l2_only`` skips max_abs
    and mean_abs (left 0). Raises :class:`ShapeDifferenceError` when the shapes differ.
    """
    reference, variant = np.asarray(reference), np.asarray(variant)
    if reference.shape != variant.shape:
        raise ShapeDifferenceError(f"shape {list(variant.shape)} != {list(reference.shape)}")
    dtype = np.float64 if np.float64 in (reference.dtype, variant.dtype) else np.float32
    flat_reference, flat_variant = reference.reshape(-1), variant.reshape(-1)
    totals = _Totals()
    for start in range(0, flat_reference.size, CHUNK_ELEMENTS):
        ref = flat_reference[start : start + CHUNK_ELEMENTS].astype(dtype, copy=False)
        var = flat_variant[start : start + CHUNK_ELEMENTS].astype(dtype, copy=False)
        totals.add(ref, var, rel_l2_only)
    reference_square = totals.reference_square
    variant_square = reference_square + 2.0 * totals.cross + totals.error_square
    return PairStatistics(
        shape=tuple(int(size) for size in reference.shape),
        elements=int(reference.size),
        fill=totals.fill,
        nonfinite_in_variant=totals.nonfinite,
        max_abs=totals.max_abs,
        mean_abs=totals.sum_abs / totals.kept if totals.kept else 0.0,
        rel_l2=math.inf if totals.nonfinite else _ratio(totals.error_square, reference_square),
        cosine=_cosine(reference_square + totals.cross, reference_square, variant_square),
    )


class _Totals:
    """Running sums over chunks: ``cross`` is ref·(var − ref), so that var·var and ref·var
    follow without another pass."""

    def __init__(self) -> None:
        self.fill = self.nonfinite = self.kept = 0
        self.max_abs = self.sum_abs = 0.0
        self.error_square = self.reference_square = self.cross = 0.0

    def add(self, ref: np.ndarray, var: np.ndarray, rel_l2_only: bool) -> None:
        if not ref.size:
            return
        # NaN makes max() NaN and both comparisons false: the slow path finds it.
        if not (float(ref.max()) < FILL_MAGNITUDE and float(ref.min()) > -FILL_MAGNITUDE):
            ordinary = np.abs(ref) < FILL_MAGNITUDE
            self.fill += int(ref.size - np.count_nonzero(ordinary))
            ref, var = ref[ordinary], var[ordinary]
        difference = var - ref
        error_square = float(np.dot(difference, difference))
        if not math.isfinite(error_square):
            finite = np.isfinite(difference)
            self.nonfinite += int(difference.size - np.count_nonzero(finite))
            ref, difference = ref[finite], difference[finite]
            error_square = float(np.dot(difference, difference))
        self.kept += ref.size
        self.error_square += error_square
        self.reference_square += float(np.dot(ref, ref))
        self.cross += float(np.dot(ref, difference))
        if not rel_l2_only and difference.size:
            magnitude = np.abs(difference)
            self.max_abs = max(self.max_abs, float(magnitude.max()))
            self.sum_abs += float(magnitude.sum(dtype=np.float64))


def _ratio(error_square: float, reference_square: float) -> float:
    if reference_square > 0.0:
        return math.sqrt(error_square / reference_square)
    return 0.0 if error_square == 0.0 else math.inf


def _cosine(dot: float, reference_square: float, variant_square: float) -> float:
    if reference_square == 0.0 and variant_square == 0.0:
        return 1.0
    if reference_square == 0.0 or variant_square == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / math.sqrt(reference_square * variant_square)))


def sqnr_db(rel_l2: float) -> float:
    """Signal-to-quantization-noise ratio: ``10·log10(‖ref‖² / ‖var − ref‖²)``, which is
    ``−20·log10(rel_l2)``."""
    if rel_l2 == 0.0:
        return math.inf
    if math.isinf(rel_l2) or math.isnan(rel_l2):
        return -math.inf
    return -20.0 * math.log10(rel_l2)
