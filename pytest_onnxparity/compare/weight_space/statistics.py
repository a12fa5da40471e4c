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


def measure(reference: np.ndarray, variant: np.ndarray, float_type: str | None) -> WeightStatistics:
    """Compare two arrays of the same shape; ``float_type`` names a float form's storage type
    (None for a quantized form)."""
    shape = reference.shape
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    v = np.asarray(variant, dtype=np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        r_finite, v_finite = np.isfinite(r), np.isfinite(v)
        inherited = ~r_finite & ~v_finite & (r == v)
        excluded = inherited | _out_of_range(r, v, float_type)
        bad_variant = ~v_finite & ~excluded
        bad_reference = ~r_finite & ~excluded & v_finite
        kept = ~excluded & r_finite & v_finite
        rr, vv = r[kept], v[kept]
        diff = vv - rr
        norm_r, norm_v, norm_d = (float(np.linalg.norm(x)) for x in (rr, vv, diff))
        scale = max(float(np.ptp(rr)), float(np.max(np.abs(rr)))) if rr.size else 0.0
        max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
        offset = float(np.mean(diff)) / (norm_r / math.sqrt(rr.size)) if norm_r > 0 else 0.0
        if bad_variant.any():
            worst = int(np.flatnonzero(bad_variant)[0])
        elif bad_reference.any():
            worst = int(np.flatnonzero(bad_reference)[0])
        elif diff.size:
            worst = int(np.flatnonzero(kept)[int(np.argmax(np.abs(diff)))])
        else:
            worst = 0
        transposed = None
        if len(shape) == 2 and shape[0] == shape[1] > 1 and norm_r > 0 and kept.all():
            flipped = v.reshape(shape).T.reshape(-1)
            transposed = float(np.linalg.norm(flipped - r)) / norm_r
    return WeightStatistics(
        elements=int(r.size),
        compared=int(rr.size),
        rel_l2=_ratio(norm_d, norm_r),
        cosine=float(np.dot(rr, vv)) / (norm_r * norm_v)
        if norm_r > 0 and norm_v > 0
        else (1.0 if norm_r == norm_v else 0.0),
        max_abs=max_abs,
        max_abs_over_range=_ratio(max_abs, scale),
        norm_ratio=_ratio(norm_v, norm_r, both_zero=1.0),
        mean_offset=offset,
        worst_index=tuple(int(i) for i in np.unravel_index(worst, shape)) if r.size else (),
        worst_value=float(v[worst]) if v.size else 0.0,
        worst_reference=float(r[worst]) if r.size else 0.0,
        non_finite=int(bad_variant.sum()),
        reference_non_finite=int(bad_reference.sum()),
        inherited=int(inherited.sum()),
        out_of_range=int(excluded.sum() - inherited.sum()),
        transposed_rel_l2=transposed,
    )


def _out_of_range(r: np.ndarray, v: np.ndarray, float_type: str | None) -> np.ndarray:
    """Reference values a narrow float type cannot hold, stored as that type holds them: beyond
    its largest finite value (±Inf included) and stored as that value with the same sign (an
    Inf in the variant is not that: it fails as non-finite), or below its smallest normal and
    stored as zero or a subnormal of the same sign."""
    if float_type not in _FLOAT_RANGE:
        return np.zeros(r.shape, dtype=bool)
    tiny, largest = _FLOAT_RANGE[float_type]
    magnitude, same_sign = np.abs(r), np.sign(v) == np.sign(r)
    saturated = (magnitude > largest) & same_sign & np.isfinite(v) & (np.abs(v) >= largest)
    underflow = (magnitude > 0) & (magnitude < tiny) & (np.abs(v) <= tiny) & (same_sign | (v == 0))
    return np.asarray(saturated | underflow)


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
