"""Pooled embeddings: what a sentence-embedding model is used for, compared sentence by sentence.

A text encoder exports ``last_hidden_state`` [batch, tokens, hidden]; its users mean-pool it
over the tokens the attention mask keeps (and usually L2-normalize), then compare sentences by
cosine. Token-level errors of a quantized variant can look large while the pooled embeddings
barely move, or the other way round, so the embedding suite gates the pooled vectors: the
worst sentence's cosine and, optionally, absolute or relative errors of the pooled matrix.

Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_onnxparity.compare.gates import GateOutcome, evaluate, failure_message
from pytest_onnxparity.compare.metrics import OutputStats, compare_outputs, json_float
from pytest_onnxparity.config.tables import ConfigError, check_keys
from pytest_onnxparity.config.tolerances import (
    TIERS,
    TOLERANCE_KEYS,
    Tolerance,
    ToleranceError,
    ToleranceLayer,
    tier_default,
    validate_layer,
)

POOLING_KINDS = ("mean", "cls", "none")
POOLED_KEYS = ("output", "mask", "pooling", "normalize", "tiers")
POOLED_OUTPUT = "pooled"
"""The output name of the pooled gates: in messages, results and ``--parity-tolerance`` scopes
(``model/int8/pooled:min_cosine=0.95``)."""


class PoolingError(ValueError):
    """The graph's outputs or inputs do not fit the pooling; the message names the fix."""


@dataclass(frozen=True)
class PooledOptions:
    """The validated ``[suite.pooled]`` table.

    ``output``: the graph output to pool (``last_hidden_state``), or an already pooled output
    (``sentence_embedding``) with ``pooling = "none"``. ``mask``: the input whose non-zero
    entries mark real tokens (None, or an input the graph lacks: every token counts).
    ``pooling``: ``mean`` over kept tokens, ``cls`` (the first token) or ``none``.
    ``normalize``: L2-normalize each pooled vector first (cosine is unchanged; absolute errors
    become scale-free). ``tiers``: limits per precision tier, in the ordinary tolerance keys; a
    tier without an entry uses the built-in tier default. ``min_cosine`` is the worst sentence's.
    """

    output: str = "last_hidden_state"
    mask: str | None = "attention_mask"
    pooling: str = "mean"
    normalize: bool = True
    tiers: Mapping[str, ToleranceLayer] = field(default_factory=dict)

    def tolerance(self, tier: str) -> Tolerance:
        """The pooled limits of ``tier`` before command-line overrides."""
        if tier in self.tiers:
            return Tolerance().overlaid(self.tiers[tier])
        return tier_default(tier)

    def describe(self) -> str:
        if self.pooling == "none":
            what = f"output {self.output!r} as exported"
        elif self.pooling == "cls":
            what = f"first token of {self.output!r}"
        else:
            over = f" over {self.mask!r}" if self.mask else ""
            what = f"mean of {self.output!r}{over}"
        return what + (", L2-normalized" if self.normalize else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "mask": self.mask,
            "pooling": self.pooling,
            "normalize": self.normalize,
        }


def parse_pooled_options(raw: Mapping[str, Any], where: str) -> PooledOptions:
    """Validate a raw ``[suite.pooled]`` table; ``where`` names it in errors."""
    check_keys(raw, POOLED_KEYS, where)
    output = raw.get("output", "last_hidden_state")
    if not isinstance(output, str) or not output:
        raise ConfigError(f"{where}: output must be an output name, got {output!r}")
    mask = raw.get("mask", "attention_mask")
    if mask is not None and (not isinstance(mask, str) or not mask):
        raise ConfigError(f"{where}: mask must be an input name, got {mask!r}")
    pooling = raw.get("pooling", "mean")
    if pooling not in POOLING_KINDS:
        raise ConfigError(f"{where}: pooling {pooling!r} is not one of {', '.join(POOLING_KINDS)}")
    normalize = raw.get("normalize", True)
    if not isinstance(normalize, bool):
        raise ConfigError(f"{where}: normalize must be true or false, got {normalize!r}")
    tiers_raw = raw.get("tiers", {})
    if not isinstance(tiers_raw, Mapping):
        raise ConfigError(f"{where}: tiers must be a table of tiers, got {tiers_raw!r}")
    tiers: dict[str, ToleranceLayer] = {}
    for tier, table in tiers_raw.items():
        if tier not in TIERS:
            raise ConfigError(f"{where} tiers: unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
        check_keys(table, TOLERANCE_KEYS, f"{where} tiers.{tier}")
        try:
            tiers[tier] = validate_layer(table, f"{where} tiers.{tier}")
        except ToleranceError as error:
            raise ConfigError(str(error)) from None
    return PooledOptions(
        output=output, mask=mask, pooling=pooling, normalize=normalize, tiers=tiers
    )


def pool(output: np.ndarray, mask: np.ndarray | None, options: PooledOptions) -> np.ndarray:
    """One float64 vector per sentence: [batch, hidden] from [batch, tokens, hidden]. A NaN or
    Inf in a sentence's tokens leaves NaN/Inf in its vector (the comparison counts them)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _pool(np.asarray(output, dtype=np.float64), mask, options)


def _pool(values: np.ndarray, mask: np.ndarray | None, options: PooledOptions) -> np.ndarray:
    if options.pooling == "none":
        pooled = values.reshape(len(values), -1)
    else:
        if values.ndim != 3:
            raise PoolingError(
                f"output {options.output!r} has shape {list(values.shape)}; {options.pooling} "
                "pooling needs [batch, tokens, hidden] (for an already pooled output set "
                'pooling = "none" in [suite.pooled])'
            )
        if options.pooling == "cls":
            pooled = values[:, 0, :]
        else:
            weights = (
                np.ones(values.shape[:2])
                if mask is None
                else (np.asarray(mask) != 0).astype(np.float64)
            )
            if weights.shape != values.shape[:2]:
                raise PoolingError(
                    f"mask {options.mask!r} has shape {list(weights.shape)} but "
                    f"{options.output!r} is {list(values.shape)}; the mask must be [batch, tokens]"
                )
            counts = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
            pooled = (values * weights[..., None]).sum(axis=1) / counts
    if options.normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.where(norms > 0, norms, 1.0)
    return pooled


def row_cosines(reference: np.ndarray, variant: np.ndarray) -> np.ndarray:
    """Cosine of each row pair; 1 where both rows are zero, 0 where only one is, NaN where
    either holds a NaN or Inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        ref_norm = np.linalg.norm(reference, axis=1)
        var_norm = np.linalg.norm(variant, axis=1)
        dot = (reference * variant).sum(axis=1)
        both = (ref_norm > 0) & (var_norm > 0)
        cosines = np.where(both, dot / np.where(both, ref_norm * var_norm, 1.0), 0.0)
    cosines = np.where((ref_norm == 0) & (var_norm == 0), 1.0, cosines)
    # A row with a NaN or Inf on either side has no cosine: NaN, never a number that could pass.
    cosines = np.where(np.isfinite(ref_norm) & np.isfinite(var_norm), cosines, np.nan)
    return np.clip(cosines, -1.0, 1.0)


@dataclass(frozen=True)
class PooledComparison:
    """The pooled vectors of every sentence compared: statistics of the pooled matrix (its
    ``cosine`` is the worst sentence's), gate outcomes and each sentence's cosine."""

    stats: OutputStats
    gates: tuple[GateOutcome, ...]
    cosines: tuple[float, ...]
    labels: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def worst_sentence(self) -> int:
        return int(np.argmin(self.cosines)) if self.cosines else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "stats": self.stats.to_json(),
            "gates": [gate.to_json() for gate in self.gates],
            "sentences": len(self.cosines),
            "min_cosine": json_float(float(np.min(self.cosines))) if self.cosines else 1.0,
            "mean_cosine": json_float(float(np.mean(self.cosines))) if self.cosines else 1.0,
            "worst_sentence": self.labels[self.worst_sentence] if self.labels else None,
        }

    def failure_text(self, title: str, hint: str) -> str:
        lines = failure_message(title, [self.stats], self.gates, hint).splitlines()
        worst = self.worst_sentence
        failed = sum(not gate.passed for gate in self.gates)
        lines.insert(
            1 + failed,
            f"  worst sentence: {self.labels[worst]} with cosine {self.cosines[worst]:.6g} "
            f"(mean over {len(self.cosines)} sentences {np.mean(self.cosines):.6g})",
        )
        return "\n".join(lines)


def compare_pooled(
    reference: np.ndarray,
    variant: np.ndarray,
    tolerance: Tolerance,
    labels: Sequence[str] = (),
) -> PooledComparison:
    """Gate the pooled ``variant`` [sentences, hidden] against ``reference``."""
    cosines = row_cosines(reference, variant)
    stats = compare_outputs(POOLED_OUTPUT, reference, variant, argmax_axis=None)
    if stats.finite:
        stats = replace(stats, cosine=float(cosines.min()) if cosines.size else 1.0)
    labels = tuple(labels) or tuple(f"#{index}" for index in range(len(cosines)))
    return PooledComparison(
        stats=stats,
        gates=evaluate(stats, tolerance),
        cosines=tuple(float(c) for c in cosines),
        labels=labels,
    )
