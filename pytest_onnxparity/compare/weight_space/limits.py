"""Weight-space limits per storage tier, and the ``[weights]`` config table that tunes them.

A weight is judged at the tier of the form the variant stores it in: float32/float64 is
``fp32``, float16 ``fp16``, bfloat16 ``bf16``, 8-bit and wider integers and float8 ``int8``, 4-
and 2-bit data ``int4``. The float tensors that are not read as weights (biases, norm gains) are
judged at the file's tier when that is looser, since quantizers adjust them (nncf's bias
correction). So an int8 file's MatMulNBits weights are held to the int4 limits, a MatMul weight
an int8 file keeps at float32 must be identical, and its biases may move within int8's limits.

The defaults come from a corpus of real models (all-MiniLM-L6-v2, silero-vad, Whisper tiny.en)
with healthy and damaged variants; ``docs/weights.md`` lists the measurements. Worst healthy
against best damaged per-weight ``rel_l2``: fp16 2.3e-4 vs Inf, int8 (QDQ included) 0.395 vs
1.0, int4 0.197 vs 2.01; ``max_abs_over_range``: fp16 2.8e-4, int8 0.101 vs 0.204, int4 0.0557
vs 0.538. ``min_cosine`` is measured and reported but not gated by default: a weight within
``rel_l2 <= e`` has a cosine of at least ``sqrt(1 - e**2)``, so rel_l2 already bounds it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pytest_onnxparity.config.tables import ConfigError, check_keys, string_list
from pytest_onnxparity.config.tolerances import TIERS, ToleranceError, parse_limit

LIMIT_KEYS = ("rel_l2", "max_abs_over_range", "min_cosine")
SETTING_KEYS = ("enabled", "skip", "skip_variants", "max_unmatched_fraction")
WEIGHTS_KEYS = (*SETTING_KEYS, *TIERS)
"""The keys of the ``[weights]`` table: the settings, and one sub-table of limits per tier."""

DEFAULT_MAX_UNMATCHED_FRACTION = 0.5
"""A variant whose forms cover less than half of the reference's weight elements fails: a
check that compares almost nothing must not pass quietly."""


@dataclass(frozen=True)
class WeightLimits:
    """What one tier allows a weight: upper bounds on ``rel_l2`` (||v - r|| / ||r||) and
    ``max_abs_over_range`` (max |v - r| over the reference's max - min, or its largest
    magnitude when that is larger), a lower bound on ``min_cosine``. None is not gated."""

    rel_l2: float | None = None
    max_abs_over_range: float | None = None
    min_cosine: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_LIMITS: Mapping[str, WeightLimits] = {
    # Float storage rounds each value: fp16 keeps 11 significant bits (relative error up to
    # 4.9e-4), bf16 8 (3.9e-3). fp32 storage must hold the reference's values unchanged.
    "fp32": WeightLimits(rel_l2=1e-5, max_abs_over_range=1e-5),
    "fp16": WeightLimits(rel_l2=1e-3, max_abs_over_range=1e-3),
    "bf16": WeightLimits(rel_l2=1e-2, max_abs_over_range=1e-2),
    "int8": WeightLimits(rel_l2=0.5, max_abs_over_range=0.15),
    "int4": WeightLimits(rel_l2=0.5, max_abs_over_range=0.25),
}


WEIGHT_TIERS = ("fp32", "fp16", "bf16", "int8", "int4")
"""The tiers from the tightest weight limits to the loosest."""


def storage_tier(bits: int, float_type: str | None, file_tier: str | None = None) -> str:
    """The tier a stored form is judged at: by its float type, else by its bits per value; or
    ``file_tier`` when that is looser (pass it for the float tensors a quantizer may adjust:
    nncf's bias correction changes biases by about 1% in an int8 file)."""
    if float_type is not None:
        tier = {"float16": "fp16", "bfloat16": "bf16"}.get(float_type, "fp32")
    else:
        tier = "int8" if bits >= 8 else "int4"
    if file_tier in WEIGHT_TIERS and WEIGHT_TIERS.index(file_tier) > WEIGHT_TIERS.index(tier):
        return str(file_tier)
    return tier


@dataclass(frozen=True)
class WeightSettings:
    """The resolved ``[weights]`` table (with ``--parity-weights``): whether the check runs,
    the reference weights it leaves out (names or globs), the variant tags or tiers it leaves
    out, the share of weight elements that may go unmatched, and the limits of each tier."""

    enabled: bool = True
    skip: tuple[str, ...] = ()
    skip_variants: tuple[str, ...] = ()
    max_unmatched_fraction: float = DEFAULT_MAX_UNMATCHED_FRACTION
    limits: Mapping[str, WeightLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def limits_for(self, tier: str) -> WeightLimits:
        return self.limits.get(tier, DEFAULT_LIMITS["fp32"])

    def skips(self, name: str) -> bool:
        return any(name == pattern or fnmatch.fnmatchcase(name, pattern) for pattern in self.skip)

    def checks(self, variant: str, tier: str) -> bool:
        """Whether the file of this variant tag and tier gets a weights test."""
        return self.enabled and variant not in self.skip_variants and tier not in self.skip_variants

    def check_variants(self, known: list[str], where: str) -> None:
        """A ``skip_variants`` entry naming no tag or tier of the folder is a typo."""
        for name in self.skip_variants:
            if name not in known:
                raise ConfigError(
                    f"{where}: skip_variants names {name!r}, not a variant tag or tier of the "
                    f"export folder; known: {', '.join(known) or 'none'}"
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "skip": list(self.skip),
            "skip_variants": list(self.skip_variants),
            "max_unmatched_fraction": self.max_unmatched_fraction,
            "limits": {tier: limits.to_json() for tier, limits in self.limits.items()},
        }


def parse_weights_settings(
    raw: Mapping[str, Any] | None, where: str, enabled_override: bool | None = None
) -> WeightSettings:
    """Validate the ``[weights]`` table; errors name ``where``, the key and the allowed keys.

    ``raw`` is None when no config file has the table (the check still runs: it is on by
    default); ``enabled_override`` is ``--parity-weights`` (None when not given).
    """
    raw = {} if raw is None else raw
    check_keys(raw, WEIGHTS_KEYS, where)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: enabled must be true or false, got {enabled!r}")
    fraction = raw.get("max_unmatched_fraction", DEFAULT_MAX_UNMATCHED_FRACTION)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 <= fraction <= 1
    ):
        raise ConfigError(
            f"{where}: max_unmatched_fraction must be a number from 0 to 1 (e.g. 0.5), "
            f"got {fraction!r}"
        )
    limits = dict(DEFAULT_LIMITS)
    for tier in TIERS:
        if tier in raw:
            limits[tier] = _tier_limits(raw[tier], limits[tier], f"{where} [{tier}]")
    return WeightSettings(
        enabled=enabled if enabled_override is None else enabled_override,
        skip=tuple(string_list(raw.get("skip", []), f"{where} skip")),
        skip_variants=tuple(string_list(raw.get("skip_variants", []), f"{where} skip_variants")),
        max_unmatched_fraction=float(fraction),
        limits=limits,
    )


def _tier_limits(raw: Any, default: WeightLimits, where: str) -> WeightLimits:
    check_keys(raw, LIMIT_KEYS, where)
    overrides: dict[str, float | None] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value.lower() == "off":
            overrides[key] = None
            continue
        try:
            overrides[key] = parse_limit(value, f"{where}: {key}")
        except ToleranceError as error:
            raise ConfigError(f'{error} (or "off" to stop gating it)') from None
        if key == "min_cosine" and float(value) > 1:
            raise ConfigError(f"{where}: min_cosine must be from 0 to 1, got {value!r}")
    return replace(default, **overrides)


def parse_switch(text: str) -> bool:
    """``--parity-weights on|off`` (also true/false, yes/no, 1/0); ValueError names the choices."""
    lowered = text.strip().lower()
    if lowered in ("on", "true", "yes", "1"):
        return True
    if lowered in ("off", "false", "no", "0"):
        return False
    raise ValueError(f"expected on or off, got {text!r}")
