"""The next step of a failed parity test: where the limit that failed can be raised, or why no
limit should be.

A limit from ``@pytest.mark.parity(...)`` or from ``assert_parity(..., key=value)`` overrides
``--parity-tolerance`` and the config files, so the hint points at the marker or the call; the
dict form of ``assert_parity`` has no graph a config scope could name. Outputs whose cosine is
near 0 are unrelated rather than drifted: raising a limit would hide a broken reference (weights
not loaded, inputs mapped to the wrong arguments) or a broken variant.
"""

from __future__ import annotations

from collections.abc import Collection

from pytest_onnxparity.compare.gates import NONFINITE_GATE, REFERENCE_NONFINITE_GATE, GateOutcome
from pytest_onnxparity.results import terminal
from pytest_onnxparity.results.records import ParityRecord

UNRELATED_COSINE = terminal.UNRELATED_COSINE
"""At or below this cosine on every failed output, reference and variant are unrelated."""


def next_step(
    record: ParityRecord,
    *,
    marker_keys: Collection[str] = (),
    call_keys: Collection[str] = (),
    custom: bool = False,
) -> str:
    """The one-line next step for ``record``'s first failed gate.

    ``marker_keys`` and ``call_keys`` are the limits the test's marker and its ``assert_parity``
    call set; ``custom`` says the record compares arrays the test passed in (the dict form).
    """
    assert record.result is not None
    failed = [gate for gate in record.result.gates if not gate.passed]
    first = failed[0]
    if first.metric == NONFINITE_GATE:
        return "NaN/Inf cannot be tolerated: fix the variant (overflow in fp16? a broken scale?)"
    if first.metric == REFERENCE_NONFINITE_GATE:
        return (
            "NaN/Inf cannot be compared: give the graph inputs its reference is defined on: a "
            f'rule in [graphs."{record.graph}".inputs.<input>] (range, value) or real inputs '
            f'([references."{record.graph}"] input_data); if the reference is broken, fix it'
        )
    if record.result.swapped:
        pairs = ", ".join(f"{a!r} and {b!r}" for a, b in record.result.swapped)
        return (
            f"outputs {pairs} look swapped: each variant output matches the other's reference "
            "within its limit; fix the output order or names in the export, not the limits"
        )
    unrelated = _unrelated_cosine(record, failed)
    if unrelated is not None:
        return (
            f"cosine {unrelated:.3g} (<= {UNRELATED_COSINE}) says the outputs are unrelated, not "
            f"drifted: do not raise a limit; if every variant of '{record.graph}' fails like "
            "this, the reference is the suspect (weights not loaded? inputs mapped to the wrong "
            "arguments?)"
        )
    metric = first.metric
    if metric in call_keys:
        return (
            f"if this drift is acceptable, raise {metric} in this test's assert_parity(..., "
            f"{metric}=<limit>) call: its keywords override every other limit"
        )
    if metric in marker_keys:
        return (
            f"if this drift is acceptable, raise {metric} in this test's @pytest.mark.parity"
            f"(..., {metric}=<limit>): a marker's limit overrides --parity-tolerance and the "
            "config files"
        )
    if custom:
        return (
            f"if this drift is acceptable, pass the limit to this call: assert_parity(reference, "
            f"variant, tier=..., {metric}=<limit>), or set it in @pytest.mark.parity({metric}=...)"
        )
    return (
        f"if this drift is acceptable, raise the limit: --parity-tolerance "
        f"{record.graph}/{record.variant}/{first.output}:{metric}=<limit>, or in parity.toml "
        f'[graphs."{record.graph}".variants."{record.variant}".outputs."{first.output}"]; '
        "--parity-suggest PATH writes limits from measured values"
    )


def _unrelated_cosine(record: ParityRecord, failed: list[GateOutcome]) -> float | None:
    """The largest cosine of the failed outputs when all are near 0, else None."""
    assert record.result is not None
    outputs = {gate.output for gate in failed}
    cosines = [stats.cosine for stats in record.result.stats if stats.output in outputs]
    if cosines and all(cosine <= UNRELATED_COSINE for cosine in cosines):
        return max(cosines)
    return None
