"""Transcript comparison: text normalisation (jiwer's transforms, or Whisper's normaliser) and
word/character error counts (via jiwer).

The default normalisation is the field's: jiwer's ``ToLowerCase``, ``RemovePunctuation``,
``RemoveMultipleSpaces`` and ``Strip``, so a WER here equals ``jiwer.wer`` with those transforms
(``"1-2-3."`` is one word, ``"123"``, as jiwer counts it). Rates over many clips are corpus
rates, total edits over total reference words (:func:`corpus_rate`), never a mean of per-clip
rates: a one-word clip with one error must not weigh as much as a fifty-word clip.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.config.tables import ConfigError, check_keys
from pytest_onnxparity.speech.audio.clips import require_speech_extra

NORMALIZATION_KEYS = ("preset", "lowercase", "strip_punctuation", "collapse_whitespace", "remove")
STEP_FLAGS = ("lowercase", "strip_punctuation", "collapse_whitespace")
PRESETS = {
    "default": "jiwer ToLowerCase, RemovePunctuation, RemoveMultipleSpaces, Strip",
    "none": "jiwer RemoveMultipleSpaces, Strip (case and punctuation count)",
    "whisper": "transformers' Whisper EnglishTextNormalizer (no spelling mapping)",
    "whisper-basic": "transformers' Whisper BasicTextNormalizer",
}
"""Each preset and what it runs, as the results and the card describe it."""
WHISPER_NORMALIZERS = "transformers.models.whisper.english_normalizer"


@dataclass(frozen=True)
class TextNormalization:
    """How transcripts are normalised before they are compared.

    ``preset`` picks the pipeline (:data:`PRESETS`):

    * ``"default"``: jiwer's transforms, in this order, each switched by its flag:
      ``ToLowerCase`` (``lowercase``), ``RemovePunctuation`` (``strip_punctuation``: every
      Unicode punctuation character is deleted, so ``"don't"`` -> ``"dont"`` and
      ``"1-2-3."`` -> ``"123"``; symbols such as ``$`` stay), ``RemoveMultipleSpaces`` and
      ``Strip`` (``collapse_whitespace``). ``jiwer.wer`` with the same transforms gives the
      same rate.
    * ``"none"``: whitespace only (jiwer's own default): case and punctuation count.
    * ``"whisper"`` / ``"whisper-basic"``: the English / basic text normaliser of Whisper's
      evaluation, from ``transformers`` (which must be installed); the English one runs without
      the British -> American spelling mapping a checkpoint's ``normalizer.json`` adds.

    ``remove`` runs first, with every preset: each string is deleted wherever it is not part of
    a longer word (``"uh"`` leaves ``"uhura"`` alone), case-insensitively unless ``lowercase``
    is off. Use it for markers such as ``"<unk>"`` or ``"[noise]"`` and for fillers.

    Words are then the whitespace-separated pieces; characters include the spaces between them.
    """

    lowercase: bool = True
    strip_punctuation: bool = True
    collapse_whitespace: bool = True
    remove: tuple[str, ...] = ()
    preset: str = "default"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown normalisation preset {self.preset!r}; use one of {PRESETS}")

    def apply(self, text: str) -> str:
        """``text`` normalised by the steps above."""
        for item in self.remove:
            pattern = rf"(?<!\w){re.escape(item)}(?!\w)"
            text = re.sub(pattern, " ", text, flags=re.IGNORECASE if self.lowercase else 0)
        normalize = _normalizer(
            self.preset, self.lowercase, self.strip_punctuation, self.collapse_whitespace
        )
        return normalize(text)

    @property
    def description(self) -> str:
        """What runs, in words: ``jiwer ToLowerCase, RemovePunctuation, …`` (for the card)."""
        if self.preset == "default":
            steps = [
                name
                for name, on in (
                    ("ToLowerCase", self.lowercase),
                    ("RemovePunctuation", self.strip_punctuation),
                    ("RemoveMultipleSpaces, Strip", self.collapse_whitespace),
                )
                if on
            ]
            text = "jiwer " + ", ".join(steps) if steps else "none (text compared as is)"
        else:
            text = PRESETS[self.preset]
        if self.remove:
            text = f"remove {', '.join(self.remove)}; then {text}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "lowercase": self.lowercase,
            "strip_punctuation": self.strip_punctuation,
            "collapse_whitespace": self.collapse_whitespace,
            "remove": list(self.remove),
            "description": self.description,
        }


@functools.cache
def _normalizer(
    preset: str, lowercase: bool, strip_punctuation: bool, collapse_whitespace: bool
) -> Callable[[str], str]:
    """The text -> text function of a preset, built once per process (jiwer's
    ``RemovePunctuation`` lists every Unicode punctuation character when it is made)."""
    if preset in ("whisper", "whisper-basic"):
        try:
            module = importlib.import_module(WHISPER_NORMALIZERS)
        except ImportError:
            raise ImportError(
                f"normalization preset {preset!r} needs transformers (Whisper's text "
                'normaliser): pip install transformers, or use preset = "default"'
            ) from None
        whisper: Callable[[str], str] = (
            module.EnglishTextNormalizer({})
            if preset == "whisper"
            else module.BasicTextNormalizer()
        )
        # Its output may keep a space at an end, which Whisper's evaluation strips before WER.
        return lambda text: " ".join(whisper(text).split())
    jiwer = require_speech_extra("jiwer")
    steps: list[Any] = []
    if preset == "default":
        if lowercase:
            steps.append(jiwer.ToLowerCase())
        if strip_punctuation:
            steps.append(jiwer.RemovePunctuation())
    if collapse_whitespace or preset == "none":
        steps += [jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    if not steps:
        return str
    compose = jiwer.Compose(steps)
    return lambda text: str(compose(text))


def parse_normalization(raw: Mapping[str, Any], where: str) -> TextNormalization:
    """A :class:`TextNormalization` from a config table; ``where`` names the table in errors."""
    check_keys(raw, NORMALIZATION_KEYS, where)
    preset = raw.get("preset", "default")
    if preset not in PRESETS:
        raise ConfigError(
            f"{where}: preset must be one of {', '.join(repr(p) for p in PRESETS)}, got {preset!r}"
        )
    flags = {}
    for key in STEP_FLAGS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}: {key} must be true or false, got {raw[key]!r}")
            if preset != "default":
                raise ConfigError(
                    f'{where}: {key} switches a step of preset "default"; preset {preset!r} '
                    f"has fixed steps ({PRESETS[preset]}): drop {key} or the preset"
                )
            flags[key] = raw[key]
    remove = raw.get("remove", [])
    if not isinstance(remove, list) or not all(isinstance(item, str) and item for item in remove):
        raise ConfigError(f"{where}: remove must be a list of non-empty strings, got {remove!r}")
    return TextNormalization(**flags, remove=tuple(remove), preset=preset)


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations turning a reference into a hypothesis, in words or characters."""

    edits: int
    reference_length: int
    """Words (or characters) in the reference: the rate's denominator."""
    substitutions: int
    deletions: int
    insertions: int
    unit: str = "word"

    @property
    def rate(self) -> float:
        """``edits / reference_length``; an empty reference gives 0.0, or inf if anything was
        inserted."""
        if self.reference_length == 0:
            return 0.0 if self.edits == 0 else math.inf
        return self.edits / self.reference_length

    def to_json(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "unit": self.unit,
            "edits": self.edits,
            "reference_length": self.reference_length,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "rate": rate if math.isfinite(rate) else None,
        }


def word_errors(
    reference: str, hypothesis: str, norm: TextNormalization | None = None
) -> ErrorCounts:
    """Word-level edits (``jiwer.process_words``) after normalising both texts with ``norm``."""
    jiwer = require_speech_extra("jiwer")
    norm = TextNormalization() if norm is None else norm
    output = jiwer.process_words(norm.apply(reference), norm.apply(hypothesis))
    return _counts(output, "word")


def char_errors(
    reference: str, hypothesis: str, norm: TextNormalization | None = None
) -> ErrorCounts:
    """Character-level edits (``jiwer.process_characters``) after normalising both texts."""
    jiwer = require_speech_extra("jiwer")
    norm = TextNormalization() if norm is None else norm
    output = jiwer.process_characters(norm.apply(reference), norm.apply(hypothesis))
    return _counts(output, "char")


def _counts(output: Any, unit: str) -> ErrorCounts:
    substitutions = int(output.substitutions)
    deletions = int(output.deletions)
    insertions = int(output.insertions)
    return ErrorCounts(
        edits=substitutions + deletions + insertions,
        reference_length=substitutions + deletions + int(output.hits),
        substitutions=substitutions,
        deletions=deletions,
        insertions=insertions,
        unit=unit,
    )


def total_errors(counts: Sequence[ErrorCounts]) -> ErrorCounts:
    """The counts of many clips added up (one unit only)."""
    units = {item.unit for item in counts}
    if len(units) > 1:
        raise ValueError(f"cannot add word and character counts together (units {sorted(units)})")
    return ErrorCounts(
        edits=sum(item.edits for item in counts),
        reference_length=sum(item.reference_length for item in counts),
        substitutions=sum(item.substitutions for item in counts),
        deletions=sum(item.deletions for item in counts),
        insertions=sum(item.insertions for item in counts),
        unit=units.pop() if units else "word",
    )


def corpus_rate(counts: Sequence[ErrorCounts]) -> float:
    """Corpus error rate: total edits / total reference words (never a mean of clip rates)."""
    return total_errors(counts).rate
