"""Damage, not drift: the error a node adds on its own, against what this variant's healthy
quantization adds at nodes like it.

A quantized variant adds error at every quantized node; a damaged weight adds far more at one.
The replay gives each matched tensor its *local* rel_l2 (its segment run on the reference's
inputs) and the segment's *precision* (``"8-bit"``, ``"4-bit"``, ``"float16"``, ``"float"``).
A node's *noise* is the median local rel_l2 of its *peers* that add any error, at the same
precision, from the first group with at least :data:`MIN_PEERS` of them:

1. its role: nodes whose names differ only in indices — the same layer of every block of a
   transformer (``/encoder/layer.#/output/dense/MatMul``), which quantize alike: a per-tensor
   int8 FFN output projection adds ten times what a query projection does, in every layer;
2. its op type (``MatMul``);
3. every node of the precision;

and never below :data:`TYPICAL_NOISE` for the precision (a float node is expected to add none).
Its *damage* is its local rel_l2 over that noise. It is damaged when the damage reaches
``damage_ratio`` and the local error is at least :data:`MIN_DAMAGE_REL_L2`, when the segment
makes NaN/Inf from finite inputs, or when a weight it reads fails weight-space parity (the
prior).
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence

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

_INDEX = re.compile(r"(?<![A-Za-z])\d+")
"""A number not glued to a word: ``layer.3``, ``blocks_3``, ``/3/`` — but ``fc1`` stays."""


def role(drift: TensorDrift) -> str:
    """The node's name (its tensor's where it has none) with every index as ``#``."""
    return _INDEX.sub("#", drift.node or drift.tensor)


_GROUPS: tuple[Callable[[TensorDrift], str], ...] = (
    lambda d: f"its {d.precision} peers {role(d)}",
    lambda d: f"{d.precision} {d.op_type} nodes",
    lambda d: f"{d.precision} nodes",
)
"""How peers are grouped, most specific first: role, op type, precision."""


def noise_levels(drifts: Sequence[TensorDrift]) -> dict[str, tuple[str, float]]:
    """Per tensor: which peers its noise comes from (``"its 8-bit peers
    /encoder/layer.#/output/dense/MatMul"``, ``"8-bit MatMul nodes"``, ``"8-bit nodes"``,
    ``"typical 8-bit"``) and the noise."""
    adding: dict[str, list[float]] = {}
    for drift in drifts:
        local = drift.local_rel_l2
        if math.isfinite(local) and local > 0.0:
            for key in _GROUPS:
                adding.setdefault(key(drift), []).append(local)
    levels = {}
    for drift in drifts:
        typical = TYPICAL_NOISE.get(drift.precision, 0.0)
        source, measured = f"typical {drift.precision}", typical
        for key in _GROUPS:
            peers = adding.get(key(drift), [])
            if len(peers) >= MIN_PEERS:
                source, measured = key(drift), statistics.median(peers)
                break
        levels[drift.tensor] = (source, max(measured, typical))
    return levels


def assess(
    drifts: Sequence[TensorDrift],
    damage_ratio: float,
    weight_failures: Mapping[str, Sequence[str]],
) -> tuple[tuple[TensorDrift, ...], dict[str, float]]:
    """``drifts`` with their noise, damage and verdict filled in, and the noise level of each
    group of peers that set one.

    ``weight_failures`` maps a tensor to the reference weights of its segment that fail
    weight-space parity.
    """
    levels = noise_levels(drifts)
    assessed = []
    for drift in drifts:
        source, expected = levels[drift.tensor]
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
                noise_from=source,
                damage=damage,
                damaged=damaged,
                weight_failures=failures,
            )
        )
    noise = {source: level for source, level in levels.values()}
    return tuple(assessed), dict(sorted(noise.items()))


def _damage(local: float, expected: float) -> float:
    if math.isnan(local):
        return math.nan
    if expected > 0.0:
        return local / expected
    return math.inf if local > 0.0 else 0.0
