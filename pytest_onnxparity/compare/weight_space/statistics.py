"""Statistics of one variant weight against the reference's: ``rel_l2``, cosine, the largest
error over the reference's range, the worst element, and what the numbers say went wrong
(zeroed, sign-flipped, rescaled, shifted, transposed).

Some elements are left out of the statistics and counted instead: ±Inf where the reference
holds the same ±Inf (a deliberate fill such as ``masked_fill(-inf)``, inherited), and, for a
float16/bfloat16 form, reference values beyond what that type can hold (±Inf included) stored
as its largest finite value of the same sign (onnxruntime's fp16 converter clamps them), or
below its smallest normal and rounded to zero or to a subnormal of the same sign. Any other NaN
or Inf of the variant is counted as non-finite and fails its weight; a NaN or Inf in the
reference that the variant does not repeat is counted too (NaN never passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# Smallest normal and largest finite value of the narrow float storage types.
_FLOAT_RANGE = {"float16": (2.0**-14, 65504.0), "bfloat16": (2.0**-126, 3.3895313892515355e38)}


@dataclass(frozen=True)
class WeightStatistics:
    """How far a variant's weight is from the reference's, over the ``compared`` elements.

    ``max_abs_over_range`` divides the largest error by the reference's ``max - min``, or by its
    largest magnitude when that is larger (a narrow-range LayerNorm gain is not judged on its
    spread). ``transposed_rel_l2`` is the rel_l2 of the variant transposed, for square 2-D
    weights (a transposed square weight has the right shape and the wrong values).
    """

    elements: int
    compared: int
    rel_l2: float
    cosine: float
    max_abs: float
    max_abs_over_range: float
    norm_ratio: float
    mean_offset: float
    worst_index: tuple[int, ...]
    worst_value: float
    worst_reference: float
    non_finite: int = 0
    reference_non_finite: int = 0
    inherited: int = 0
    out_of_range: int = 0
    transposed_rel_l2: float | None = None

    def diagnosis(self) -> str:
        """A few words on what the numbers suggest: the first thing to check."""
        if self.non_finite:
            return f"{self.non_finite} NaN/Inf values"
        if self.reference_non_finite:
            return f"the reference holds {self.reference_non_finite} NaN/Inf values"
        if self.norm_ratio == 0 and self.compared:
            return "all zeros"
        if self.transposed_rel_l2 is not None and self.transposed_rel_l2 < self.rel_l2 / 4:
            return "transposed"
        if self.cosine < -0.5:
            return "sign-flipped"
        if abs(self.mean_offset) > 0.5:
            return f"shifted by {self.mean_offset:+.3g} x its RMS on average (a zero point?)"
        if self.cosine < 0.5:
            return "sign or packing wrong"
        if self.cosine > 0.95 and abs(math.log(self.norm_ratio or 1.0)) > math.log(1.25):
            return f"rescaled x{self.norm_ratio:.3g}"
        return "differs"

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["worst_index"] = list(self.worst_index)
        return {key: json_number(value) for key, value in values.items()}


CHUNK = 1 << 20
"""Elements compared at a time: memory holds the two arrays plus float64 copies of one chunk."""


@dataclass
class _Sums:
    """What the chunks of one comparison add up to."""

    compared: int = 0
    rr: float = 0.0
    vv: float = 0.0
    dd: float = 0.0
    rv: float = 0.0
    d: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    peak: float = 0.0
    max_abs: float = -1.0
    worst: int | None = None
    first_bad_variant: int | None = None
    first_bad_reference: int | None = None
    non_finite: int = 0
    reference_non_finite: int = 0
    inherited: int = 0
    excluded: int = 0


def measure(reference: np.ndarray, variant: np.ndarray, float_type: str | None) -> WeightStatistics:
    """Compare two arrays of the same shape; ``float_type`` names a float form's storage type
    (None for a quantized form). Runs over chunks of :data:`CHUNK` elements in float64, so the
    arrays themselves are never copied whole."""
    shape = reference.shape
    r_all, v_all = reference.reshape(-1), variant.reshape(-1)
    sums = _Sums()
    with np.errstate(all="ignore"):
        for start in range(0, r_all.size, CHUNK):
            r = r_all[start : start + CHUNK].astype(np.float64)
            v = v_all[start : start + CHUNK].astype(np.float64)
            _add_chunk(sums, start, r, v, float_type)
        transposed = _transposed_rel_l2(reference, variant, sums)
    norm_r, norm_v, norm_d = math.sqrt(sums.rr), math.sqrt(sums.vv), math.sqrt(sums.dd)
    worst = next(
        (
            i
            for i in (sums.first_bad_variant, sums.first_bad_reference, sums.worst)
            if i is not None
        ),
        0,
    )
    return WeightStatistics(
        elements=int(r_all.size),
        compared=sums.compared,
        rel_l2=_ratio(norm_d, norm_r),
        cosine=sums.rv / (norm_r * norm_v)
        if norm_r > 0 and norm_v > 0
        else (1.0 if norm_r == norm_v else 0.0),
        max_abs=max(sums.max_abs, 0.0),
        max_abs_over_range=_ratio(max(sums.max_abs, 0.0), max(sums.high - sums.low, sums.peak)),
        norm_ratio=_ratio(norm_v, norm_r, both_zero=1.0),
        mean_offset=sums.d / sums.compared / (norm_r / math.sqrt(sums.compared))
        if norm_r > 0
        else 0.0,
        worst_index=tuple(int(i) for i in np.unravel_index(worst, shape)) if r_all.size else (),
        worst_value=float(v_all[worst]) if v_all.size else 0.0,
        worst_reference=float(r_all[worst]) if r_all.size else 0.0,
        non_finite=sums.non_finite,
        reference_non_finite=sums.reference_non_finite,
        inherited=sums.inherited,
        out_of_range=sums.excluded - sums.inherited,
        transposed_rel_l2=transposed,
    )


def _add_chunk(
    sums: _Sums, start: int, r: np.ndarray, v: np.ndarray, float_type: str | None
) -> None:
    out_of_range = _out_of_range(r, v, float_type)
    if _add_finite(sums, start, r, v, out_of_range):
        return
    r_finite, v_finite = np.isfinite(r), np.isfinite(v)
    inherited = ~r_finite & ~v_finite & (r == v)
    excluded = inherited
    if out_of_range is not None:
        excluded = inherited.copy()
        excluded[out_of_range] = True
    bad_variant = ~v_finite & ~excluded
    bad_reference = ~r_finite & ~excluded & v_finite
    kept = ~excluded & r_finite & v_finite
    _add_values(sums, start, r[kept], v[kept], kept)
    if sums.first_bad_variant is None and bad_variant.any():
        sums.first_bad_variant = start + int(np.flatnonzero(bad_variant)[0])
    if sums.first_bad_reference is None and bad_reference.any():
        sums.first_bad_reference = start + int(np.flatnonzero(bad_reference)[0])
    sums.non_finite += int(bad_variant.sum())
    sums.reference_non_finite += int(bad_reference.sum())
    sums.inherited += int(inherited.sum())
    sums.excluded += int(excluded.sum())


def _add_finite(
    sums: _Sums, start: int, r: np.ndarray, v: np.ndarray, out_of_range: np.ndarray | None
) -> bool:
    """The common case, without masks or masked copies: every element the statistics keep is
    finite (as ``compare_outputs`` tells it, from the sums). Elements stored out of range are
    left out by zeroing them on both sides, where they add nothing to the sums and the error;
    their values are put back and False returned when the chunk holds a NaN or Inf (or squares
    past float64's range), for the masked path."""
    saved = None
    if out_of_range is not None:
        saved = r[out_of_range], v[out_of_range]
        r[out_of_range] = 0.0
        v[out_of_range] = 0.0
    rr, vv, rv = _dot(r, r), _dot(v, v), _dot(r, v)
    if not math.isfinite(rr + vv + rv):
        if saved is not None:
            r[out_of_range], v[out_of_range] = saved
        return False
    excluded = 0 if out_of_range is None else int(out_of_range.size)
    diff = v - r
    sums.compared += r.size - excluded
    sums.excluded += excluded
    sums.rr += rr
    sums.vv += vv
    sums.dd += _dot(diff, diff)
    sums.rv += rv
    sums.d += float(diff.sum())
    if excluded == r.size:
        return True
    # A zero put in can only widen [low, high] towards 0, which leaves max(high - low, peak),
    # the one use of the two, as it was.
    low, high = float(r.min()), float(r.max())
    sums.low, sums.high = min(sums.low, low), max(sums.high, high)
    sums.peak = max(sums.peak, -sums.low, sums.high)
    np.abs(diff, out=diff)
    at = int(np.argmax(diff))
    if out_of_range is not None and excluded and float(diff[at]) == 0:
        kept = np.ones(r.size, dtype=bool)  # every kept error is 0: the first kept element
        kept[out_of_range] = False
        at = int(np.argmax(kept))
    if float(diff[at]) > sums.max_abs:
        sums.max_abs = float(diff[at])
        sums.worst = start + at
    return True


def _add_values(
    sums: _Sums, start: int, rr: np.ndarray, vv: np.ndarray, kept: np.ndarray | None
) -> None:
    """Add the compared elements of a chunk; ``kept`` maps them back to the chunk (None: all)."""
    diff = vv - rr
    sums.compared += int(rr.size)
    sums.rr += _dot(rr, rr)
    sums.vv += _dot(vv, vv)
    sums.dd += _dot(diff, diff)
    sums.rv += _dot(rr, vv)
    sums.d += float(diff.sum())
    if not rr.size:
        return
    sums.low, sums.high = min(sums.low, float(rr.min())), max(sums.high, float(rr.max()))
    sums.peak = max(sums.peak, -sums.low, sums.high)
    np.abs(diff, out=diff)
    at = int(np.argmax(diff))
    if float(diff[at]) > sums.max_abs:
        sums.max_abs = float(diff[at])
        sums.worst = start + (at if kept is None else int(np.flatnonzero(kept)[at]))


def _dot(left: np.ndarray, right: np.ndarray) -> float:
    """A dot product on this thread, as ``compare_outputs`` sums: numpy's ``dot`` hands vectors
    this long to OpenBLAS's thread pool, whose waking and spinning threads cost more CPU than
    the sums (all-MiniLM-L6-v2's three variants on a loaded 2-core machine: 4.4 s of CPU with
    the pool, 0.9 s here) and take the cores from onnxruntime's threads."""
    return float(np.einsum("i,i->", left, right))


def _transposed_rel_l2(reference: np.ndarray, variant: np.ndarray, sums: _Sums) -> float | None:
    """rel_l2 of the variant transposed, for a square 2-D weight every element of which was
    compared (a row block at a time)."""
    shape = reference.shape
    whole = sums.compared == reference.size
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2 or not whole or sums.rr == 0:
        return None
    rows = max(1, CHUNK // shape[0])
    total = 0.0
    for start in range(0, shape[0], rows):
        r = reference[start : start + rows].astype(np.float64)
        flipped = variant[:, start : start + rows].T.astype(np.float64)
        total += float(np.sum((flipped - r) ** 2))
    return math.sqrt(total) / math.sqrt(sums.rr)


def _out_of_range(r: np.ndarray, v: np.ndarray, float_type: str | None) -> np.ndarray | None:
    """Where the reference holds values a narrow float type cannot hold, stored as that type
    holds them: beyond its largest finite value (±Inf included) and stored as that value with
    the same sign (an Inf in the variant is not that: it fails as non-finite), or below its
    smallest normal and stored as zero or a subnormal of the same sign. Their positions in the
    chunk, in order; None when the chunk has no such value. Only the few candidates outside
    the type's normal range are looked at closely."""
    if float_type not in _FLOAT_RANGE:
        return None
    tiny, largest = _FLOAT_RANGE[float_type]
    magnitude = np.abs(r)
    candidates = np.flatnonzero(~((magnitude >= tiny) & (magnitude <= largest)))
    if not candidates.size:
        return None
    magnitude, rc, vc = magnitude[candidates], r[candidates], v[candidates]
    big, small = magnitude > largest, (magnitude > 0) & (magnitude < tiny)
    if not big.any() and not small.any():
        return None
    same_sign = np.sign(vc) == np.sign(rc)
    saturated = big & same_sign & np.isfinite(vc) & (np.abs(vc) >= largest)
    underflow = small & (np.abs(vc) <= tiny) & (same_sign | (vc == 0))
    return np.asarray(candidates[saturated | underflow])


def _ratio(numerator: float, denominator: float, both_zero: float = 0.0) -> float:
    if denominator > 0:
        return numerator / denominator
    return both_zero if numerator == 0 else math.inf


def json_number(value: Any) -> Any:
    """A number as JSON can hold it: Inf as the largest float (as output statistics write it),
    NaN as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return math.copysign(float(np.finfo(np.float64).max), value)
    return value
