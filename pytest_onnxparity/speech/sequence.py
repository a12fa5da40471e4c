"""Sequence gates: run an encoder/decoder pipeline on clips and compare a variant set's tokens
and transcripts with the reference's.

The user writes a :class:`PipelineAdapter`: given the loaded graphs of one variant set and one
clip, it returns the decoded token ids (and text, if it has a tokenizer). The plugin runs it
once for the reference graphs (cached) and once per variant set, optionally again under teacher
forcing, and hands the results to :func:`compare_clip` and :func:`evaluate_sequence`.

Aggregates are corpus-level: WER is total word edits over total reference words, and the count
gates (argmax mismatches, token edits) are totals over all clips; every number is also kept per
clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.terminal import table
from pytest_onnxparity.runtime.sessions import OnnxRunner
from pytest_onnxparity.speech.clips import Clip
from pytest_onnxparity.speech.transcripts import (
    ErrorCounts,
    TextNormalization,
    char_errors,
    total_errors,
    word_errors,
)

CHECK_NAME = "sequence"
CLIP_CHECK_NAME = "sequence-clip"
PIPELINE_GRAPH = "pipeline"
"""The ``graph`` of sequence records: a variant set spans several graphs."""
REFERENCE_TAG = "fp32"
"""The variant tag that names a graph's reference file in a variant set."""
TABLE_ROW_LIMIT = 30
TEXT_CELL_WIDTH = 32
TOKEN_CONTEXT = 5
TOKEN_WINDOW = 24


class AdapterError(RuntimeError):
    """A pipeline adapter returned something the gates cannot use; the message says what."""


# --------------------------------------------------------------------------------------------
# What the adapter returns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineOutput:
    """What a pipeline adapter decoded from one clip.

    ``tokens`` are the output token ids (the adapter decides whether BOS/EOS are included;
    reference and variants go through the same adapter). ``step_logits`` [steps, vocab] are the
    logits of each decoder step, in order; required under teacher forcing, optional otherwise.
    """

    tokens: tuple[int, ...]
    text: str | None = None
    step_logits: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Adapters hand back lists or numpy arrays; results must hold plain ints.
        object.__setattr__(self, "tokens", tuple(int(token) for token in self.tokens))
        if self.step_logits is not None:
            logits = np.asarray(self.step_logits)
            if logits.ndim != 2:
                raise AdapterError(
                    f"step_logits must be [steps, vocab], got shape {logits.shape}; stack each "
                    "step's logits for one sequence"
                )
            object.__setattr__(self, "step_logits", logits)

    @property
    def step_argmax(self) -> tuple[int, ...]:
        """The argmax of each step: from ``step_logits`` if given, else the tokens themselves."""
        if self.step_logits is None:
            return self.tokens
        return tuple(int(index) for index in self.step_logits.argmax(axis=-1))

    def to_json(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "text": self.text}


class PipelineAdapter(Protocol):
    """Runs one encoder/decoder pipeline on one clip with the graphs of one variant set.

    ``graphs`` maps each role (``encoder``, ``decoder_init``, ``decoder_step``, …) to the
    runner of the file chosen for it. With ``forced_tokens`` the adapter teacher-forces: it
    feeds these tokens instead of its own predictions and returns every step's logits in
    ``step_logits`` (one more row than tokens when the last row predicts end-of-sequence).
    """

    def __call__(
        self,
        graphs: Mapping[str, OnnxRunner],
        clip: Clip,
        *,
        forced_tokens: Sequence[int] | None = None,
    ) -> PipelineOutput: ...


def run_adapter(
    adapter: PipelineAdapter,
    graphs: Mapping[str, OnnxRunner],
    clip: Clip,
    forced_tokens: Sequence[int] | None = None,
) -> PipelineOutput:
    """Call ``adapter`` and check that it returned a usable :class:`PipelineOutput`."""
    output = adapter(graphs, clip, forced_tokens=forced_tokens)
    name = getattr(adapter, "__qualname__", type(adapter).__qualname__)
    if not isinstance(output, PipelineOutput):
        raise AdapterError(
            f"pipeline adapter {name} returned {type(output).__name__} for clip {clip.id!r}; "
            "return pytest_onnxparity.speech.sequence.PipelineOutput(tokens=..., text=...)"
        )
    if forced_tokens is not None and output.step_logits is None:
        raise AdapterError(
            f"pipeline adapter {name} returned no step_logits under forced_tokens for clip "
            f"{clip.id!r}; return each forced step's logits, or unset "
            "max_forced_argmax_mismatches"
        )
    return output


def decode_references(
    adapter: PipelineAdapter, graphs: Mapping[str, OnnxRunner], clips: Sequence[Clip]
) -> dict[str, PipelineOutput]:
    """The reference outputs of every clip, keyed by clip id (cache them for all variant sets)."""
    return {clip.id: run_adapter(adapter, graphs, clip) for clip in clips}


def compare_variant_set(
    adapter: PipelineAdapter,
    graphs: Mapping[str, OnnxRunner],
    clips: Sequence[Clip],
    references: Mapping[str, PipelineOutput],
    norm: TextNormalization,
    *,
    teacher_forcing: bool,
) -> list[ClipComparison]:
    """Decode every clip with ``graphs`` (free-running, and teacher-forced on the reference
    tokens if ``teacher_forcing``) and compare with the cached ``references``."""
    comparisons = []
    for clip in clips:
        reference = references[clip.id]
        variant = run_adapter(adapter, graphs, clip)
        forced = run_adapter(adapter, graphs, clip, reference.tokens) if teacher_forcing else None
        comparisons.append(compare_clip(clip, reference, variant, forced, norm))
    return comparisons


# --------------------------------------------------------------------------------------------
# Per-clip comparison
# --------------------------------------------------------------------------------------------


def token_levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Edit distance (insertions, deletions, substitutions) between two token sequences."""
    previous = list(range(len(b) + 1))
    for i, token_a in enumerate(a, start=1):
        current = [i]
        for j, token_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token_a != token_b))
            )
        previous = current
    return previous[-1]


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first position where ``a`` and ``b`` differ (the shorter one's length when
    one is a prefix of the other), or None when they are equal."""
    for index, (token_a, token_b) in enumerate(zip(a, b, strict=False)):
        if token_a != token_b:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def argmax_mismatches(reference: Sequence[int], variant: Sequence[int]) -> int:
    """Steps whose argmax differs, position by position; extra or missing steps count too."""
    shared = sum(1 for r, v in zip(reference, variant, strict=False) if r != v)
    return shared + abs(len(reference) - len(variant))


@dataclass(frozen=True)
class ClipComparison:
    """A variant set's output on one clip against the reference's, and against ground truth.

    ``argmax_mismatches_free`` compares each step's argmax of the free-running decodes (after a
    first divergence the inputs differ, so it counts consequences too);
    ``argmax_mismatches_forced`` compares them when the variant is fed the reference tokens
    (None when not measured). Error counts are None when a text is missing.
    """

    clip_id: str
    duration_s: float
    reference_tokens: tuple[int, ...]
    variant_tokens: tuple[int, ...]
    reference_text: str | None
    variant_text: str | None
    ground_truth: str | None
    token_edits: int
    first_divergence: int | None
    argmax_mismatches_free: int
    argmax_mismatches_forced: int | None
    wer_vs_reference: ErrorCounts | None
    cer_vs_reference: ErrorCounts | None
    wer_vs_truth: ErrorCounts | None
    reference_wer_vs_truth: ErrorCounts | None

    @property
    def tokens_equal(self) -> bool:
        return self.reference_tokens == self.variant_tokens

    @property
    def transcript_match(self) -> bool | None:
        """Exact (unnormalised) transcript equality; None when either text is missing."""
        if self.reference_text is None or self.variant_text is None:
            return None
        return self.reference_text == self.variant_text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, ErrorCounts):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            data[item.name] = value
        data["duration_s"] = round(self.duration_s, 3)
        data["tokens_equal"] = self.tokens_equal
        data["transcript_match"] = self.transcript_match
        return data


def compare_clip(
    clip: Clip,
    reference: PipelineOutput,
    variant: PipelineOutput,
    forced: PipelineOutput | None,
    norm: TextNormalization,
) -> ClipComparison:
    """Compare a variant's output on ``clip`` with the reference's.

    ``forced`` is the variant's output when fed the reference tokens (teacher forcing); its
    per-step argmax is compared with the reference's: the argmax of the reference's
    ``step_logits`` if it has them, else its tokens (against the forced run's first
    ``len(tokens)`` steps).
    """
    forced_mismatches = None
    if forced is not None:
        if forced.step_logits is None:
            raise AdapterError(
                f"clip {clip.id!r}: the teacher-forced output has no step_logits; the adapter "
                "must return each forced step's logits"
            )
        forced_steps = forced.step_argmax
        if reference.step_logits is None:
            # Reference tokens stand in for its argmaxes; the forced run's extra end-of-sequence
            # row has no counterpart among them.
            forced_steps = forced_steps[: len(reference.tokens)]
        forced_mismatches = argmax_mismatches(reference.step_argmax, forced_steps)
    both_texts = reference.text is not None and variant.text is not None
    truth = clip.text
    return ClipComparison(
        clip_id=clip.id,
        duration_s=clip.duration_s,
        reference_tokens=reference.tokens,
        variant_tokens=variant.tokens,
        reference_text=reference.text,
        variant_text=variant.text,
        ground_truth=truth,
        token_edits=token_levenshtein(reference.tokens, variant.tokens),
        first_divergence=first_divergence(reference.tokens, variant.tokens),
        argmax_mismatches_free=argmax_mismatches(reference.step_argmax, variant.step_argmax),
        argmax_mismatches_forced=forced_mismatches,
        wer_vs_reference=(
            word_errors(reference.text, variant.text, norm)  # type: ignore[arg-type]
            if both_texts
            else None
        ),
        cer_vs_reference=(
            char_errors(reference.text, variant.text, norm)  # type: ignore[arg-type]
            if both_texts
            else None
        ),
        wer_vs_truth=(
            word_errors(truth, variant.text, norm)
            if truth is not None and variant.text is not None
            else None
        ),
        reference_wer_vs_truth=(
            word_errors(truth, reference.text, norm)
            if truth is not None and reference.text is not None
            else None
        ),
    )


# --------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------


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
        value = "n/a" if self.value is None else _number(self.value)
        if self.gate.startswith("min_"):
            relation = ">=" if self.passed else "<"
        else:
            relation = "<=" if self.passed else ">"
        text = f"{self.gate}: {value} {relation} {_number(self.limit)}"
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
    )


def _worst(comparisons: Sequence[ClipComparison], key: Any, label: str) -> str:
    values = [(key(c), c.clip_id) for c in comparisons if key(c) is not None]
    if not values:
        return ""
    value, clip_id = max(values, key=lambda pair: pair[0])
    return f"worst clip {clip_id}: {_number(value)} {label}".rstrip()


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
            gate, None, limit, False, f"not measured: {_clip_list(missing)} {missing_fix}"
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
        note = f"not measured: {_clip_list(missing)} {missing_fix}"
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
            note = f"not measured: {_clip_list(missing)} ran without teacher forcing"
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
            note = f"not measured: {_clip_list(missing)} have no text; the adapter must return text"
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
            note = f"not measured: {_clip_list(sorted(set(missing)))} {no_truth}"
            outcomes.append(GateOutcome("max_wer_increase_vs_truth", None, rate_limit, False, note))
        else:
            note = (
                f"variant {_number(summary.wer_vs_truth.rate)} vs reference "  # type: ignore[union-attr]
                f"{_number(summary.reference_wer_vs_truth.rate)} against ground truth"
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


def per_clip_table(
    comparisons: Sequence[ClipComparison], limit: int = TABLE_ROW_LIMIT
) -> list[str]:
    """Lines of the per-clip table: clip, duration, reference vs variant transcript, match,
    WER against the reference, token edits, first divergence.

    Past ``limit`` rows only clips that differ are listed (the JSON results hold all).
    """
    shown = list(comparisons)
    if len(shown) > limit:
        shown = [c for c in comparisons if not c.tokens_equal or c.transcript_match is False]
    omitted = len(comparisons) - min(len(shown), limit)
    rows = [
        [
            c.clip_id,
            f"{c.duration_s:.2f}",
            _transcript_cell(c.reference_text, c.reference_tokens),
            _transcript_cell(c.variant_text, c.variant_tokens),
            _match_cell(c),
            "-" if c.wer_vs_reference is None else _number(c.wer_vs_reference.rate),
            str(c.token_edits),
            "-" if c.first_divergence is None else str(c.first_divergence),
        ]
        for c in shown[:limit]
    ]
    headers = ["clip", "dur_s", "reference", "variant", "match", "wer", "edits", "diverges"]
    lines = table(headers, rows)
    if omitted:
        lines.append(f"... {omitted} more clips (all of them in the JSON results)")
    return lines


def evaluate_sequence(
    comparisons: Sequence[ClipComparison],
    gates: SequenceGates,
    *,
    variant_set: str,
    graph: str = PIPELINE_GRAPH,
    context: Mapping[str, Any] | None = None,
) -> CheckResult:
    """The ``sequence`` check of one variant set: every enabled gate over all clips.

    ``details`` holds the gates, the corpus totals and every clip's comparison (the per-clip
    table), plus ``context`` (plain JSON: which files the set ran, where the clips came
    from). On failure the message lists each failed gate (value and limit, worst clip) and the
    per-clip table.
    """
    context = dict(context or {})
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
    }
    message = ""
    if failed:
        lines = [
            f"sequence gates failed for variant set {variant_set!r}: {len(failed)} of "
            f"{len(outcomes)} gates on {len(comparisons)} clips",
            *(f"  {outcome.line()}" for outcome in failed),
            "per clip, reference vs variant:",
            *per_clip_table(comparisons),
            f"Next: fix the graphs of variant set {variant_set!r}, or relax its limits in "
            f"[sequence.overrides.{variant_set}] if the change is acceptable.",
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
) -> CheckResult:
    """The ``sequence-clip`` check of one clip of a variant set: the gates that hold clip by
    clip (:meth:`SequenceGates.for_one_clip`), so a clip never fails when its set passes.

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
    }
    message = ""
    if failed:
        start = max(0, (comparison.first_divergence or 0) - TOKEN_CONTEXT)
        lines = [
            f"sequence gates failed for clip {comparison.clip_id!r} of variant set "
            f"{variant_set!r}: {len(failed)} of {len(outcomes)} gates",
            *(f"  {outcome.line()}" for outcome in failed),
            *per_clip_table([comparison]),
            f"reference tokens: {_token_window(comparison.reference_tokens, start)}",
            f"variant tokens:   {_token_window(comparison.variant_tokens, start)}",
            f"Next: the test sequence[{variant_set}] gates the whole set with every clip's row; "
            f"fix the set's graphs, or relax its limits in [sequence.overrides.{variant_set}].",
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


def _token_window(tokens: Sequence[int], start: int) -> str:
    shown = tokens[start : start + TOKEN_WINDOW]
    head = "... " if start else ""
    tail = " ..." if start + TOKEN_WINDOW < len(tokens) else ""
    return f"[{head}{' '.join(str(t) for t in shown)}{tail}] ({len(tokens)} tokens)"


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per variant set from the run's ``sequence`` records: clips, equal tokens,
    teacher-forced argmax mismatches, corpus WER/CER against the reference and WER against
    ground truth (the set's and the reference's), and the verdict."""
    rows = []
    for record in records:
        if record.get("kind") != "check" or record.get("check") != CHECK_NAME:
            continue
        corpus = (record.get("details") or {}).get("corpus")
        if not corpus:
            rows.append([record["variant"] or "-", "0", "-", "-", "-", "-", "-", _status(record)])
            continue
        equal = corpus["clips"] - corpus["token_mismatched_clips"]
        forced = corpus["argmax_mismatches_forced"]
        truth = _rate_cell(corpus["wer_vs_truth"])
        reference_truth = _rate_cell(corpus["reference_wer_vs_truth"])
        rows.append(
            [
                record["variant"],
                str(corpus["clips"]),
                f"{equal}/{corpus['clips']}",
                "-" if forced is None else str(forced),
                _rate_cell(corpus["wer_vs_reference"]),
                _rate_cell(corpus["cer_vs_reference"]),
                f"{truth} / {reference_truth}",
                _status(record),
            ]
        )
    if not rows:
        return []
    headers = [
        "variant set",
        "clips",
        "tokens equal",
        "forced argmax",
        "wer",
        "cer",
        "wer vs truth (set / ref)",
        "status",
    ]
    return table(headers, rows)


def _rate_cell(counts: Mapping[str, Any] | None) -> str:
    if counts is None or counts.get("rate") is None:
        return "-"
    return f"{counts['rate']:.4f}".rstrip("0").rstrip(".") if counts["rate"] else "0"


def _status(record: Mapping[str, Any]) -> str:
    return "PASS" if record["passed"] else "FAIL"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def _clip_list(ids: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(ids[:shown])
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"clips {head}{more}"


def _transcript_cell(text: str | None, tokens: Sequence[int]) -> str:
    cell = text if text is not None else "[" + " ".join(str(t) for t in tokens) + "]"
    cell = " ".join(cell.split())
    return cell if len(cell) <= TEXT_CELL_WIDTH else cell[: TEXT_CELL_WIDTH - 3] + "..."


def _match_cell(comparison: ClipComparison) -> str:
    match = comparison.transcript_match
    if match is None:
        match = comparison.tokens_equal
    return "yes" if match else "NO"
