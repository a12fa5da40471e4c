"""The results of weight-space parity: one frozen record per compared weight form, the forms and
weights that could not be compared, and the variant's verdict with the message that explains
it (the next step first, then each weight that failed, named with the node that reads it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.compare.weight_space.limits import WeightLimits
from pytest_onnxparity.compare.weight_space.statistics import WeightStatistics, json_number

MESSAGE_ITEMS = 20
"""Failed weights named in a message before "… N more"."""


@dataclass(frozen=True)
class WeightComparison:
    """One reference weight against one of its forms in the variant.

    ``storage`` is how the variant stores it (``float16``, ``MatMulNBits``,
    ``DequantizeLinear``…) and ``layout`` how it was read; ``tier`` picks the ``limits``;
    ``readers`` label the variant nodes that read it. ``failures`` say which limits it broke
    (``rel_l2 2.5 > 0.5``), ``notes`` what was done to compare it (a SmoothQuant scale folded).
    """

    reference: str
    tensor: str
    storage: str
    layout: str
    tier: str
    readers: tuple[str, ...]
    statistics: WeightStatistics
    limits: WeightLimits
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    def line(self) -> str:
        """``W as W_Q4 (MatMulNBits, packed 4-bit…, int4) read by …: sign-flipped — …``."""
        stats = self.statistics
        what = "" if self.tensor == self.reference else f" as {self.tensor}"
        readers = ", ".join(self.readers[:2]) + (", …" if len(self.readers) > 2 else "")
        worst = (
            f"; worst element {list(stats.worst_index)}: {stats.worst_value:.4g}, reference "
            f"{stats.worst_reference:.4g}"
            if stats.elements
            else ""
        )
        notes = "".join(f"; {note}" for note in self.notes)
        return (
            f"{self.reference}{what} ({self.storage}, {self.layout}, tier {self.tier}) read by "
            f"{readers or 'no node'}: {stats.diagnosis()} — {', '.join(self.failures)} "
            f"(cosine {stats.cosine:.4g}){worst}{notes}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "tensor": self.tensor,
            "storage": self.storage,
            "layout": self.layout,
            "tier": self.tier,
            "readers": list(self.readers),
            "passed": self.passed,
            "failures": list(self.failures),
            "diagnosis": self.statistics.diagnosis(),
            "notes": list(self.notes),
            "limits": self.limits.to_json(),
            **self.statistics.to_json(),
        }


@dataclass(frozen=True)
class UncomparedForm:
    """A form found for a reference weight whose values could not be read or lined up."""

    reference: str
    tensor: str
    storage: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {
            "reference": self.reference,
            "tensor": self.tensor,
            "storage": self.storage,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class UnmatchedWeight:
    """A reference initializer with no compared form in the variant."""

    name: str
    elements: int
    readers: tuple[str, ...]
    is_weight: bool
    """Read as a weight (MatMul, Conv, Gather…): counted in the unmatched share."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "elements": self.elements,
            "readers": list(self.readers),
            "is_weight": self.is_weight,
        }


@dataclass(frozen=True)
class WeightParityReport:
    """Weight-space parity of one variant file against its reference file.

    ``unmatched_fraction`` is the share of the reference's weight elements (initializers read
    as weights) with no compared form; above ``max_unmatched_fraction`` the variant fails,
    because a check that compares almost nothing must not pass quietly.
    """

    reference_file: str
    variant_file: str
    comparisons: tuple[WeightComparison, ...]
    uncompared: tuple[UncomparedForm, ...]
    unmatched_reference: tuple[UnmatchedWeight, ...]
    unmatched_variant: tuple[str, ...]
    skipped: tuple[str, ...]
    unmatched_fraction: float
    max_unmatched_fraction: float
    by_op_type: tuple[tuple[str, int, int, float], ...] = ()
    """Per reference op type: (op type, weights compared, weights failed, worst rel_l2)."""

    @property
    def failed(self) -> tuple[WeightComparison, ...]:
        return tuple(c for c in self.comparisons if not c.passed)

    @property
    def too_many_unmatched(self) -> bool:
        return not self.unmatched_fraction <= self.max_unmatched_fraction

    @property
    def passed(self) -> bool:
        return not self.failed and not self.too_many_unmatched

    def worst(self) -> WeightComparison | None:
        """The comparison closest to (or furthest past) its rel_l2 limit."""

        def pressure(comparison: WeightComparison) -> float:
            limit = comparison.limits.rel_l2
            value = comparison.statistics.rel_l2
            return value / limit if limit else value

        return max(self.comparisons, key=pressure, default=None)

    def message(self) -> str:
        """Why the variant failed: the next step first, then the weights, then what is unmatched."""
        lines = []
        failed = self.failed
        if failed:
            lines.append(
                f"{self.variant_file}: {len(failed)} of {len(self.comparisons)} weights differ "
                f"from the reference {self.reference_file} beyond their tier's limits (weight "
                "space, before any inference); re-quantize from the reference and check the "
                "quantizer's packing, signs, scales and zero points. If the variant changes a "
                "weight on purpose (BatchNorm folded into a Conv, say), leave it out: "
                f'[weights] skip = ["{failed[0].reference}"]'
            )
            lines += [f"  {comparison.line()}" for comparison in failed[:MESSAGE_ITEMS]]
            if len(failed) > MESSAGE_ITEMS:
                lines.append(f"  … and {len(failed) - MESSAGE_ITEMS} more")
        if self.too_many_unmatched:
            weights = [w for w in self.unmatched_reference if w.is_weight]
            lines.append(
                f"{self.variant_file}: {len(weights)} reference weights "
                f"({self.unmatched_fraction:.0%} of the weight elements) have no form the check "
                f"could compare, above max_unmatched_fraction {self.max_unmatched_fraction:g}; "
                "weights are matched by name and by the node that reads them, so a variant "
                "that renames or fuses them cannot be checked in weight space: accept that with "
                "[weights] max_unmatched_fraction = 1.0, or turn the check off (--parity-weights "
                "off)"
            )
            lines += [f"  {line}" for line in unmatched_lines(weights)]
        return "\n".join(lines)

    def warnings(self) -> tuple[str, ...]:
        """What passed unexamined: forms that could not be read, weights with no form."""
        notes = []
        if self.uncompared:
            first = self.uncompared[0]
            notes.append(
                f"{self.variant_file}: {len(self.uncompared)} weight forms not compared "
                f"(e.g. {first.tensor}: {first.reason})"
            )
        weights = [w for w in self.unmatched_reference if w.is_weight]
        if weights and not self.too_many_unmatched:
            notes.append(
                f"{self.variant_file}: {len(weights)} reference weights not found in the variant "
                f"({self.unmatched_fraction:.0%} of the weight elements, e.g. {weights[0].name})"
            )
        return tuple(notes)

    def to_json(self) -> dict[str, Any]:
        worst = self.worst()
        return {
            "reference": self.reference_file,
            "compared": len(self.comparisons),
            "failed": len(self.failed),
            "worst_rel_l2": None if worst is None else worst.statistics.to_json()["rel_l2"],
            "worst_weight": None if worst is None else worst.reference,
            "unmatched_fraction": self.unmatched_fraction,
            "max_unmatched_fraction": self.max_unmatched_fraction,
            "weights": [comparison.to_json() for comparison in self.comparisons],
            "uncompared": [form.to_json() for form in self.uncompared],
            "unmatched_reference": [weight.to_json() for weight in self.unmatched_reference],
            "unmatched_variant": list(self.unmatched_variant),
            "skipped": list(self.skipped),
            "by_op_type": [
                {"op_type": op, "compared": n, "failed": bad, "worst_rel_l2": json_number(worst)}
                for op, n, bad, worst in self.by_op_type
            ],
        }


def unmatched_lines(weights: Sequence[UnmatchedWeight]) -> list[str]:
    """One line per unmatched weight: its name, size and readers."""
    lines = [
        f"{w.name} ({w.elements} values) read by {', '.join(w.readers[:2]) or 'no node'}"
        for w in weights[:MESSAGE_ITEMS]
    ]
    if len(weights) > MESSAGE_ITEMS:
        lines.append(f"… and {len(weights) - MESSAGE_ITEMS} more")
    return lines
