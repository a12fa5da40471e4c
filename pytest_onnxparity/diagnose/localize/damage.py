"""Damage, not drift: the error a node adds on its own, against what this variant's healthy
quantization adds at nodes like it.

A quantized variant adds error at every quantized node; a damaged weight adds far more at one.
The replay gives each matched tensor its *local* rel_l2 (its segment run on the reference's
inputs), and the segment's *precision* (``"8-bit"``, ``"4-bit"``, ``"float16"``, ``"float"``).
The *noise* of nodes of one op type and precision is the median local rel_l2 of those that add
any error, where there are at least :data:`MIN_PEERS` of them; else the median over every node of
that precision; else, and never below, :data:`TYPICAL_NOISE` for the precision (a float segment
is expected to add nothing). A node's *damage* is its local rel_l2 over that noise. It is damaged
when the damage reaches ``damage_ratio`` and the local error is at least
:data:`MIN_DAMAGE_REL_L2`, when the segment makes NaN/Inf from finite inputs, or when a weight it
reads fails weight-space parity (the prior).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from pytest_onnxparity.diagnose.localize.records import TensorDrift

MIN_PEERS = 3
"""Nodes needed before their median counts as noise."""

MIN_DAMAGE_REL_L2 = 0.01
"""Below 1 % of the tensor's norm added locally, nothing is damage, however quiet the rest."""

TYPICAL_NOISE = {
    "float": 0.0,
    "float16": 1e-3,
    "bfloat16": 8e-3,
    "16-bit": 1e-3,
    "8-bit": 0.03,
    "4-bit": 0.1,
    "2-bit": 0.3,
}
"""Local rel_l2 a healthy segment of each precision ordinarily adds (the medians measured on real
encoders: int8 0.025-0.034, int4 0.077-0.08, fp16 3e-4), the noise where too few nodes tell."""


def noise_key(drift: TensorDrift) -> str:
    """``MatMul/8-bit``: the op type and precision whose nodes share a noise level."""
    return f"{drift.op_type}/{drift.precision}"


def noise_levels(drifts: Sequence[TensorDrift]) -> dict[str, float]:
    """Per op type and precision, the local rel_l2 this variant's nodes ordinarily add there."""
    groups: dict[str, list[float]] = {}
    pools: dict[str, list[float]] = {}
    for drift in drifts:
        local = drift.local_rel_l2
        if math.isfinite(local) and local > 0.0:
            groups.setdefault(noise_key(drift), []).append(local)
            pools.setdefault(drift.precision, []).append(local)
    levels = {}
    for drift in drifts:
        key = noise_key(drift)
        if key in levels:
            continue
        group, pool = groups.get(key, []), pools.get(drift.precision, [])
        measured = 0.0
        if len(group) >= MIN_PEERS:
            measured = statistics.median(group)
        elif len(pool) >= MIN_PEERS:
            measured = statistics.median(pool)
        levels[key] = max(measured, TYPICAL_NOISE.get(drift.precision, 0.0))
    return dict(sorted(levels.items()))


def assess(
    drifts: Sequence[TensorDrift],
    damage_ratio: float,
    weight_failures: Mapping[str, Sequence[str]],
) -> tuple[tuple[TensorDrift, ...], dict[str, float]]:
    """``drifts`` with their noise, damage and verdict filled in, and the noise levels.

    ``weight_failures`` maps a tensor to the reference weights of its segment that fail
    weight-space parity.
    """
    noise = noise_levels(drifts)
    assessed = []
    for drift in drifts:
        expected = noise[noise_key(drift)]
        damage = _damage(drift.local_rel_l2, expected)
        failures = tuple(weight_failures.get(drift.tensor, ()))
        damaged = bool(failures) or (
            not drift.masked
            and (
                math.isinf(drift.local_rel_l2)
                or (damage >= damage_ratio and drift.local_rel_l2 >= MIN_DAMAGE_REL_L2)
            )
        )
        assessed.append(
            dataclasses.replace(
                drift,
                expected_rel_l2=expected,
                damage=damage,
                damaged=damaged,
                weight_failures=failures,
            )
        )
    return tuple(assessed), noise


def _damage(local: float, expected: float) -> float:
    if math.isnan(local):
        return math.nan
    if expected > 0.0:
        return local / expected
    return math.inf if local > 0.0 else 0.0
