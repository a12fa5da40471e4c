"""One clip's comparison: a variant set's tokens and transcript against the reference's (token
edits, first divergence, argmax mismatches under teacher forcing, word and character errors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from pytest_onnxparity.runtime.sessions import OnnxRunner
from pytest_onnxparity.speech.audio.clips import Clip
from pytest_onnxparity.speech.sequence.pipeline import (
    AdapterError,
    PipelineAdapter,
    PipelineOutput,
    run_adapter,
)
from pytest_onnxparity.speech.transcripts import (
    ErrorCounts,
    TextNormalization,
    char_errors,
    word_errors,
)


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


def token_levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Edit distance (insertions, deletions, substitutions) between two token sequences
    (rapidfuzz's ``Levenshtein.distance``, which jiwer installs; plain Python without it)."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:
        return _levenshtein(a, b)
    return int(Levenshtein.distance(list(a), list(b)))


def _levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
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
    (None when not measured); ``reference_steps`` is how many steps the reference's argmax has
    (the N of "n/N mismatches"). ``first_step_agrees`` says the first decoder step chose the
    same token (end-of-sequence included). Error counts are None when a text is missing.
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
    reference_steps: int = 0
    first_step_agrees: bool = True
    cer_vs_truth: ErrorCounts | None = None
    reference_cer_vs_truth: ErrorCounts | None = None

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
    reference_steps, variant_steps = reference.step_argmax, variant.step_argmax
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
        argmax_mismatches_free=argmax_mismatches(reference_steps, variant_steps),
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
        reference_steps=len(reference_steps),
        first_step_agrees=reference_steps[:1] == variant_steps[:1],
        cer_vs_truth=(
            char_errors(truth, variant.text, norm)
            if truth is not None and variant.text is not None
            else None
        ),
        reference_cer_vs_truth=(
            char_errors(truth, reference.text, norm)
            if truth is not None and reference.text is not None
            else None
        ),
    )
