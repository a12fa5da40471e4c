"""Transcript comparison: text normalisation and word/character error counts (via jiwer).

Rates over many clips are corpus rates, total edits over total reference words
(:func:`corpus_rate`), never a mean of per-clip rates: a one-word clip with one error must not
weigh as much as a fifty-word clip.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.config.tables import ConfigError, check_keys
from pytest_onnxparity.speech.audio.clips import require_speech_extra

NORMALIZATION_KEYS = ("lowercase", "strip_punctuation", "collapse_whitespace", "remove")
_APOSTROPHES = "'\u2019\u02bc"
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextNormalization:
    """How transcripts are normalised before they are compared; steps run in this order.

    1. ``remove``: each string is deleted wherever it is not part of a longer word (so
       ``"uh"`` leaves ``"uhura"`` alone); case-insensitive when ``lowercase`` is set. Use it for
       markers such as ``"<unk>"`` or ``"[noise]"`` and for fillers.
    2. ``lowercase``: ``str.lower``.
    3. ``strip_punctuation``: apostrophes are dropped (``"don't"`` -> ``"dont"``, so contractions
       stay one word); every other Unicode punctuation character (category ``P*``) becomes a
       space (``"well-known"`` -> ``"well known"``). Symbols such as ``$`` and ``%`` stay.
    4. ``collapse_whitespace``: runs of whitespace become one space; the ends are stripped.

    Words are then the whitespace-separated pieces; characters include the spaces between them.
    """

    lowercase: bool = True
    strip_punctuation: bool = True
    collapse_whitespace: bool = True
    remove: tuple[str, ...] = ()

    def apply(self, text: str) -> str:
        """``text`` normalised by the steps above."""
        for item in self.remove:
            pattern = rf"(?<!\w){re.escape(item)}(?!\w)"
            text = re.sub(pattern, " ", text, flags=re.IGNORECASE if self.lowercase else 0)
        if self.lowercase:
            text = text.lower()
        if self.strip_punctuation:
            text = "".join(_strip_punctuation_char(char) for char in text)
        if self.collapse_whitespace:
            text = _WHITESPACE.sub(" ", text).strip()
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "strip_punctuation": self.strip_punctuation,
            "collapse_whitespace": self.collapse_whitespace,
            "remove": list(self.remove),
        }


def parse_normalization(raw: Mapping[str, Any], where: str) -> TextNormalization:
    """A :class:`TextNormalization` from a config table; ``where`` names the table in errors."""
    check_keys(raw, NORMALIZATION_KEYS, where)
    flags = {}
    for key in NORMALIZATION_KEYS[:3]:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}: {key} must be true or false, got {raw[key]!r}")
            flags[key] = raw[key]
    remove = raw.get("remove", [])
    if not isinstance(remove, list) or not all(isinstance(item, str) and item for item in remove):
        raise ConfigError(f"{where}: remove must be a list of non-empty strings, got {remove!r}")
    return TextNormalization(**flags, remove=tuple(remove))


def _strip_punctuation_char(char: str) -> str:
    if char in _APOSTROPHES:
        return ""
    return " " if unicodedata.category(char).startswith("P") else char


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
