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
    return ParityResult(tuple(stats), tuple(gates), tolerances)


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
