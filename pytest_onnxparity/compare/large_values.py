"""Huge values measured without overflow: the power of two to divide them by, and back.

Values past 1e30 (float64 outputs, or an fp32 output gone wild) would overflow float64 in their
squares and the float32 error buffer in their errors. ``compare_outputs`` divides both sides by
a power of two (exact in binary floating point) so relative metrics are unchanged, and scales
absolute ones back at the end. Pure numpy.
"""

from __future__ import annotations

import numpy as np

LARGE_VALUE = 1e30


def divisor_for_large_values(ref: np.ndarray, var: np.ndarray, chunk: int) -> float:
    """1.0, or the power of two that brings the largest finite value of both arrays near 1
    when it exceeds :data:`LARGE_VALUE` (integers and fp16 never do)."""
    if ref.dtype.itemsize < 4 or not (
        np.issubdtype(ref.dtype, np.floating) or np.issubdtype(var.dtype, np.floating)
    ):
        return 1.0
    largest = 0.0
    for array in (ref, var):
        if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
            continue
        # fmax skips NaN without a copy; an inf takes the slower, finite-only pass below.
        bound = max(float(np.fmax.reduce(array)), -float(np.fmin.reduce(array)))
        if bound > LARGE_VALUE:
            for start in range(0, array.size, chunk):
                part = np.abs(array[start : start + chunk], dtype=np.float64)
                finite = part[np.isfinite(part)]
                largest = max(largest, float(finite.max()) if finite.size else 0.0)
    if largest <= LARGE_VALUE:
        return 1.0
    return float(2.0 ** min(int(np.frexp(largest)[1]), 1023))


def unscaled(value: float, scale: float) -> float:
    """A scaled absolute error in the output's units, kept finite (JSON has no inf)."""
    with np.errstate(over="ignore"):
        return min(float(np.float64(value) * scale), float(np.finfo(np.float64).max))
