"""Compare a reference's outputs with a variant's and decide: the heart of a parity test."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from pytest_onnxparity.compare.gates import GateOutcome, evaluate, pressure
from pytest_onnxparity.compare.metrics import OutputStats, compare_outputs
from pytest_onnxparity.compare.positions import MaskError, positions_for
from pytest_onnxparity.config.tolerances import Tolerance


class OutputMismatchError(ValueError):
    """Reference and variant outputs cannot be paired (names or kinds differ)."""


@dataclass(frozen=True)
class ParityResult:
    """Statistics and gate outcomes for every compared output."""

    stats: tuple[OutputStats, ...]
    gates: tuple[GateOutcome, ...]
    tolerances: Mapping[str, Tolerance]
    # Pairs of failed outputs where each variant output matches the other's reference: an
    # exporter or a graph edit that swapped them (present.N.key / present.N.value, say).
    swapped: tuple[tuple[str, str], ...] = ()

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    def worst_gate(self) -> GateOutcome | None:
        """The gate closest to (or furthest past) its limit, for one-line summaries."""
        return max(
            self.gates,
            key=lambda g: pressure(g.metric, g.value, g.limit, g.passed),
            default=None,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "outputs": [s.to_json() for s in self.stats],
            "gates": [g.to_json() for g in self.gates],
            "tolerances": {name: tol.to_json() for name, tol in self.tolerances.items()},
            "swapped_outputs": [list(pair) for pair in self.swapped],
        }


def compare(
    reference: Mapping[str, np.ndarray],
    variant: Mapping[str, np.ndarray],
    tolerance_for: Callable[[str], Tolerance],
    skip_outputs: Iterable[str] = (),
    inputs: Mapping[str, np.ndarray] | None = None,
) -> ParityResult:
    """Compare every reference output (except ``skip_outputs``) with the variant's.

    ``inputs``: the arrays both ran on. Where one is an attention mask whose shape leads an
    output's, that output is compared over the real positions only (see
    :mod:`pytest_onnxparity.compare.positions`; the tolerance's ``mask`` key chooses).
    """
    skipped = set(skip_outputs)
    names = [name for name in reference if name not in skipped]
    if not names:
        # A comparison of nothing has no gate to fail: it must not pass either.
        raise OutputMismatchError(
            "no output to compare ("
            + (f"skip_outputs skips all of {sorted(reference)}" if reference else "no outputs")
            + "); compare at least one output"
        )
    missing = [name for name in names if name not in variant]
    if missing:
        raise OutputMismatchError(
            f"variant has no output(s) {missing} (it has {sorted(variant)}); re-export it with "
            "the reference's output names or list them in skip_outputs"
        )
    stats: list[OutputStats] = []
    gates: list[GateOutcome] = []
    tolerances: dict[str, Tolerance] = {}
    for name in names:
        ref, var = np.asarray(reference[name]), np.asarray(variant[name])
        _check_kinds(name, ref, var)
        tolerance = tolerance_for(name)
        try:
            positions = positions_for(name, ref.shape, tolerance.mask, inputs or {})
        except MaskError as error:
            raise OutputMismatchError(str(error)) from None
        output_stats = compare_outputs(
            name,
            ref,
            var,
            argmax_axis=tolerance.argmax_axis,
            topk=tolerance.topk if tolerance.min_topk_overlap is not None else None,
            keep=None if positions is None else positions.keep,
            mask=None if positions is None else positions.input,
        )
        stats.append(output_stats)
        gates.extend(evaluate(output_stats, tolerance))
        tolerances[name] = tolerance
    failed = [s.output for s in stats if not all(g.passed for g in gates if g.output == s.output)]
    swapped = swapped_pairs(failed, reference, variant, tolerances)
    return ParityResult(tuple(stats), tuple(gates), tolerances, swapped)


def swapped_pairs(
    failed: list[str],
    reference: Mapping[str, np.ndarray],
    variant: Mapping[str, np.ndarray],
    tolerances: Mapping[str, Tolerance],
) -> tuple[tuple[str, str], ...]:
    """Failed outputs ``a, b`` of one shape where variant ``b`` is within ``a``'s rel_l2 limit
    of reference ``a`` and the other way round."""
    pairs = []
    for index, first in enumerate(failed):
        for second in failed[index + 1 :]:
            if _close(reference[first], variant[second], tolerances[first]) and _close(
                reference[second], variant[first], tolerances[second]
            ):
                pairs.append((first, second))
    return tuple(pairs)


def _close(reference: np.ndarray, variant: np.ndarray, tolerance: Tolerance) -> bool:
    """Within ``tolerance``'s rel_l2 (0.01 where it sets none), measured as the gate measures
    it; only failed outputs get here, so the full statistics' cost is on the failure path."""
    reference, variant = np.asarray(reference), np.asarray(variant)
    if reference.shape != variant.shape or not np.issubdtype(reference.dtype, np.floating):
        return False
    limit = tolerance.rel_l2 if tolerance.rel_l2 is not None else 1e-2
    if not reference.any():
        return False  # an all-zero reference has no scale to be close to
    stats = compare_outputs("swap", reference, variant)
    return stats.finite and stats.rel_l2 <= limit


def _check_kinds(name: str, reference: np.ndarray, variant: np.ndarray) -> None:
    """fp16 vs fp32 is a comparison; int vs float, or bool vs float, is an export bug."""

    def kind(array: np.ndarray) -> str:
        if np.issubdtype(array.dtype, np.floating):
            return "float"
        if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
            return "integer"
        return str(array.dtype)

    if kind(reference) != kind(variant):
        raise OutputMismatchError(
            f"output {name!r}: variant dtype {variant.dtype} cannot be compared with reference "
            f"dtype {reference.dtype}; re-export the variant with the reference's output types"
        )
