"""Sequence gates: the corpus-level verdict of a variant set over every clip, and each clip's own.

Aggregates are corpus-level: WER is total word edits over total reference words, and the count
gates (argmax mismatches, token edits) are totals over all clips; every number is also kept per
clip."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from pytest_onnxparity.speech.sequence.clip_compare import ClipComparison
from pytest_onnxparity.speech.sequence.report import (
    clip_list,
    number_text,
)
from pytest_onnxparity.speech.transcripts import (
    ErrorCounts,
    total_errors,
)


@dataclass(frozen=True)
class SequenceGates:
    """Limits for one variant set; None switches a gate off.

    The default demands identical tokens and nothing else: quantized variant sets usually relax
    ``require_token_equality`` and set ``max_forced_argmax_mismatches`` and ``max_wer``
    instead. Counts are totals over all clips; rates are corpus rates (total edits / total
    reference words).

    - ``require_token_equality``: every clip's tokens equal the reference's.
    - ``max_argmax_mismatches``: free-running per-step argmax mismatches, summed.
    - ``max_forced_argmax_mismatches``: teacher-forced mismatches, summed (needs the forced run;
      see :attr:`needs_teacher_forcing`). With tokens equal it is 0 by construction.
    - ``min_first_divergence``: no clip's tokens may differ from the reference's before this
      position (a clip whose tokens are all equal passes).
    - ``require_transcript_match``: every clip's text equals the reference's exactly.
    - ``max_wer`` / ``max_cer``: corpus WER / CER of the variant against the reference text.
    - ``max_wer_vs_truth``: corpus WER of the variant against ground truth.
    - ``max_wer_increase_vs_truth``: variant WER minus reference WER, both against ground truth.
    - ``max_clip_wer``: the WER of every single clip against its reference text.
    - ``max_token_edits``: token-level Levenshtein distance, summed.

    Every gate but the four corpus rates (:data:`RATE_GATES` less ``max_clip_wer``) also holds
    clip by clip: a count over one clip cannot exceed a limit its total keeps, so
    :func:`evaluate_clip` applies them to each clip and never fails a clip of a passing set.
    """

    require_token_equality: bool = True
    max_argmax_mismatches: int | None = None
    max_forced_argmax_mismatches: int | None = None
    min_first_divergence: int | None = None
    require_transcript_match: bool = False
    max_wer: float | None = None
    max_wer_vs_truth: float | None = None
    max_wer_increase_vs_truth: float | None = None
    max_cer: float | None = None
    max_clip_wer: float | None = None
    max_token_edits: int | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.startswith("require_"):
                if not isinstance(value, bool):
                    raise ValueError(f"{item.name} must be true or false, got {value!r}")
            elif value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{item.name} must be >= 0 or None, got {value!r}")

    @property
    def needs_teacher_forcing(self) -> bool:
        """Whether the variant must also be run on the reference tokens."""
        return self.max_forced_argmax_mismatches is not None

    def for_one_clip(self) -> SequenceGates:
        """These gates less the corpus rates: what one clip is held to on its own."""
        corpus_only: dict[str, Any] = dict.fromkeys(CORPUS_ONLY_GATES)
        return dataclasses.replace(self, **corpus_only)

    def to_json(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


RATE_GATES = frozenset(
    {"max_wer", "max_wer_vs_truth", "max_wer_increase_vs_truth", "max_cer", "max_clip_wer"}
)
"""Gates whose limit is a rate (a float); the others are counts or flags."""


CORPUS_ONLY_GATES = ("max_wer", "max_wer_vs_truth", "max_wer_increase_vs_truth", "max_cer")
"""Corpus rates: one clip's rate above the limit says nothing about the corpus's."""


@dataclass(frozen=True)
class GateOutcome:
    """One gate's measured value against its limit; ``note`` names the worst clip or the cause."""

    gate: str
    value: float | None
    limit: float
    passed: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "value": self.value,
            "limit": self.limit,
            "passed": self.passed,
            "note": self.note,
        }

    def line(self) -> str:
        value = "n/a" if self.value is None else number_text(self.value)
        if self.gate.startswith("min_"):
            relation = ">=" if self.passed else "<"
        else:
            relation = "<=" if self.passed else ">"
        text = f"{self.gate}: {value} {relation} {number_text(self.limit)}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class SequenceSummary:
    """Corpus totals over the clips of one variant set."""

    clips: int
    duration_s: float
    token_mismatched_clips: int
    token_edits: int
    reference_tokens: int
    argmax_mismatches_free: int
    argmax_mismatches_forced: int | None
    transcript_mismatched_clips: int | None
    wer_vs_reference: ErrorCounts | None
    cer_vs_reference: ErrorCounts | None
    wer_vs_truth: ErrorCounts | None
    reference_wer_vs_truth: ErrorCounts | None
    reference_steps: int = 0
    first_step_agreeing_clips: int = 0
    cer_vs_truth: ErrorCounts | None = None
    reference_cer_vs_truth: ErrorCounts | None = None

    @property
    def wer_increase_vs_truth(self) -> float | None:
        if self.wer_vs_truth is None or self.reference_wer_vs_truth is None:
            return None
        return self.wer_vs_truth.rate - self.reference_wer_vs_truth.rate

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            data[item.name] = value.to_json() if isinstance(value, ErrorCounts) else value
        data["duration_s"] = round(self.duration_s, 3)
        data["wer_increase_vs_truth"] = self.wer_increase_vs_truth
        return data


def _total_or_none(counts: Sequence[ErrorCounts | None]) -> ErrorCounts | None:
    if not counts or any(item is None for item in counts):
        return None
    return total_errors([item for item in counts if item is not None])


def summarize(comparisons: Sequence[ClipComparison]) -> SequenceSummary:
    """Corpus totals; an error count is None unless every clip has it."""
    forced = [c.argmax_mismatches_forced for c in comparisons]
    matches = [c.transcript_match for c in comparisons]
    return SequenceSummary(
        clips=len(comparisons),
        duration_s=sum(c.duration_s for c in comparisons),
        token_mismatched_clips=sum(1 for c in comparisons if not c.tokens_equal),
        token_edits=sum(c.token_edits for c in comparisons),
        reference_tokens=sum(len(c.reference_tokens) for c in comparisons),
        argmax_mismatches_free=sum(c.argmax_mismatches_free for c in comparisons),
        argmax_mismatches_forced=(
            None if not forced or None in forced else sum(n for n in forced if n is not None)
        ),
        transcript_mismatched_clips=(
            None if not matches or None in matches else sum(1 for m in matches if not m)
        ),
        wer_vs_reference=_total_or_none([c.wer_vs_reference for c in comparisons]),
        cer_vs_reference=_total_or_none([c.cer_vs_reference for c in comparisons]),
        wer_vs_truth=_total_or_none([c.wer_vs_truth for c in comparisons]),
        reference_wer_vs_truth=_total_or_none([c.reference_wer_vs_truth for c in comparisons]),
        reference_steps=sum(c.reference_steps for c in comparisons),
        first_step_agreeing_clips=sum(1 for c in comparisons if c.first_step_agrees),
        cer_vs_truth=_total_or_none([c.cer_vs_truth for c in comparisons]),
        reference_cer_vs_truth=_total_or_none([c.reference_cer_vs_truth for c in comparisons]),
    )


def _worst(comparisons: Sequence[ClipComparison], key: Any, label: str) -> str:
    values = [(key(c), c.clip_id) for c in comparisons if key(c) is not None]
    if not values:
        return ""
    value, clip_id = max(values, key=lambda pair: pair[0])
    return f"worst clip {clip_id}: {number_text(value)} {label}".rstrip()


def _missing(comparisons: Sequence[ClipComparison], key: Any) -> list[str]:
    return [c.clip_id for c in comparisons if key(c) is None]


def _rate_gate(
    gate: str,
    counts: ErrorCounts | None,
    limit: float,
    comparisons: Sequence[ClipComparison],
    key: Any,
    missing_fix: str,
) -> GateOutcome:
    if counts is None:
        missing = _missing(comparisons, key)
        return GateOutcome(
            gate, None, limit, False, f"not measured: {clip_list(missing)} {missing_fix}"
        )
    rate = counts.rate
    note = (
        f"{counts.edits} edits / {counts.reference_length} {counts.unit}s; "
        + _worst(comparisons, lambda c: key(c).rate, "")
    ).rstrip("; ")
    return GateOutcome(gate, rate, limit, rate <= limit, note)


def _first_divergence_gate(comparisons: Sequence[ClipComparison], limit: int) -> GateOutcome:
    diverging = [c for c in comparisons if c.first_divergence is not None]
    if not diverging:
        note = f"tokens equal on all {len(comparisons)} clips"
        return GateOutcome("min_first_divergence", None, limit, True, note)
    earliest = min(diverging, key=lambda c: c.first_divergence or 0)
    value = earliest.first_divergence or 0
    early = sum(1 for c in diverging if (c.first_divergence or 0) < limit)
    note = f"earliest: clip {earliest.clip_id}; {early} of {len(comparisons)} clips diverge earlier"
    return GateOutcome("min_first_divergence", value, limit, value >= limit, note)


def _clip_wer_gate(
    comparisons: Sequence[ClipComparison], limit: float, missing_fix: str
) -> GateOutcome:
    missing = _missing(comparisons, lambda c: c.wer_vs_reference)
    if missing:
        note = f"not measured: {clip_list(missing)} {missing_fix}"
        return GateOutcome("max_clip_wer", None, limit, False, note)
    rates = [(c.wer_vs_reference.rate if c.wer_vs_reference else 0.0, c) for c in comparisons]
    worst = max(rates, key=lambda pair: pair[0])[1]
    counts = worst.wer_vs_reference
    assert counts is not None
    above = sum(1 for rate, _ in rates if rate > limit)
    note = (
        f"worst clip {worst.clip_id}: {counts.edits} edits / {counts.reference_length} words; "
        f"{above} of {len(comparisons)} clips above the limit"
    )
    return GateOutcome("max_clip_wer", counts.rate, limit, counts.rate <= limit, note)


def gate_outcomes(comparisons: Sequence[ClipComparison], gates: SequenceGates) -> list[GateOutcome]:
    """Every enabled gate's outcome, in the order of :class:`SequenceGates`' fields."""
    summary = summarize(comparisons)
    outcomes = []
    if gates.require_token_equality:
        differing = [c for c in comparisons if not c.tokens_equal]
        note = f"{len(differing)} of {len(comparisons)} clips differ"
        if differing:
            first = differing[0]
            note += f"; first: {first.clip_id} diverges at token {first.first_divergence}"
        outcomes.append(GateOutcome("token_equality", len(differing), 0, not differing, note))
    if gates.max_argmax_mismatches is not None:
        limit = gates.max_argmax_mismatches
        value = summary.argmax_mismatches_free
        note = _worst(comparisons, lambda c: c.argmax_mismatches_free, "steps")
        outcomes.append(GateOutcome("max_argmax_mismatches", value, limit, value <= limit, note))
    if gates.max_forced_argmax_mismatches is not None:
        limit = gates.max_forced_argmax_mismatches
        forced = summary.argmax_mismatches_forced
        if forced is None:
            missing = _missing(comparisons, lambda c: c.argmax_mismatches_forced)
            note = f"not measured: {clip_list(missing)} ran without teacher forcing"
            outcomes.append(GateOutcome("max_forced_argmax_mismatches", None, limit, False, note))
        else:
            note = _worst(comparisons, lambda c: c.argmax_mismatches_forced, "steps")
            outcomes.append(
                GateOutcome("max_forced_argmax_mismatches", forced, limit, forced <= limit, note)
            )
    if gates.min_first_divergence is not None:
        outcomes.append(_first_divergence_gate(comparisons, gates.min_first_divergence))
    if gates.require_transcript_match:
        mismatched = summary.transcript_mismatched_clips
        if mismatched is None:
            missing = _missing(comparisons, lambda c: c.transcript_match)
            note = f"not measured: {clip_list(missing)} have no text; the adapter must return text"
            outcomes.append(GateOutcome("transcript_match", None, 0, False, note))
        else:
            first_id = next((c.clip_id for c in comparisons if c.transcript_match is False), None)
            note = f"{mismatched} of {len(comparisons)} clips differ" + (
                f"; first: {first_id}" if first_id else ""
            )
            outcomes.append(GateOutcome("transcript_match", mismatched, 0, not mismatched, note))
    no_text = "have no text; the adapter must return PipelineOutput(text=...)"
    no_truth = "have no text or no ground truth; add .txt transcripts or a text_column"
    if gates.max_wer is not None:
        outcomes.append(
            _rate_gate(
                "max_wer",
                summary.wer_vs_reference,
                gates.max_wer,
                comparisons,
                lambda c: c.wer_vs_reference,
                no_text,
            )
        )
    if gates.max_wer_vs_truth is not None:
        outcomes.append(
            _rate_gate(
                "max_wer_vs_truth",
                summary.wer_vs_truth,
                gates.max_wer_vs_truth,
                comparisons,
                lambda c: c.wer_vs_truth,
                no_truth,
            )
        )
    if gates.max_wer_increase_vs_truth is not None:
        rate_limit = gates.max_wer_increase_vs_truth
        increase = summary.wer_increase_vs_truth
        if increase is None or summary.reference_wer_vs_truth is None:
            missing = _missing(comparisons, lambda c: c.wer_vs_truth)
            missing += _missing(comparisons, lambda c: c.reference_wer_vs_truth)
            note = f"not measured: {clip_list(sorted(set(missing)))} {no_truth}"
            outcomes.append(GateOutcome("max_wer_increase_vs_truth", None, rate_limit, False, note))
        else:
            note = (
                f"variant {number_text(summary.wer_vs_truth.rate)} vs reference "  # type: ignore[union-attr]
                f"{number_text(summary.reference_wer_vs_truth.rate)} against ground truth"
            )
            outcomes.append(
                GateOutcome(
                    "max_wer_increase_vs_truth", increase, rate_limit, increase <= rate_limit, note
                )
            )
    if gates.max_cer is not None:
        outcomes.append(
            _rate_gate(
                "max_cer",
                summary.cer_vs_reference,
                gates.max_cer,
                comparisons,
                lambda c: c.cer_vs_reference,
                no_text,
            )
        )
    if gates.max_clip_wer is not None:
        outcomes.append(_clip_wer_gate(comparisons, gates.max_clip_wer, no_text))
    if gates.max_token_edits is not None:
        limit = gates.max_token_edits
        value = summary.token_edits
        note = f"of {summary.reference_tokens} reference tokens; " + _worst(
            comparisons, lambda c: c.token_edits, "edits"
        )
        outcomes.append(
            GateOutcome("max_token_edits", value, limit, value <= limit, note.rstrip("; "))
        )
    return outcomes
