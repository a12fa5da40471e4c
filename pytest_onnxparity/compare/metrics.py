"""Error statistics between a reference output and a variant output.

Pure numpy. Sums accumulate in float64, chunk by chunk, so memory stays at one float32 copy of
the output (the absolute error, needed for the percentile) plus three float64 chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 64K float64 elements: three scratch arrays of 0.5 MB each stay in the CPU's caches between
# the passes over a chunk (the fastest of 4K to 1M elements, measured on a 2-core EPYC).
CHUNK_ELEMENTS = 1 << 16
# Decade bins of the absolute error: [0, 1e-8), [1e-8, 1e-7), ..., [1, inf).
HISTOGRAM_EDGES = (0.0, *(10.0**e for e in range(-8, 1)), float("inf"))


class ShapeMismatchError(ValueError):
    """The variant's output does not have the reference's shape."""


@dataclass(frozen=True)
class WorstElement:
    """Where the absolute error is largest, with both values there."""

    index: tuple[int, ...]
    reference: float
    variant: float

    def to_json(self) -> dict[str, object]:
        return {"index": list(self.index), "reference": self.reference, "variant": self.variant}


@dataclass(frozen=True)
class OutputStats:
    """Every number measured between one reference output and the variant's same output."""

    output: str
    shape: tuple[int, ...]
    reference_dtype: str
    variant_dtype: str
    max_abs: float
    mean_abs: float
    p99_abs: float
    rel_l2: float
    cosine: float
    argmax_axis: int | None
    argmax_agreement: float | None
    argmax_mismatches: int | None
    nonfinite_in_variant: int
    nonfinite_in_reference: int
    worst: WorstElement | None
    histogram: tuple[int, ...]
    # Measured only when asked for (``topk`` given to compare_outputs): it sorts every row.
    topk: int | None = None
    topk_overlap: float | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def value(self, metric: str) -> float | None:
        """The measured value a gate named ``metric`` compares (``min_cosine`` reads ``cosine``)."""
        return {
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "p99_abs": self.p99_abs,
            "rel_l2": self.rel_l2,
            "min_cosine": self.cosine,
            "min_argmax_agreement": self.argmax_agreement,
            "min_topk_overlap": self.topk_overlap,
        }[metric]

    def to_json(self) -> dict[str, object]:
        return {
            "output": self.output,
            "shape": list(self.shape),
            "reference_dtype": self.reference_dtype,
            "variant_dtype": self.variant_dtype,
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "p99_abs": self.p99_abs,
            "rel_l2": self.rel_l2,
            "cosine": self.cosine,
            "argmax_axis": self.argmax_axis,
            "argmax_agreement": self.argmax_agreement,
            "argmax_mismatches": self.argmax_mismatches,
            "topk": self.topk,
            "topk_overlap": self.topk_overlap,
            "nonfinite_in_variant": self.nonfinite_in_variant,
            "nonfinite_in_reference": self.nonfinite_in_reference,
            "worst": None if self.worst is None else self.worst.to_json(),
            "histogram": {
                "edges": [e if e != float("inf") else "inf" for e in HISTOGRAM_EDGES],
                "counts": list(self.histogram),
            },
        }


def compare_outputs(
    name: str,
    reference: np.ndarray,
    variant: np.ndarray,
    argmax_axis: int | None = -1,
    topk: int | None = None,
) -> OutputStats:
    """Measure how far ``variant`` is from ``reference`` (same shape; any numeric dtypes).

    ``argmax_axis`` is the class axis of argmax agreement and, when ``topk`` is given, of the
    top-k overlap (see :func:`topk_overlap`).

    Positions where the reference is non-finite are left out of the statistics; a non-finite
    variant value where the reference is finite is counted in ``nonfinite_in_variant``, which
    fails every gate.
    """
    reference = np.asarray(reference)
    variant = np.asarray(variant)
    if reference.shape != variant.shape:
        raise ShapeMismatchError(
            f"output {name!r}: variant shape {list(variant.shape)} != reference shape "
            f"{list(reference.shape)}; re-export the variant with the reference's output shapes"
        )
    ref_flat = reference.reshape(-1)
    var_flat = variant.reshape(-1)
    abs_error = np.empty(ref_flat.shape, dtype=np.float32)
    # Values past 1e30 (float64 outputs, or an fp32 output gone wild) are measured divided by a
    # power of two: their squares would overflow float64 and their errors the float32 buffer.
    # Relative metrics are unchanged; absolute ones are scaled back at the end.
    scale = _scale(ref_flat, var_flat)
    sums = _Sums(scale)
    # float64 scratch, reused chunk after chunk: no allocation (nor page fault) per chunk, and
    # small enough that the dozen passes over a chunk run from cache.
    size = min(CHUNK_ELEMENTS, ref_flat.size)
    scratch = np.empty((3, size), dtype=np.float64)
    for start in range(0, ref_flat.size, CHUNK_ELEMENTS):
        stop = min(start + CHUNK_ELEMENTS, ref_flat.size)
        ref, var, err = scratch[:, : stop - start]
        np.copyto(ref, ref_flat[start:stop], casting="unsafe")
        np.copyto(var, var_flat[start:stop], casting="unsafe")
        if scale != 1.0:
            ref /= scale
            var /= scale
        sums.add_chunk(start, ref, var, err, abs_error[start:stop])
    worst = None
    if sums.worst_flat >= 0:
        index = tuple(int(i) for i in np.unravel_index(sums.worst_flat, reference.shape))
        worst = WorstElement(
            index, _scalar(ref_flat[sums.worst_flat]), _scalar(var_flat[sums.worst_flat])
        )
    ref_norm, var_norm = np.sqrt(sums.sq_ref), np.sqrt(sums.sq_var)
    if ref_norm == 0.0 and var_norm == 0.0:
        cosine = 1.0
    elif ref_norm == 0.0 or var_norm == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.clip(sums.dot / (ref_norm * var_norm), -1.0, 1.0))
    # An all-zero reference makes any error relatively infinite: report the largest finite float
    # (JSON has no inf) without the overflow warning that filterwarnings=error turns into a crash.
    with np.errstate(over="ignore"):
        rel_l2 = float(np.sqrt(sums.sq_err) / max(ref_norm, np.finfo(np.float64).tiny))
    rel_l2 = min(rel_l2, float(np.finfo(np.float64).max))
    if ref_norm == 0.0 and sums.sq_err == 0.0:
        rel_l2 = 0.0
    axis, agreement, mismatches = _argmax_agreement(reference, variant, argmax_axis)
    overlap = None if topk is None else topk_overlap(reference, variant, topk, argmax_axis)
    if sums.counted < abs_error.size:
        abs_error = abs_error[~np.isnan(abs_error)]
    return OutputStats(
        output=name,
        shape=tuple(int(d) for d in reference.shape),
        reference_dtype=str(reference.dtype),
        variant_dtype=str(variant.dtype),
        max_abs=_unscaled(max(sums.worst_value, 0.0), scale),
        mean_abs=_unscaled(sums.abs / sums.counted if sums.counted else 0.0, scale),
        p99_abs=_unscaled(_percentile(abs_error, 99.0), scale),
        rel_l2=rel_l2,
        cosine=cosine,
        argmax_axis=axis,
        argmax_agreement=agreement,
        argmax_mismatches=mismatches,
        nonfinite_in_variant=sums.nonfinite_var,
        nonfinite_in_reference=sums.nonfinite_ref,
        worst=worst,
        histogram=tuple(int(c) for c in sums.histogram),
        topk=None if overlap is None else topk,
        topk_overlap=overlap,
    )


class _Sums:
    """float64 running sums, counts and the worst element over the chunks of one comparison."""

    def __init__(self, scale: float = 1.0) -> None:
        # The chunks come divided by ``scale``: the histogram's edges are divided alike.
        self.edges = tuple(edge / scale for edge in HISTOGRAM_EDGES)
        self.abs = self.sq_err = self.sq_ref = self.sq_var = self.dot = 0.0
        self.counted = self.nonfinite_var = self.nonfinite_ref = 0
        self.worst_flat, self.worst_value = -1, -1.0
        self.histogram = np.zeros(len(HISTOGRAM_EDGES) - 1, dtype=np.int64)

    def add_chunk(
        self, start: int, ref: np.ndarray, var: np.ndarray, err: np.ndarray, abs_out: np.ndarray
    ) -> None:
        """Add one chunk: ``ref``/``var`` are float64 copies of it (this zeroes the positions
        it leaves out), ``err`` scratch of their size, ``abs_out`` the chunk's slice of the
        float32 error buffer."""
        sq_ref, sq_var, dot = _products(ref, var)
        both = None
        if not np.isfinite(sq_ref + sq_var + dot):
            # Rare: a NaN or inf somewhere (or squares past float64's range, which the masks
            # below leave as they are). Left-out positions count as zeros from here on.
            ref_finite, var_finite = np.isfinite(ref), np.isfinite(var)
            both = ref_finite & var_finite
            self.nonfinite_ref += int(ref.size - np.count_nonzero(ref_finite))
            self.nonfinite_var += int(np.count_nonzero(ref_finite & ~var_finite))
            np.copyto(ref, 0.0, where=~both)
            np.copyto(var, 0.0, where=~both)
            sq_ref, sq_var, dot = _products(ref, var)
        np.subtract(var, ref, out=err)
        np.abs(err, out=err)
        self.sq_ref += sq_ref
        self.sq_var += sq_var
        self.dot += dot
        self.abs += float(err.sum())
        self.sq_err += float(np.dot(err, err))
        if both is None:
            self.counted += err.size
            abs_out[...] = err
            finite_err = err
        else:
            self.counted += int(np.count_nonzero(both))
            # Left-out positions are NaN in the buffer so the percentile skips them, and -1 in
            # the scratch so they are never the worst element.
            abs_out[...] = np.where(both, err, np.nan)
            finite_err = err[both]
            np.copyto(err, -1.0, where=~both)
        self._bin(finite_err)
        if err.size:
            local = int(np.argmax(err))
            if err[local] > self.worst_value:
                self.worst_flat, self.worst_value = start + local, float(err[local])

    def _bin(self, err: np.ndarray) -> None:
        """Decade bins in float64 (a float32 copy of an error on an edge, 1e-5, falls a bin
        low), by counting below each edge: several times faster than np.histogram's sort."""
        below: list[int] = []
        for edge in self.edges[1:-1]:
            if below and below[-1] == err.size:
                below.append(err.size)  # every error is below a lower edge already
            else:
                below.append(int(np.count_nonzero(err < edge)))
        self.histogram += np.diff(below, prepend=0, append=err.size)


LARGE_VALUE = 1e30


def _scale(ref: np.ndarray, var: np.ndarray) -> float:
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
            for start in range(0, array.size, CHUNK_ELEMENTS):
                chunk = np.abs(array[start : start + CHUNK_ELEMENTS], dtype=np.float64)
                finite = chunk[np.isfinite(chunk)]
                largest = max(largest, float(finite.max()) if finite.size else 0.0)
    if largest <= LARGE_VALUE:
        return 1.0
    return float(2.0 ** min(int(np.frexp(largest)[1]), 1023))


def _unscaled(value: float, scale: float) -> float:
    """A scaled absolute error in the output's units, kept finite (JSON has no inf)."""
    with np.errstate(over="ignore"):
        return min(float(np.float64(value) * scale), float(np.finfo(np.float64).max))


def _products(ref: np.ndarray, var: np.ndarray) -> tuple[float, float, float]:
    """sum(ref²), sum(var²) and sum(ref·var) of float64 vectors; NaN or inf, silently, when a
    value is not finite (0·inf, inf - inf): the caller then masks and sums again."""
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.dot(ref, ref)), float(np.dot(var, var)), float(np.dot(ref, var))


def _percentile(values: np.ndarray, q: float) -> float:
    if values.size == 0:
        return 0.0
    rank = int(np.ceil(q / 100.0 * values.size)) - 1
    rank = min(max(rank, 0), values.size - 1)
    # In place: the caller's error buffer is scratch, and a copy would double peak memory.
    values.partition(rank)
    return float(values[rank])


def _argmax_agreement(
    reference: np.ndarray, variant: np.ndarray, axis: int | None
) -> tuple[int | None, float | None, int | None]:
    """Fraction of positions whose argmax over ``axis`` matches; None where it means nothing."""
    if axis is None or reference.ndim == 0 or not np.issubdtype(reference.dtype, np.floating):
        return None, None, None
    if not -reference.ndim <= axis < reference.ndim or reference.shape[axis] < 2:
        return None, None, None
    ref_arg = np.argmax(reference, axis=axis)
    var_arg = np.argmax(variant, axis=axis)
    mismatches = int(np.count_nonzero(ref_arg != var_arg))
    positions = max(int(ref_arg.size), 1)
    return axis % reference.ndim, 1.0 - mismatches / positions, mismatches


def topk_overlap(
    reference: np.ndarray, variant: np.ndarray, k: int, axis: int | None = -1
) -> float | None:
    """Mean fraction of the reference's top-``k`` classes along ``axis`` that are also among
    the variant's top ``k``, over every other position (e.g. each image of a batch).

    ``k`` larger than the axis is cut to its size. None where it means nothing (no float class
    axis of two or more). Non-finite values rank as the lowest, so a NaN never counts as a top
    class. Ties are broken by index, the same way on both sides.
    """
    if axis is None or reference.ndim == 0 or not np.issubdtype(reference.dtype, np.floating):
        return None
    if not -reference.ndim <= axis < reference.ndim or reference.shape[axis] < 2:
        return None
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


def _scalar(value: np.generic) -> float:
    return float(value)
