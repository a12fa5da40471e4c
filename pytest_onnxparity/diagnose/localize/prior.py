"""Weight-space parity as the prior of localization: a weight that fails it points straight at
the node that reads it.

The seam is :class:`WeightVerdict`, plain data per reference weight (failed or not, its rel_l2,
how the variant stores it), so localization needs nothing else from weight-space parity; where
no verdicts are given, damage is judged from the activations alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WeightVerdict:
    """Weight-space parity's verdict on one reference weight (an initializer of the reference).

    ``stored_as`` is the variant initializer that stores it (``W_quantized``, ``W_Q4``; the same
    name for a float copy), ``readers`` the variant nodes reading it, labelled as weight-space
    parity labels them.
    """

    weight: str
    failed: bool
    rel_l2: float
    stored_as: str = ""
    readers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "failed": self.failed,
            "rel_l2": self.rel_l2 if math.isfinite(self.rel_l2) else str(self.rel_l2),
            "stored_as": self.stored_as,
            "readers": list(self.readers),
        }


@dataclass(frozen=True)
class WeightPrior:
    """The verdicts indexed for localization: by reference weight and by variant initializer.

    A weight stored in several forms fails when any of them does; its rel_l2 is its worst.
    """

    by_weight: Mapping[str, WeightVerdict]
    by_stored: Mapping[str, WeightVerdict]

    @classmethod
    def of(cls, verdicts: Iterable[WeightVerdict]) -> WeightPrior:
        by_weight: dict[str, WeightVerdict] = {}
        by_stored: dict[str, WeightVerdict] = {}
        for verdict in verdicts:
            known = by_weight.get(verdict.weight)
            if known is None or _worse(verdict, known):
                by_weight[verdict.weight] = verdict
            if verdict.stored_as:
                by_stored[verdict.stored_as] = verdict
        return cls(by_weight=by_weight, by_stored=by_stored)

    @property
    def failed(self) -> tuple[str, ...]:
        """The reference weights that fail, in name order."""
        return tuple(sorted(name for name, v in self.by_weight.items() if v.failed))

    def failures_read_by(
        self, reference_initializers: Iterable[str], variant_initializers: Iterable[str]
    ) -> tuple[str, ...]:
        """The failing weights among those a segment reads, on either side of the rewrite."""
        failing = {
            name for name in reference_initializers if self._failed(self.by_weight.get(name))
        }
        for name in variant_initializers:
            verdict = self.by_stored.get(name)
            if verdict is not None and verdict.failed:
                failing.add(verdict.weight)
        return tuple(sorted(failing))

    @staticmethod
    def _failed(verdict: WeightVerdict | None) -> bool:
        return verdict is not None and verdict.failed


def _worse(candidate: WeightVerdict, known: WeightVerdict) -> bool:
    if candidate.failed != known.failed:
        return candidate.failed
    return not candidate.rel_l2 <= known.rel_l2  # NaN counts as worse


def verdicts_from_comparisons(comparisons: Sequence[Any]) -> tuple[WeightVerdict, ...]:
    """Verdicts from weight-space parity's comparison records (anything with ``reference``,
    ``tensor``, ``readers``, ``passed`` and ``statistics.rel_l2``)."""
    return tuple(
        WeightVerdict(
            weight=str(comparison.reference),
            failed=not comparison.passed,
            rel_l2=float(comparison.statistics.rel_l2),
            stored_as=str(comparison.tensor),
            readers=tuple(comparison.readers),
        )
        for comparison in comparisons
    )
