"""Sequence verdicts: a variant set's summary held against its gates, as the check results a run
records (one for the corpus, one per clip), with the per-clip table in the failure message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.speech.sequence.clip_compare import ClipComparison
from pytest_onnxparity.speech.sequence.gates import SequenceGates, gate_outcomes, summarize
from pytest_onnxparity.speech.sequence.pipeline import (
    PIPELINE_GRAPH,
    REFERENCE_LABELS,
    REFERENCE_TAG,
    TORCH_REFERENCE,
)
from pytest_onnxparity.speech.sequence.report import (
    CHECK_NAME,
    CLIP_CHECK_NAME,
    per_clip_table,
)

TOKEN_CONTEXT = 5


TOKEN_WINDOW = 24


def evaluate_sequence(
    comparisons: Sequence[ClipComparison],
    gates: SequenceGates,
    *,
    variant_set: str,
    graph: str = PIPELINE_GRAPH,
    context: Mapping[str, Any] | None = None,
    reference: str = REFERENCE_TAG,
    also: Mapping[str, Sequence[ClipComparison]] | None = None,
) -> CheckResult:
    """The ``sequence`` check of one variant set: every enabled gate over all clips.

    ``comparisons`` are against ``reference`` (``"fp32"``: the fp32 ONNX set; ``"pytorch"``:
    the upstream pipeline). ``also`` holds the same clips compared with another reference,
    reported and not gated (a variant set against the PyTorch pipeline). ``details`` holds the
    gates, the corpus totals and every clip's comparison (the per-clip table), ``against`` with
    the other references' corpus and clips, plus ``context`` (plain JSON: which files the set
    ran, where the clips came from). On failure the message lists each failed gate (value and
    limit, worst clip) and the per-clip table.
    """
    context = {**(context or {}), **_references(reference, also)}
    if not comparisons:
        return CheckResult(
            check=CHECK_NAME,
            graph=graph,
            variant=variant_set,
            passed=False,
            message=(
                f"variant set {variant_set!r}: no clips to compare; check clips_dir or dataset in "
                "[sequence] and --parity-clips-limit"
            ),
            details={
                "variant_set": variant_set,
                "gates": [],
                "corpus": None,
                "clips": [],
                **context,
            },
        )
    outcomes = gate_outcomes(comparisons, gates)
    failed = [outcome for outcome in outcomes if not outcome.passed]
    details = {
        "variant_set": variant_set,
        "limits": gates.to_json(),
        "gates": [outcome.to_json() for outcome in outcomes],
        "corpus": summarize(comparisons).to_json(),
        "clips": [comparison.to_json() for comparison in comparisons],
        **context,
        "against": {
            name: {
                "corpus": summarize(others).to_json(),
                "clips": [comparison.to_json() for comparison in others],
            }
            for name, others in (also or {}).items()
        },
    }
    message = ""
    if failed:
        lines = [
            f"sequence gates failed for variant set {variant_set!r}{_against(reference)}: "
            f"{len(failed)} of {len(outcomes)} gates on {len(comparisons)} clips",
            *(f"  {outcome.line()}" for outcome in failed),
            f"per clip, {REFERENCE_LABELS.get(reference, reference)} reference vs variant:",
            *per_clip_table(comparisons),
            _next_step(variant_set, reference),
        ]
        message = "\n".join(lines)
    return CheckResult(
        check=CHECK_NAME,
        graph=graph,
        variant=variant_set,
        passed=not failed,
        message=message,
        details=details,
    )


def evaluate_clip(
    comparison: ClipComparison,
    gates: SequenceGates,
    *,
    variant_set: str,
    graph: str = PIPELINE_GRAPH,
    context: Mapping[str, Any] | None = None,
    reference: str = REFERENCE_TAG,
    also: Mapping[str, ClipComparison] | None = None,
) -> CheckResult:
    """The ``sequence-clip`` check of one clip of a variant set: the gates that hold clip by
    clip (:meth:`SequenceGates.for_one_clip`), so a clip never fails when its set passes.

    ``reference`` and ``also`` as for :func:`evaluate_sequence` (``details.against[name].clip``).
    On failure the message lists the failed gates, the clip's row of the per-clip table and
    both token sequences around the first divergence.
    """
    clip_gates = gates.for_one_clip()
    outcomes = gate_outcomes([comparison], clip_gates)
    failed = [outcome for outcome in outcomes if not outcome.passed]
    details = {
        "variant_set": variant_set,
        "clip_id": comparison.clip_id,
        "limits": clip_gates.to_json(),
        "gates": [outcome.to_json() for outcome in outcomes],
        "clip": comparison.to_json(),
        **(context or {}),
        **_references(reference, also),
        "against": {name: {"clip": other.to_json()} for name, other in (also or {}).items()},
    }
    message = ""
    if failed:
        start = max(0, (comparison.first_divergence or 0) - TOKEN_CONTEXT)
        lines = [
            f"sequence gates failed for clip {comparison.clip_id!r} of variant set "
            f"{variant_set!r}{_against(reference)}: {len(failed)} of {len(outcomes)} gates",
            *(f"  {outcome.line()}" for outcome in failed),
            *per_clip_table([comparison]),
            f"reference tokens: {_token_window(comparison.reference_tokens, start)}",
            f"variant tokens:   {_token_window(comparison.variant_tokens, start)}",
            f"Next: the test sequence[{variant_set}] gates the whole set with every clip's row; "
            + (
                "fix the export, or relax [sequence.reference_gates]."
                if reference == TORCH_REFERENCE
                else f"fix the set's graphs, or relax its limits in "
                f"[sequence.overrides.{variant_set}]."
            ),
        ]
        message = "\n".join(lines)
    return CheckResult(
        check=CLIP_CHECK_NAME,
        graph=graph,
        variant=variant_set,
        passed=not failed,
        message=message,
        details=details,
    )


def _references(reference: str, also: Mapping[str, Any] | None) -> dict[str, Any]:
    """Which reference the gates held the set to, and which others it was reported against."""
    return {
        "reference": reference,
        "reference_label": REFERENCE_LABELS.get(reference, reference),
        "reported_against": list(also or ()),
    }


def _against(reference: str) -> str:
    return " against the PyTorch pipeline" if reference == TORCH_REFERENCE else ""


def _next_step(variant_set: str, reference: str) -> str:
    if reference == TORCH_REFERENCE:
        return (
            f"Next: the fp32 ONNX pipeline ({variant_set!r}) decodes differently from the PyTorch "
            "pipeline: check the export (a changed weight, opset, dynamic axes, the adapter's "
            "pre/post-processing), or relax [sequence.reference_gates] if the difference is "
            "acceptable."
        )
    return (
        f"Next: fix the graphs of variant set {variant_set!r}, or relax its limits in "
        f"[sequence.overrides.{variant_set}] if the change is acceptable."
    )


def _token_window(tokens: Sequence[int], start: int) -> str:
    shown = tokens[start : start + TOKEN_WINDOW]
    head = "... " if start else ""
    tail = " ..." if start + TOKEN_WINDOW < len(tokens) else ""
    return f"[{head}{' '.join(str(t) for t in shown)}{tail}] ({len(tokens)} tokens)"
