"""What localization found: each intermediate tensor's drift and the damage its own node adds,
the weights behind a damaged node, and per variant the damaged nodes in rank order.

Every record is frozen and round-trips through plain JSON (``to_json``/``from_json``), which is
how the xdist controller rebuilds a worker's localizations for the plots and the summary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.diagnose.localize.config import LocalizeOptions


@dataclass(frozen=True)
class TensorDrift:
    """One matched intermediate tensor, named as in the reference graph.

    ``node``/``op_type`` are the reference node producing ``tensor`` (``node`` is ``""`` where
    the graph leaves it unnamed); ``depth`` is that node's topological index in the reference.
    ``rel_l2`` and the statistics beside it are the *drift*: the variant's own value against
    the reference's, everything upstream included. ``local_rel_l2`` is the error the node adds
    on its own (the variant's nodes replayed on the reference's inputs; NaN where the replay
    could not run), ``precision`` what the variant computes it in (``"8-bit"``, ``"4-bit"``,
    ``"float16"``, ``"float"``), ``expected_rel_l2`` what its peers ordinarily add
    (``noise_from`` says which: ``"its 8-bit peers /encoder/layer.#/fc1/MatMul"``, ``"8-bit
    MatMul nodes"``, ``"8-bit nodes"``, ``"typical 8-bit"``), ``damage`` the first over the
    second, and ``damaged`` the verdict (:mod:`~pytest_onnxparity.diagnose.localize.damage`);
    ``weight_failures`` names the reference weights it reads that fail weight-space parity.
    ``fill_fraction`` is the share of elements left out as mask fill; ``masked`` means all of
    them were (no statistics).
    ``variant_tensor`` is the name compared in the variant (the dequantized copy after a
    QuantizeLinear/DequantizeLinear pair). NaN/Inf in the variant where the reference is finite
    make ``rel_l2`` infinite.
    """

    tensor: str
    node: str
    op_type: str
    depth: int
    max_abs: float
    mean_abs: float
    rel_l2: float
    sqnr_db: float
    cosine: float
    local_rel_l2: float = math.nan
    expected_rel_l2: float = 0.0
    damage: float = math.nan
    damaged: bool = False
    weight_failures: tuple[str, ...] = ()
    variant_tensor: str = ""
    shape: tuple[int, ...] = ()
    nonfinite_in_variant: int = 0
    fill_fraction: float = 0.0
    masked: bool = False
    precision: str = "float"
    noise_from: str = ""

    def exceeds(self, tolerance_rel_l2: float) -> bool:
        return not self.masked and (self.rel_l2 > tolerance_rel_l2 or self.nonfinite_in_variant > 0)

    def node_label(self) -> str:
        return f"{self.op_type} {self.node!r}" if self.node else f"unnamed {self.op_type}"

    def describe(self) -> str:
        """``'tensor' from Op 'node' (depth d): adds rel_l2 … on its own, N× …; drift …``."""
        where = f"{self.tensor!r} from {self.node_label()} (depth {self.depth})"
        if self.masked:
            return f"{where}: all mask fill, not compared"
        nonfinite = (
            f", {self.nonfinite_in_variant} non-finite values" if self.nonfinite_in_variant else ""
        )
        fill = f", {self.fill_fraction:.0%} mask fill left out" if self.fill_fraction else ""
        return (
            f"{where}: {self.damage_phrase()}; drift rel_l2 {self.rel_l2:.3g}, "
            f"SQNR {self.sqnr_db:.1f} dB, cosine {self.cosine:.4f}, max_abs {self.max_abs:.3g}"
            f"{nonfinite}{fill}"
        )

    def damage_phrase(self) -> str:
        """How much error the node adds on its own, against this variant's noise there."""
        if math.isnan(self.local_rel_l2):
            return "error added on its own not measured"
        added = f"adds rel_l2 {self.local_rel_l2:.3g} on its own"
        if self.expected_rel_l2 > 0.0:
            source = self.noise_from or f"typical {self.precision}"
            noise = f"{source} noise" if source.startswith("typical") else f"the noise of {source}"
            added += f", {self.damage:.3g}× {noise} ({self.expected_rel_l2:.2g})"
        weights = ", ".join(repr(name) for name in self.weight_failures)
        if weights:
            added += f"; reads {weights}, failing weight-space parity"
        return added

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "node": self.node,
            "op_type": self.op_type,
            "depth": self.depth,
            "variant_tensor": self.variant_tensor,
            "shape": list(self.shape),
            "max_abs": json_float(self.max_abs),
            "mean_abs": json_float(self.mean_abs),
            "rel_l2": json_float(self.rel_l2),
            "sqnr_db": json_float(self.sqnr_db),
            "cosine": json_float(self.cosine),
            "local_rel_l2": json_float(self.local_rel_l2),
            "expected_rel_l2": json_float(self.expected_rel_l2),
            "damage": json_float(self.damage),
            "damaged": self.damaged,
            "weight_failures": list(self.weight_failures),
            "nonfinite_in_variant": self.nonfinite_in_variant,
            "fill_fraction": self.fill_fraction,
            "masked": self.masked,
            "precision": self.precision,
            "noise_from": self.noise_from,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TensorDrift:
        """The drift ``to_json`` wrote; ``float("inf")`` reads its ``"inf"`` back."""
        return cls(
            tensor=document["tensor"],
            node=document["node"],
            op_type=document["op_type"],
            depth=int(document["depth"]),
            max_abs=float(document["max_abs"]),
            mean_abs=float(document["mean_abs"]),
            rel_l2=float(document["rel_l2"]),
            sqnr_db=float(document["sqnr_db"]),
            cosine=float(document["cosine"]),
            local_rel_l2=float(document["local_rel_l2"]),
            expected_rel_l2=float(document["expected_rel_l2"]),
            damage=float(document["damage"]),
            damaged=bool(document["damaged"]),
            weight_failures=tuple(document["weight_failures"]),
            variant_tensor=document["variant_tensor"],
            shape=tuple(document["shape"]),
            nonfinite_in_variant=int(document["nonfinite_in_variant"]),
            fill_fraction=float(document["fill_fraction"]),
            masked=bool(document["masked"]),
            precision=document["precision"],
            noise_from=document["noise_from"],
        )


@dataclass(frozen=True)
class WeightSource:
    """A stored weight behind a tensor: the variant node that reads an initializer of the
    variant (a DequantizeLinear, MatMulNBits, GatherBlockQuantized, the float MatMul itself),
    the reference weight it stands for, and that weight's own error where weight-space parity
    measured it (``rel_l2`` and ``failed`` None where it did not)."""

    node: str
    op_type: str
    initializer: str
    stored_as: str
    weight: str = ""
    rel_l2: float | None = None
    failed: bool | None = None

    def describe(self) -> str:
        node = f"{self.op_type} {self.node!r}" if self.node else f"unnamed {self.op_type}"
        stands_for = (
            f" (reference weight {self.weight!r})"
            if self.weight and self.weight != self.initializer
            else ""
        )
        if self.failed is None or self.rel_l2 is None:
            error = ""
        else:
            verdict = "fails" if self.failed else "passes"
            error = f": weight rel_l2 {self.rel_l2:.3g}, {verdict} weight-space parity"
        return f"{node} reads {self.initializer!r} ({self.stored_as}){stands_for}{error}"

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "initializer": self.initializer,
            "stored_as": self.stored_as,
            "weight": self.weight,
            "rel_l2": None if self.rel_l2 is None else json_float(self.rel_l2),
            "failed": self.failed,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> WeightSource:
        return cls(
            node=document["node"],
            op_type=document["op_type"],
            initializer=document["initializer"],
            stored_as=document["stored_as"],
            weight=document["weight"],
            rel_l2=None if document["rel_l2"] is None else float(document["rel_l2"]),
            failed=document["failed"],
        )


def json_float(value: float) -> float | str:
    """Non-finite numbers as ``"inf"``/``"-inf"``/``"nan"`` (as the metrics histogram does):
    JSON has no literal for them."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


@dataclass(frozen=True)
class Localization:
    """Where a variant drifts from its reference and which nodes are damaged, tensor by tensor
    in topological order.

    ``sources`` maps damaged (and top-ranked) tensors to the stored weights behind them;
    ``noise`` is the local rel_l2 this variant ordinarily adds per op type; ``weights_checked``
    says whether weight-space parity verdicts were given as the prior, and
    ``unplaced_weight_failures`` names failing weights no matched tensor reads.
    ``differing_shapes`` lists tensors both graphs have with different shapes.
    ``memory_mb`` is the budget the batches were planned for and ``largest_batch_mb`` the
    estimate of the largest one; ``replay_error`` says why the error added on its own could not
    be measured, where it could not.
    """

    graph: str
    variant: str
    optimization_level: str
    matched: tuple[TensorDrift, ...]
    unmatched_reference: tuple[str, ...]
    unmatched_variant: tuple[str, ...]
    first_past_tolerance: TensorDrift | None
    tolerance_rel_l2: float = LocalizeOptions.tolerance_rel_l2
    top_n: int = LocalizeOptions.top_n
    instrumented_runs: int = 0
    plot: str | None = None
    damage_ratio: float = LocalizeOptions.damage_ratio
    sources: Mapping[str, tuple[WeightSource, ...]] = dataclasses.field(default_factory=dict)
    noise: Mapping[str, float] = dataclasses.field(default_factory=dict)
    weights_checked: bool = False
    unplaced_weight_failures: tuple[str, ...] = ()
    differing_shapes: tuple[str, ...] = ()
    memory_mb: int = 0
    largest_batch_mb: float = 0.0
    replay_error: str | None = None

    def ranked(self) -> tuple[TensorDrift, ...]:
        """Every compared tensor, damaged first, then by damage (largest first)."""
        return tuple(sorted((d for d in self.matched if not d.masked), key=_rank_key))

    def damaged(self) -> tuple[TensorDrift, ...]:
        """The damaged tensors in rank order."""
        return tuple(drift for drift in self.ranked() if drift.damaged)

    @property
    def first_damaged(self) -> TensorDrift | None:
        """The damaged tensor nearest the inputs (topologically first)."""
        return next((drift for drift in self.matched if drift.damaged), None)

    def top(self, n: int) -> tuple[TensorDrift, ...]:
        """The ``n`` highest-ranked tensors whose nodes add any error on their own."""
        adding = [d for d in self.ranked() if d.damaged or (d.damage > 0 and d.local_rel_l2 > 0)]
        return tuple(adding[:n])

    def with_plot(self, path: Path) -> Localization:
        """This localization, referencing the drift plot written at ``path``."""
        return dataclasses.replace(self, plot=str(path))

    def to_json(self) -> dict[str, Any]:
        first_damaged = self.first_damaged
        return {
            "graph": self.graph,
            "variant": self.variant,
            "optimization_level": self.optimization_level,
            "tolerance_rel_l2": self.tolerance_rel_l2,
            "damage_ratio": self.damage_ratio,
            "top_n": self.top_n,
            "instrumented_runs": self.instrumented_runs,
            "memory_mb": self.memory_mb,
            "largest_batch_mb": self.largest_batch_mb,
            "first_damaged": None if first_damaged is None else first_damaged.tensor,
            "damaged": [drift.tensor for drift in self.damaged()],
            "top": [drift.tensor for drift in self.top(self.top_n)],
            "first_past_tolerance": (
                None if self.first_past_tolerance is None else self.first_past_tolerance.tensor
            ),
            "sources": {
                tensor: [source.to_json() for source in sources]
                for tensor, sources in self.sources.items()
            },
            "noise": {op_type: json_float(level) for op_type, level in self.noise.items()},
            "weights_checked": self.weights_checked,
            "unplaced_weight_failures": list(self.unplaced_weight_failures),
            "differing_shapes": list(self.differing_shapes),
            "replay_error": self.replay_error,
            "matched": [drift.to_json() for drift in self.matched],
            "unmatched_reference": list(self.unmatched_reference),
            "unmatched_variant": list(self.unmatched_variant),
            "plot": self.plot,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Localization:
        """The localization ``to_json`` wrote."""
        matched = tuple(TensorDrift.from_json(drift) for drift in document["matched"])
        first = document["first_past_tolerance"]
        return cls(
            graph=document["graph"],
            variant=document["variant"],
            optimization_level=document["optimization_level"],
            matched=matched,
            unmatched_reference=tuple(document["unmatched_reference"]),
            unmatched_variant=tuple(document["unmatched_variant"]),
            first_past_tolerance=next((d for d in matched if d.tensor == first), None),
            tolerance_rel_l2=float(document["tolerance_rel_l2"]),
            top_n=int(document["top_n"]),
            instrumented_runs=int(document["instrumented_runs"]),
            plot=document["plot"],
            damage_ratio=float(document["damage_ratio"]),
            sources={
                tensor: tuple(WeightSource.from_json(source) for source in sources)
                for tensor, sources in document["sources"].items()
            },
            noise={op_type: float(level) for op_type, level in document["noise"].items()},
            weights_checked=bool(document["weights_checked"]),
            unplaced_weight_failures=tuple(document["unplaced_weight_failures"]),
            differing_shapes=tuple(document["differing_shapes"]),
            memory_mb=int(document["memory_mb"]),
            largest_batch_mb=float(document["largest_batch_mb"]),
            replay_error=document["replay_error"],
        )


def _rank_key(drift: TensorDrift) -> tuple[bool, float, float, int]:
    """Damaged first, then by damage, local error and depth; unmeasured damage last."""
    damage = -1.0 if math.isnan(drift.damage) else drift.damage
    local = -1.0 if math.isnan(drift.local_rel_l2) else drift.local_rel_l2
    return (not drift.damaged, -damage, -local, drift.depth)
