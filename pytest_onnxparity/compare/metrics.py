"""Error statistics between a reference output and a variant output.

Pure numpy. Sums accumulate in float64, chunk by chunk, so memory stays at one float32 copy of
the output (the absolute error, needed for the percentile) plus three float64 chunks.

Definitions, over the compared elements (every element, or the real positions an attention mask
keeps), with ``err = |float64(variant) - float64(reference)|``:

* ``max_abs``, ``mean_abs``: the largest and the mean ``err``;
* ``p99_abs``: the nearest-rank 99th percentile, exactly
  ``numpy.percentile(err, 99, method="inverted_cdf")`` (the smallest error that 99 % of the
  errors do not exceed; no interpolation);
* ``max_abs_rel``: ``max_abs / max|reference|``, the largest error relative to the output's
  largest magnitude (scale-free: a logit of 30 and a probability of 0.3 can share a limit);
* ``rel_l2``: ``‖variant − reference‖₂ / ‖reference‖₂``; ``cosine``: of the two as vectors.

A NaN or Inf on either side makes every one of these NaN (``null`` in JSON): the counts say how
many there were and where the first is, and no gate can pass. An output is never reported as
matching because its broken values were left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from pytest_onnxparity.compare.large_values import divisor_for_large_values, unscaled
from pytest_onnxparity.compare.percentile import exact_percentile
from pytest_onnxparity.compare.ranking import argmax_agreement, has_class_axis
from pytest_onnxparity.compare.ranking import topk_overlap as topk_overlap

# 64K float64 elements: three scratch arrays of 0.5 MB each stay in the CPU's caches between
# the passes over a chunk (the fastest of 4K to 1M elements, measured on a 2-core EPYC).
CHUNK_ELEMENTS = 1 << 16
# Decade bins of the absolute error: [0, 1e-8), [1e-8, 1e-7), ..., [1, inf).
HISTOGRAM_EDGES = (0.0, *(10.0**e for e in range(-8, 1)), float("inf"))
P99 = 99.0
_LARGEST = float(np.finfo(np.float64).max)
NAN = float("nan")


class ShapeMismatchError(ValueError):
    """The variant's output does not have the reference's shape."""


@dataclass(frozen=True)
class WorstElement:
    """Where the absolute error is largest (or the first NaN/Inf), with both values there."""

    index: tuple[int, ...]
    reference: float
    variant: float

    def to_json(self) -> dict[str, object]:
        """Both values as numbers, or ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has none of them)."""
        return {
            "index": list(self.index),
            "reference": _value_json(self.reference),
            "variant": _value_json(self.variant),
        }


def _value_json(value: float) -> float | str:
    return float(value) if math.isfinite(value) else str(float(value))


@dataclass(frozen=True)
class OutputStats:
    """Every number measured between one reference output and the variant's same output.

    Error statistics are NaN where either side holds a NaN or Inf among the compared elements
    (``nonfinite_in_reference`` / ``nonfinite_in_variant`` count them; ``worst`` is then the
    first of them). ``mask`` names the input whose real positions were compared (the others are
    padding), ``compared_elements`` how many elements that left.
    """

    output: str
    shape: tuple[int, ...]
    reference_dtype: str
    variant_dtype: str
    max_abs: float
    max_abs_rel: float
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
    mask: str | None = None
    compared_elements: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def finite(self) -> bool:
        """No NaN or Inf on either side among the compared elements."""
        return self.nonfinite_in_variant == 0 and self.nonfinite_in_reference == 0

    def value(self, metric: str) -> float | None:
        """The measured value a gate named ``metric`` compares (``min_cosine`` reads ``cosine``)."""
        return {
            "max_abs": self.max_abs,
            "max_abs_rel": self.max_abs_rel,
            "mean_abs": self.mean_abs,
            "p99_abs": self.p99_abs,
            "rel_l2": self.rel_l2,
            "min_cosine": self.cosine,
            "min_argmax_agreement": self.argmax_agreement,
            "min_topk_overlap": self.topk_overlap,
        }[metric]

    def to_json(self) -> dict[str, object]:
        """Plain JSON types; a NaN statistic is ``null`` (the non-finite counts say why)."""
        return {
            "output": self.output,
            "shape": list(self.shape),
            "reference_dtype": self.reference_dtype,
            "variant_dtype": self.variant_dtype,
            "max_abs": json_float(self.max_abs),
            "max_abs_rel": json_float(self.max_abs_rel),
            "mean_abs": json_float(self.mean_abs),
            "p99_abs": json_float(self.p99_abs),
            "rel_l2": json_float(self.rel_l2),
            "cosine": json_float(self.cosine),
            "argmax_axis": self.argmax_axis,
            "argmax_agreement": json_float(self.argmax_agreement),
            "argmax_mismatches": self.argmax_mismatches,
            "topk": self.topk,
            "topk_overlap": json_float(self.topk_overlap),
            "nonfinite_in_variant": self.nonfinite_in_variant,
            "nonfinite_in_reference": self.nonfinite_in_reference,
            "worst": None if self.worst is None else self.worst.to_json(),
            "histogram": {
                "edges": [e if e != float("inf") else "inf" for e in HISTOGRAM_EDGES],
                "counts": list(self.histogram),
            },
            "mask": self.mask,
            "compared_elements": self.compared_elements,
        }


def json_float(value: float | None) -> float | None:
    """``value`` for JSON: None stays None, NaN and Inf become None (JSON has neither)."""
    return None if value is None or not math.isfinite(value) else float(value)


def compare_outputs(
    name: str,
    reference: np.ndarray,
    variant: np.ndarray,
    argmax_axis: int | None = -1,
    topk: int | None = None,
    keep: np.ndarray | None = None,
    mask: str | None = None,
) -> OutputStats:
    """Measure how far ``variant`` is from ``reference`` (same shape; any numeric dtypes).

    ``argmax_axis`` is the class axis of argmax agreement and, when ``topk`` is given, of the
    top-k overlap (see :func:`topk_overlap`). ``keep``: a boolean array over the leading axes
    (e.g. ``attention_mask != 0`` over [batch, sequence]): only those positions are compared;
    ``mask`` names where it came from, for the record.
    """
    reference = np.asarray(reference)
    variant = np.asarray(variant)
    if reference.shape != variant.shape:
        raise ShapeMismatchError(
            f"output {name!r}: variant shape {list(variant.shape)} != reference shape "
            f"{list(reference.shape)}; re-export the variant with the reference's output shapes"
        )
    shape = tuple(int(d) for d in reference.shape)
    class_axis = argmax_axis
    kept_rows = None
    if keep is not None and shape[: np.ndim(keep)] != np.shape(keep):
        raise ValueError(f"output {name!r}: keep {list(np.shape(keep))} must lead {list(shape)}")
    if keep is not None and not np.all(keep):
        kept_rows = np.argwhere(keep)
        class_axis = _axis_after_selection(argmax_axis, reference.ndim, keep.ndim)
        reference, variant = reference[keep], variant[keep]
    ref_flat = reference.reshape(-1)
    var_flat = variant.reshape(-1)
    abs_error = np.empty(ref_flat.shape, dtype=np.float32)
    # Values past 1e30 (float64 outputs, or an fp32 output gone wild) are measured divided by a
    # power of two: their squares would overflow float64 and their errors the float32 buffer.
    # Relative metrics are unchanged; absolute ones are scaled back at the end.
    scale = divisor_for_large_values(ref_flat, var_flat, CHUNK_ELEMENTS)
    sums = _Sums(scale)
    # float64 scratch, reused chunk after chunk: no allocation (nor page fault) per chunk, and
    # small enough that the dozen passes over a chunk run from cache.
    scratch = np.empty((3, min(CHUNK_ELEMENTS, ref_flat.size)), dtype=np.float64)
    for start in range(0, ref_flat.size, CHUNK_ELEMENTS):
        stop = min(start + CHUNK_ELEMENTS, ref_flat.size)
        ref, var, err = scratch[:, : stop - start]
        np.copyto(ref, ref_flat[start:stop], casting="unsafe")
        np.copyto(var, var_flat[start:stop], casting="unsafe")
        if scale != 1.0:
            ref /= scale
            var /= scale
        sums.add_chunk(start, ref, var, err, abs_error[start:stop])
    finite = sums.nonfinite_ref == 0 and sums.nonfinite_var == 0
    worst_flat = sums.worst_flat if finite else sums.first_nonfinite()
    worst = None
    if worst_flat >= 0:
        index = tuple(int(i) for i in np.unravel_index(worst_flat, reference.shape))
        if kept_rows is not None:
            index = (*(int(i) for i in kept_rows[index[0]]), *index[1:])
        worst = WorstElement(index, float(ref_flat[worst_flat]), float(var_flat[worst_flat]))
    measured_axis, agreement, mismatches = argmax_agreement(reference, variant, class_axis)
    overlap = None if topk is None else topk_overlap(reference, variant, topk, class_axis)
    # Recorded as an axis of the output itself, whether or not positions were selected.
    axis = None if measured_axis is None else int(argmax_axis) % len(shape)  # type: ignore[arg-type]
    stats = OutputStats(
        output=name,
        shape=shape,
        reference_dtype=str(reference.dtype),
        variant_dtype=str(variant.dtype),
        max_abs=unscaled(max(sums.worst_value, 0.0), scale),
        max_abs_rel=_relative(max(sums.worst_value, 0.0), sums.reference_peak),
        mean_abs=unscaled(sums.abs / sums.counted if sums.counted else 0.0, scale),
        p99_abs=unscaled(
            exact_percentile(abs_error, ref_flat, var_flat, P99, CHUNK_ELEMENTS, scale), scale
        )
        if finite
        else NAN,
        rel_l2=_relative(math.sqrt(sums.sq_err), math.sqrt(sums.sq_ref)),
        cosine=_cosine(sums.dot, math.sqrt(sums.sq_ref), math.sqrt(sums.sq_var)),
        argmax_axis=axis,
        argmax_agreement=agreement,
        argmax_mismatches=mismatches,
        nonfinite_in_variant=sums.nonfinite_var,
        nonfinite_in_reference=sums.nonfinite_ref,
        worst=worst,
        histogram=tuple(int(c) for c in sums.histogram),
        topk=None if overlap is None else topk,
        topk_overlap=overlap,
        mask=mask if keep is not None else None,
        compared_elements=int(ref_flat.size),
    )
    return stats if finite else _not_measurable(stats, has_class_axis(reference, class_axis))


def _axis_after_selection(axis: int | None, ndim: int, kept_axes: int) -> int | None:
    """The class axis once ``kept_axes`` leading axes are replaced by one axis of kept
    positions; None (not measured) when the class axis is one of them."""
    if axis is None or not -ndim <= axis < ndim:
        return axis
    axis %= ndim
    return None if axis < kept_axes else axis - kept_axes + 1


def _not_measurable(stats: OutputStats, class_axis: bool) -> OutputStats:
    """The statistics of a comparison with a NaN or Inf on either side: every error NaN."""
    return replace(
        stats,
        max_abs=NAN,
        max_abs_rel=NAN,
        mean_abs=NAN,
        p99_abs=NAN,
        rel_l2=NAN,
        cosine=NAN,
        argmax_agreement=NAN if class_axis else None,
        argmax_mismatches=None,
        topk_overlap=None if stats.topk_overlap is None else NAN,
    )


def _relative(error: float, scale: float) -> float:
    """``error / scale``; 0 when both are 0; the largest finite float when only ``scale`` is
    (JSON has no inf, and filterwarnings = error turns numpy's overflow warning into a crash)."""
    if error == 0.0:
        return 0.0
    if scale == 0.0:
        return _LARGEST
    return min(error / scale, _LARGEST)


def _cosine(dot: float, ref_norm: float, var_norm: float) -> float:
    if ref_norm == 0.0 and var_norm == 0.0:
        return 1.0
    if ref_norm == 0.0 or var_norm == 0.0:
        return 0.0
    return float(np.clip(dot / (ref_norm * var_norm), -1.0, 1.0))


class _Sums:
    """float64 running sums, counts and the worst element over the chunks of one comparison."""

    def __init__(self, scale: float = 1.0) -> None:
        # The chunks come divided by ``scale``: the histogram's edges are divided alike.
        self.edges = tuple(edge / scale for edge in HISTOGRAM_EDGES)
        self.abs = self.sq_err = self.sq_ref = self.sq_var = self.dot = 0.0
        self.reference_peak = 0.0
        self.counted = self.nonfinite_var = self.nonfinite_ref = 0
        self.worst_flat, self.worst_value = -1, -1.0
        self.first_bad_variant = self.first_bad_reference = -1
        self.histogram = np.zeros(len(HISTOGRAM_EDGES) - 1, dtype=np.int64)

    def first_nonfinite(self) -> int:
        """The first position with a NaN/Inf in the variant where the reference is finite,
        else the first NaN/Inf of the reference."""
        return self.first_bad_variant if self.first_bad_variant >= 0 else self.first_bad_reference

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
            # below leave as they are). Non-finite positions count as zeros from here on.
            both = self._count_nonfinite(start, ref, var)
            np.copyto(ref, 0.0, where=~both)
            np.copyto(var, 0.0, where=~both)
            sq_ref, sq_var, dot = _products(ref, var)
        np.subtract(var, ref, out=err)
        np.abs(err, out=err)
        self.sq_ref += sq_ref
        self.sq_var += sq_var
        self.dot += dot
        self.reference_peak = max(self.reference_peak, float(ref.max()), -float(ref.min()))
        self.abs += float(err.sum())
        self.sq_err += _dot(err, err)
        if both is None:
            self.counted += err.size
            abs_out[...] = err
            finite_err = err
        else:
            self.counted += int(np.count_nonzero(both))
            abs_out[...] = np.where(both, err, np.nan)
            finite_err = err[both]
            np.copyto(err, -1.0, where=~both)
        self._bin(finite_err)
        local = int(np.argmax(err))
        if err[local] > self.worst_value:
            self.worst_flat, self.worst_value = start + local, float(err[local])

    def _count_nonfinite(self, start: int, ref: np.ndarray, var: np.ndarray) -> np.ndarray:
        """Count the chunk's NaN/Inf on each side, note the first, return where both are
        finite."""
        ref_finite, var_finite = np.isfinite(ref), np.isfinite(var)
        bad_ref = ~ref_finite
        bad_var = ref_finite & ~var_finite
        self.nonfinite_ref += int(np.count_nonzero(bad_ref))
        self.nonfinite_var += int(np.count_nonzero(bad_var))
        if self.first_bad_reference < 0 and bad_ref.any():
            self.first_bad_reference = start + int(np.argmax(bad_ref))
        if self.first_bad_variant < 0 and bad_var.any():
            self.first_bad_variant = start + int(np.argmax(bad_var))
        both: np.ndarray = ref_finite & var_finite
        return both

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


def _products(ref: np.ndarray, var: np.ndarray) -> tuple[float, float, float]:
    """sum(ref²), sum(var²) and sum(ref·var) of float64 vectors; NaN or inf, silently, when a
    value is not finite (0·inf, inf - inf): the caller then masks and sums again."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _dot(ref, ref), _dot(var, var), _dot(ref, var)


def _dot(left: np.ndarray, right: np.ndarray) -> float:
    """A dot product on this thread. numpy's ``dot`` hands vectors this long to OpenBLAS's
    thread pool, whose waking and spinning threads cost more CPU than the sum itself (2 s of
    CPU for 2000 chunks on a loaded 2-core machine, against 0.06 s here) and compete with
    onnxruntime's threads."""
    return float(np.einsum("i,i->", left, right))
