"""File names to graph, variant tag and tier, for the layouts model hubs and release scripts use.

* ``encoder.onnx`` is the untagged (``fp32``) export of graph ``encoder``.
* A precision word after the first word of a name starts the variant tag, whatever separates it
  (``.``, ``_`` or ``-``): ``encoder.int4.onnx``, ``encoder_int8.onnx``, ``model_q4f16.onnx``,
  ``silero_vad_half.onnx``. The tag runs to the end of the name, so ``model_int4_full.onnx`` is
  variant ``int4_full`` of graph ``model``. The first word is never a tag (``quantized.onnx`` is
  a graph), and other words belong to the name (``kokoro-v1.0``, ``silero_vad_16k_op15``).

A tag's tier is the least precise tier among its words (``fp16_int8`` is int8)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

TIERS_BY_PRECISION = ("fp32", "bf16", "fp16", "int8", "int4")
"""Every tier, most precise first; the order a reference is picked in when no file is fp32."""


UNTAGGED_VARIANT = "fp32"
"""The variant tag of a file whose name and folder carry no tag."""


ONNX_SUFFIX = ".onnx"


TAG_WORD_TIERS: Mapping[str, str] = {
    **dict.fromkeys(("fp32", "float32", "none"), "fp32"),
    **dict.fromkeys(("fp16", "float16", "half"), "fp16"),
    **dict.fromkeys(("bf16", "bfloat16"), "bf16"),
    **dict.fromkeys(("int8", "uint8", "q8", "qint8", "quint8", "quantized", "w8a8"), "int8"),
    **dict.fromkeys(("int4", "uint4", "q4", "q4f16", "bnb4", "nf4", "w4a16"), "int4"),
}
"""The precision words the parser knows (lower case), and their tiers."""


_NAME_WORD = re.compile(r"[^._-]+")


_NAME_SEPARATORS = "._-"


# A letter first keeps version numbers such as the ".0" of "kokoro-v1.0" out of the guess.
UNKNOWN_DOT_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Placement:
    """Where a file goes, before its graph's reference is known."""

    relpath: str
    folder: str
    graph: str
    variant: str
    tier: str | None
    """None for an unknown tag: the tier is inherited once the graph's reference is chosen."""
    unknown_dot_tag: str | None = None
    unknown_word_tag: str | None = None
    """The last ``_``/``-`` word of an untagged name (``qdq8`` of ``model_qdq8``): a variant tag
    when the name without it is another graph of the folder with the same inputs and outputs."""


def tier_of_tag(tag: str, tag_tiers: Mapping[str, str] = TAG_WORD_TIERS) -> str | None:
    """The tier a tag names, or None when neither the tag nor any word of it is known.

    ``tag_tiers`` maps lower-case tags and words to tiers. A word ending in ``w`` (weight-only,
    as in ``fp16w``) has the tier of the word without it. The least precise word wins.
    """
    lowered = tag.lower()
    if lowered in tag_tiers:
        return tag_tiers[lowered]
    tiers = [
        tier for word in _NAME_WORD.findall(lowered) if (tier := _tier_of_word(word, tag_tiers))
    ]
    return max(tiers, key=TIERS_BY_PRECISION.index) if tiers else None


def split_name(stem: str, tag_tiers: Mapping[str, str] = TAG_WORD_TIERS) -> tuple[str, str | None]:
    """Split a file name without ``.onnx`` into its graph name and variant tag (None if untagged).

    >>> split_name("decoder_model_merged_fp16")
    ('decoder_model_merged', 'fp16')
    >>> split_name("kokoro-v1.0.int8")
    ('kokoro-v1.0', 'int8')
    >>> split_name("silero_vad_16k_op15")
    ('silero_vad_16k_op15', None)
    """
    for word in list(_NAME_WORD.finditer(stem))[1:]:
        rest = stem[word.start() :]
        if rest.lower() in tag_tiers or _tier_of_word(word.group().lower(), tag_tiers):
            return stem[: word.start()].rstrip(_NAME_SEPARATORS), rest
    return stem, None


def _tier_of_word(word: str, tag_tiers: Mapping[str, str]) -> str | None:
    # A trailing "w" marks weight-only precision (fp16w); the tier is that of the precision.
    return tag_tiers.get(word) or (tag_tiers.get(word[:-1]) if word.endswith("w") else None)


def without_dot_tag(placement: Placement) -> str:
    return placement.graph.rpartition(".")[0]


def with_unknown_dot_tag(placement: Placement) -> Placement:
    assert placement.unknown_dot_tag is not None
    return replace(
        placement,
        graph=without_dot_tag(placement),
        variant=placement.unknown_dot_tag,
        tier=None,
        unknown_dot_tag=None,
    )


def unknown_word_tag(stem: str) -> str | None:
    """The last ``_``/``-`` separated word of ``stem`` when it could be a tag (starts with a
    letter, follows a non-empty name), else None: ``model_qdq8`` -> ``qdq8``."""
    cut = max(stem.rfind("_"), stem.rfind("-"))
    word = stem[cut + 1 :]
    if cut <= 0 or "." in word or not UNKNOWN_DOT_TAG.fullmatch(word):
        return None
    return word


def without_word_tag(placement: Placement) -> str:
    assert placement.unknown_word_tag is not None
    return placement.graph[: -len(placement.unknown_word_tag) - 1]


def with_unknown_word_tag(placement: Placement) -> Placement:
    assert placement.unknown_word_tag is not None
    return replace(
        placement,
        graph=without_word_tag(placement),
        variant=placement.unknown_word_tag,
        tier=None,
        unknown_dot_tag=None,
        unknown_word_tag=None,
    )
