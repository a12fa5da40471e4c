"""The nearest-rank percentile of absolute errors, exact in float64 from a float32 buffer.

``compare_outputs`` keeps one float32 copy of the errors (a float64 one would double its peak
memory); the percentile it reports is nevertheless exactly numpy's
``percentile(err, q, method="inverted_cdf")`` of the float64 errors. Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np


def exact_percentile(
    abs_error: np.ndarray,
    ref_flat: np.ndarray,
    var_flat: np.ndarray,
    q: float,
    chunk: int,
    scale: float = 1.0,
) -> float:
    """``numpy.percentile(err, q, method="inverted_cdf")`` of the float64 errors
    ``|var_flat / scale - ref_flat / scale|``, exactly, from their float32 copy ``abs_error``
    (reordered). ``scale`` is the power of two ``compare_outputs`` divided huge values by.

    The float32 buffer finds the rank's value rounded to float32 (in place: a copy would double
    peak memory). Rounding keeps order, so the float64 value at that rank is among the errors
    that round to it: one more pass over the outputs collects those in float64 and picks it.
    """
    size = abs_error.size
    if size == 0:
        return 0.0
    rank = min(max(math.ceil(q / 100.0 * size) - 1, 0), size - 1)
    abs_error.partition(rank)
    rounded = abs_error[rank]
    below = int(np.count_nonzero(abs_error[:rank] < rounded))
    tied: list[np.ndarray] = []
    err = np.empty(min(chunk, size), dtype=np.float64)
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        part = err[: stop - start]
        if scale == 1.0:
            np.subtract(var_flat[start:stop], ref_flat[start:stop], out=part, dtype=np.float64)
        else:  # as compare_outputs did: float64 copies divided by the scale, then subtracted
            ref = ref_flat[start:stop].astype(np.float64) / scale
            np.subtract(var_flat[start:stop].astype(np.float64) / scale, ref, out=part)
        np.abs(part, out=part)
        with np.errstate(over="ignore"):
            tied.append(part[part.astype(np.float32) == rounded])
    candidates = np.sort(np.concatenate(tied))
    return float(candidates[rank - below])
