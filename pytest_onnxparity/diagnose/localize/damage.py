"""Damage, not drift: the error a node adds on its own, against what this variant's healthy
quantization adds at nodes of the same op type.

A quantized variant adds error at every quantized node; a damaged weight adds far more at one.
The replay gives each matched tensor its *local* rel_l2 (its segment run on the reference's
inputs). The *noise* of an op type is the median local rel_l2 of its nodes that add any error
(with at least :data:`MIN_PEERS` of them), never below the variant's overall median; a node's
*damage* is its local rel_l2 over that noise. A node is damaged when the damage reaches
``damage_ratio`` and the local error is at least :data:`MIN_DAMAGE_REL_L2`, when the segment
makes NaN/Inf from finite inputs, or when a weight it reads fails weight-space parity (the
prior).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from pytest_onnxparity.diagnose.localize.records import TensorDrift

MIN_PEERS = 3
"""Nodes of an op type needed before their median counts as that type's noise."""

MIN_DAMAGE_REL_L2 = 0.01
"""Below 1 % of the tensor's norm added locally, nothing is damage, however quiet the rest."""


def noise_levels(drifts: Sequence[TensorDrift]) -> dict[str, float]:
    """Per op type, the local rel_l2 that this variant's nodes of that type ordinarily add."""
    adding: dict[str, list[float]] = {}
    for drift in drifts:
        local = drift.local_rel_l2
        if math.isfinite(local) and local > 0.0:
            adding.setdefault(drift.op_type, []).append(local)
    every = [local for values in adding.values() for local in values]
    floor = statistics.median(every) if len(every) >= MIN_PEERS else 0.0
    levels = {
        op_type: statistics.median(values) if len(values) >= MIN_PEERS else 0.0
        for op_type, values in adding.items()
    }
    op_types = {drift.op_type for drift in drifts}
    return {op_type: max(levels.get(op_type, 0.0), floor) for op_type in sorted(op_types)}


def assess(
    drifts: Sequence[TensorDrift],
    damage_ratio: float,
    weight_failures: Mapping[str, Sequence[str]],
) -> tuple[tuple[TensorDrift, ...], dict[str, float]]:
    """``drifts`` with their noise, damage and verdict filled in, and the noise per op type.

    ``weight_failures`` maps a tensor to the reference weights of its segment that fail
    weight-space parity.
    """
    noise = noise_levels(drifts)
    assessed = []
    for drift in drifts:
        expected = noise.get(drift.op_type, 0.0)
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
