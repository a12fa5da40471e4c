"""What localization found: each intermediate tensor's drift (rel_l2, SQNR, the drift it adds over
its inputs) and, per variant, the first tensor past the threshold and the top contributors."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.diagnose.localize.config import LocalizeOptions

MESSAGE_NAME_LIMIT = 8


@dataclass(frozen=True)
class TensorDrift:
    """The error of one matched intermediate tensor, named as in the reference graph.

    ``node``/``op_type`` are the reference node producing ``tensor`` (``node`` is ``""`` where
    the graph leaves it unnamed); ``depth`` is that node's topological index in the reference.
    ``added_rel_l2`` is the drift this layer introduces rather than inherits: how much
    ``rel_l2`` grows over the worst matched tensor feeding the node (0 where it shrinks).
    ``variant_tensor`` is the name compared in the variant (the dequantized copy after a
    QuantizeLinear/DequantizeLinear pair).
    Non-finite variant values where the reference is finite make ``rel_l2`` infinite.
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
    added_rel_l2: float = 0.0
    variant_tensor: str = ""
    shape: tuple[int, ...] = ()
    nonfinite_in_variant: int = 0

    def exceeds(self, tolerance_rel_l2: float) -> bool:
        return self.rel_l2 > tolerance_rel_l2 or self.nonfinite_in_variant > 0

    def describe(self) -> str:
        """``'tensor' from Op 'node' (depth d): rel_l2 …, SQNR … dB, cosine …, max_abs …``."""
        node = f"{self.op_type} {self.node!r}" if self.node else f"unnamed {self.op_type} node"
        nonfinite = (
            f", {self.nonfinite_in_variant} non-finite values" if self.nonfinite_in_variant else ""
        )
        return (
            f"{self.tensor!r} from {node} (depth {self.depth}): rel_l2 {self.rel_l2:.3g} "
            f"(+{self.added_rel_l2:.3g} here), SQNR {self.sqnr_db:.1f} dB, "
            f"cosine {self.cosine:.4f}, max_abs {self.max_abs:.3g}{nonfinite}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "node": self.node,
            "op_type": self.op_type,
            "depth": self.depth,
            "variant_tensor": self.variant_tensor,
            "shape": list(self.shape),
            "max_abs": _json_float(self.max_abs),
            "mean_abs": _json_float(self.mean_abs),
            "rel_l2": _json_float(self.rel_l2),
            "added_rel_l2": _json_float(self.added_rel_l2),
            "sqnr_db": _json_float(self.sqnr_db),
            "cosine": _json_float(self.cosine),
            "nonfinite_in_variant": self.nonfinite_in_variant,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TensorDrift:
        """The drift ``to_json`` wrote (how the controller rebuilds a worker's results)."""
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
            added_rel_l2=float(document["added_rel_l2"]),
            variant_tensor=document["variant_tensor"],
            shape=tuple(document["shape"]),
            nonfinite_in_variant=int(document["nonfinite_in_variant"]),
        )


def _json_float(value: float) -> float | str:
    """Infinities as ``"inf"``/``"-inf"`` (as the metrics histogram does): JSON has no literal."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


@dataclass(frozen=True)
class Localization:
    """Where a variant drifts from its reference, tensor by tensor, in topological order."""

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

    def top(self, n: int) -> tuple[TensorDrift, ...]:
        """The ``n`` tensors whose producing layer adds the most drift (``added_rel_l2``),
        largest first; layers that add none are left out."""
        adding = [drift for drift in self.matched if drift.added_rel_l2 > 0]
        adding.sort(key=lambda d: (-d.added_rel_l2, -d.rel_l2, d.depth))
        return tuple(adding[:n])

    def with_plot(self, path: Path) -> Localization:
        """This localization, referencing the drift plot written at ``path``."""
        return dataclasses.replace(self, plot=str(path))

    def message_lines(self, n: int) -> list[str]:
        """Lines for a failure message: the first drifted tensor, the top ``n``, what did not
        match, and the plot."""
        lines = [
            f"localization of {self.variant!r} against the reference of {self.graph!r} "
            f"(onnxruntime graph optimisation level {self.optimization_level!r} for the "
            f"instrumented runs; {len(self.matched)} tensors matched):"
        ]
        first = self.first_past_tolerance
        if first is None:
            lines.append(f"  no matched tensor is past rel_l2 {self.tolerance_rel_l2:g}")
        else:
            lines.append(f"  first past rel_l2 {self.tolerance_rel_l2:g}: {first.describe()}")
        top = self.top(n)
        if top:
            lines.append(f"  top {len(top)} by drift added:")
            lines.extend(f"    {rank}. {drift.describe()}" for rank, drift in enumerate(top, 1))
        for side, names in (
            ("reference", self.unmatched_reference),
            ("variant", self.unmatched_variant),
        ):
            if names:
                lines.append(f"  not matched in the {side}: {_name_list(names)}")
        if self.plot is not None:
            lines.append(f"  drift by depth: {self.plot}")
        return lines

    def summary_line(self) -> str:
        """One line for the terminal summary: the first drifted tensor and the layer adding the
        most drift."""
        first = self.first_past_tolerance
        where = "none" if first is None else f"{first.tensor!r} ({_node(first)})"
        top = self.top(1)
        most = "none" if not top else f"{_node(top[0])} (+{top[0].added_rel_l2:.3g})"
        return f"first past rel_l2 {self.tolerance_rel_l2:g}: {where}; most drift added by {most}"

    def to_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "variant": self.variant,
            "optimization_level": self.optimization_level,
            "tolerance_rel_l2": self.tolerance_rel_l2,
            "top_n": self.top_n,
            "instrumented_runs": self.instrumented_runs,
            "first_past_tolerance": (
                None if self.first_past_tolerance is None else self.first_past_tolerance.tensor
            ),
            "top": [drift.tensor for drift in self.top(self.top_n)],
            "matched": [drift.to_json() for drift in self.matched],
            "unmatched_reference": list(self.unmatched_reference),
            "unmatched_variant": list(self.unmatched_variant),
            "plot": self.plot,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Localization:
        """The localization ``to_json`` wrote; ``float("inf")`` reads its ``"inf"`` back."""
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
            top_n=int(document.get("top_n", LocalizeOptions.top_n)),
            instrumented_runs=int(document["instrumented_runs"]),
            plot=document["plot"],
        )


def _node(drift: TensorDrift) -> str:
    return f"{drift.op_type} {drift.node!r}" if drift.node else f"unnamed {drift.op_type}"


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:MESSAGE_NAME_LIMIT])
    hidden = len(names) - MESSAGE_NAME_LIMIT
    return shown + (f" and {hidden} more" if hidden > 0 else "")
