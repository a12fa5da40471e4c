"""Find the ONNX graphs in an export folder and tell each graph's reference from its variants.

Discovery reads file and folder names only; it never opens a model. The naming rules follow the
layouts that model hubs and release scripts produce:

* ``encoder.onnx`` is the fp32 reference of graph ``encoder``.
* A precision tag after a dot, underscore or hyphen makes a variant: ``encoder.int4.onnx``,
  ``encoder_int8.onnx``, ``model_q4f16.onnx``. Everything from the first tag token on is the
  variant name, so ``model_int4_full.onnx`` is variant ``int4_full`` of graph ``model``. The first
  word of a name is never a tag: ``quantized.onnx`` is a graph of its own.
* A folder whose name holds a precision tag holds variants of the graphs beside it:
  ``int8/encoder.onnx`` is variant ``int8`` of graph ``encoder``; ``fp32/encoder.onnx`` is the
  reference.
* A dot tag that is not a precision tag (``encoder-model.preq.onnx``) still makes a variant when
  stripping it leaves another graph of the same folder. It inherits the reference's tier (fp32)
  and is listed by :meth:`Discovery.header_lines`, so a reader sees the guess.

The tier of a variant is the precision class that picks its default tolerances.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NamedTuple

Tier = Literal["fp32", "fp16", "bf16", "int8", "int4"]

TIERS: tuple[Tier, ...] = ("fp32", "fp16", "bf16", "int8", "int4")
"""Every tier, from the most precise to the least."""

TagOrigin = Literal["none", "name", "folder", "inferred"]
"""Where a variant's tag came from: no tag (the reference), the file name, the enclosing folder's
name, or an unknown dot tag accepted because stripping it leaves another graph."""

REFERENCE_VARIANT = "fp32"
"""The variant name of a file whose name and folder carry no tag."""

ONNX_SUFFIX = ".onnx"

_TIER_TOKENS: tuple[tuple[Tier, str], ...] = (
    ("fp32", r"fp32|float32|f32"),
    ("fp16", r"fp16|float16|f16|half"),
    ("bf16", r"bf16|bfloat16"),
    ("int8", r"u?int8|[iu]8|q8|qu?int8|quant|quantized|fp8|float8|w8a8|w8a16|8bit"),
    ("int4", r"u?int4|[iu]4|q4|q4f16|q4f32|bnb4|nf4|fp4|mxfp4|nvfp4|w4a8|w4a16|4bit"),
)
# A trailing "w" marks weight-only precision (``fp16w``); it does not change the tier.
_TIER_TOKEN_PATTERNS = tuple(
    (tier, re.compile(rf"(?:{alternatives})w?")) for tier, alternatives in _TIER_TOKENS
)
_TOKEN = re.compile(r"[^_-]+")
# Guards the unknown-dot-tag rule against version numbers such as the ".0" in "kokoro-v1.0".
_UNKNOWN_DOT_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class DiscoveryError(ValueError):
    """An export folder that cannot be discovered; the message names the file and the fix."""


@dataclass(frozen=True)
class OnnxVariant:
    """One ``.onnx`` file: the reference or a variant of a graph."""

    path: Path
    """Where the file is, under the discovery root as it was given."""
    relative_path: str
    """The path below the discovery root, with ``/`` separators."""
    graph: str
    """The graph's name: the file name without its tag and suffix."""
    variant: str
    """The tag as written (``int8``, ``q4f16``, the folder name), or ``fp32`` when untagged."""
    tier: Tier
    tag_origin: TagOrigin

    def to_json(self) -> dict[str, str]:
        return {
            "path": self.relative_path,
            "graph": self.graph,
            "variant": self.variant,
            "tier": self.tier,
            "tag_origin": self.tag_origin,
        }


@dataclass(frozen=True)
class OnnxGraph:
    """A graph and every export of it found in one folder."""

    folder: str
    """The folder below the discovery root that holds the graph (``""`` for the root), with
    variant folders such as ``int8/`` left out."""
    name: str
    reference: OnnxVariant | None
    """The fp32 export the variants are compared against, or None when the folder has none."""
    variants: tuple[OnnxVariant, ...]
    """Every export but the reference, most precise tier first."""

    @property
    def id(self) -> str:
        """A name that is unique within one discovery, such as ``onnx/model``."""
        return _graph_id(self.folder, self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "folder": self.folder,
            "name": self.name,
            "reference": None if self.reference is None else self.reference.to_json(),
            "variants": [variant.to_json() for variant in self.variants],
        }


@dataclass(frozen=True)
class Discovery:
    """Every graph found under one export folder, in a stable order."""

    root: Path
    graphs: tuple[OnnxGraph, ...]

    @property
    def inferred_variants(self) -> tuple[OnnxVariant, ...]:
        """Variants whose tag is not a known precision tag, accepted by the unknown-dot-tag rule."""
        return tuple(
            variant
            for graph in self.graphs
            for variant in graph.variants
            if variant.tag_origin == "inferred"
        )

    def header_lines(self) -> list[str]:
        """Lines for the pytest report header: counts, then each guess a reader should check."""
        variant_count = sum(len(graph.variants) for graph in self.graphs)
        lines = [
            f"onnx-dir: {self.root}: {len(self.graphs)} graphs, {variant_count} variants",
        ]
        lines.extend(
            f"onnx-dir: unknown tag '{variant.variant}' in {variant.relative_path} "
            f"taken as a variant of {variant.graph} (tier {variant.tier})"
            for variant in self.inferred_variants
        )
        lines.extend(
            f"onnx-dir: graph {graph.id} has no fp32 reference file"
            for graph in self.graphs
            if graph.reference is None
        )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "graphs": [graph.to_json() for graph in self.graphs]}


def tier_of_tag(tag: str) -> Tier | None:
    """The tier a tag names, or None when no word of it is a precision tag.

    The words of a tag are split on ``_`` and ``-``; the least precise word wins, so
    ``cpu-int4-rtn-block-32`` is int4 and ``fp16_int8`` is int8.
    """
    tiers = [tier for token in _TOKEN.findall(tag) if (tier := _tier_of_token(token)) is not None]
    return max(tiers, key=TIERS.index) if tiers else None


def split_variant_tag(stem: str) -> tuple[str, str | None]:
    """Split a file name without ``.onnx`` into its graph name and precision tag (None if untagged).

    >>> split_variant_tag("decoder_model_merged_fp16")
    ('decoder_model_merged', 'fp16')
    >>> split_variant_tag("kokoro-v1.0.int8")
    ('kokoro-v1.0', 'int8')
    >>> split_variant_tag("silero_vad_16k_op15")
    ('silero_vad_16k_op15', None)
    """
    base, dot, last_segment = stem.rpartition(".")
    if dot and base:
        first_word = _TOKEN.match(last_segment)
        if first_word is not None and _tier_of_token(first_word.group()) is not None:
            return base, last_segment
    for word in list(_TOKEN.finditer(stem))[1:]:
        if _tier_of_token(word.group()) is not None:
            # The separator before the tag belongs to neither part.
            return stem[: word.start() - 1], stem[word.start() :]
    return stem, None


def discover(root: str | os.PathLike[str]) -> Discovery:
    """Find every ``.onnx`` file under ``root`` and group them into graphs.

    Hidden files and folders are skipped. Raises :class:`DiscoveryError` when ``root`` is not a
    folder, holds no ``.onnx`` file, or two files claim the same variant or reference of a graph.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise DiscoveryError(f"{root_path} does not exist; pass the folder your export wrote")
    if not root_path.is_dir():
        raise DiscoveryError(
            f"{root_path} is a file, not a folder; "
            f"pass the folder that holds it: {root_path.parent}"
        )
    relative_paths = sorted(_onnx_files_below(root_path))
    if not relative_paths:
        raise DiscoveryError(
            f"{root_path} holds no {ONNX_SUFFIX} file; pass the folder your export wrote"
        )
    parsed = [_parse_path(root_path, relative_path) for relative_path in relative_paths]
    exports_by_graph: dict[tuple[str, str], list[OnnxVariant]] = {}
    for folder, export in _adopt_unknown_dot_tags(parsed):
        exports_by_graph.setdefault((folder, export.graph), []).append(export)
    graphs = tuple(
        _graph_of(folder, name, exports)
        for (folder, name), exports in sorted(exports_by_graph.items())
    )
    return Discovery(root=root_path, graphs=graphs)


class _ParsedPath(NamedTuple):
    folder: str
    export: OnnxVariant
    unknown_dot_tag: str | None
    """The last dot segment, when it might be an unknown tag; decided once every file is read."""


def _tier_of_token(token: str) -> Tier | None:
    lowered = token.lower()
    for tier, pattern in _TIER_TOKEN_PATTERNS:
        if pattern.fullmatch(lowered):
            return tier
    return None


def _onnx_files_below(root: Path) -> Iterator[PurePosixPath]:
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        relative_directory = PurePosixPath(Path(directory).relative_to(root).as_posix())
        for name in files:
            if name.lower().endswith(ONNX_SUFFIX) and not name.startswith("."):
                yield relative_directory / name


def _parse_path(root: Path, relative_path: PurePosixPath) -> _ParsedPath:
    stem = relative_path.name[: -len(ONNX_SUFFIX)]
    directories = relative_path.parent.parts
    folder_tier = tier_of_tag(directories[-1]) if directories else None
    folder = "/".join(directories[:-1] if folder_tier is not None else directories)
    graph, tag = split_variant_tag(stem)
    tag_tier = None if tag is None else tier_of_tag(tag)

    tier: Tier
    tag_origin: TagOrigin
    if tag is not None and tag_tier is not None:
        variant, tier, tag_origin = tag, tag_tier, "name"
    elif folder_tier is not None:
        variant, tier, tag_origin = directories[-1], folder_tier, "folder"
    else:
        variant, tier, tag_origin = REFERENCE_VARIANT, "fp32", "none"

    unknown_dot_tag = None
    if tag is None:
        base, dot, last_segment = stem.rpartition(".")
        if dot and base and _UNKNOWN_DOT_TAG.fullmatch(last_segment):
            unknown_dot_tag = last_segment
    export = OnnxVariant(
        path=root / relative_path,
        relative_path=str(relative_path),
        graph=graph,
        variant=variant,
        tier=tier,
        tag_origin=tag_origin,
    )
    return _ParsedPath(folder, export, unknown_dot_tag)


def _adopt_unknown_dot_tags(parsed: list[_ParsedPath]) -> Iterator[tuple[str, OnnxVariant]]:
    # Only graphs named by files without a candidate tag anchor the rule, so "a.b.c.onnx" does
    # not chain onto "a.b.onnx" and the outcome does not depend on the order files are read in.
    anchors = {(item.folder, item.export.graph) for item in parsed if item.unknown_dot_tag is None}
    for folder, export, unknown_dot_tag in parsed:
        if unknown_dot_tag is not None:
            base = export.graph[: -len(unknown_dot_tag) - 1]
            if (folder, base) in anchors:
                export = OnnxVariant(
                    path=export.path,
                    relative_path=export.relative_path,
                    graph=base,
                    variant=unknown_dot_tag,
                    tier="fp32",  # the reference's tier: references are fp32 by construction
                    tag_origin="inferred",
                )
        yield folder, export


def _graph_id(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _graph_of(folder: str, name: str, exports: Iterable[OnnxVariant]) -> OnnxGraph:
    ordered = sorted(
        exports, key=lambda export: (TIERS.index(export.tier), export.variant, export.path)
    )
    graph_id = _graph_id(folder, name)
    seen: dict[str, OnnxVariant] = {}
    for export in ordered:
        twin = seen.setdefault(export.variant.lower(), export)
        if twin is not export:
            raise DiscoveryError(
                f"{twin.path} and {export.path} are both variant '{export.variant}' of graph "
                f"{graph_id}; remove one, or give one a tag of its own (e.g. {name}.opt.onnx)"
            )
    references = [
        export for export in ordered if export.tier == "fp32" and export.tag_origin != "inferred"
    ]
    if len(references) > 1:
        paths = " and ".join(str(export.path) for export in references)
        raise DiscoveryError(
            f"{paths} are all fp32 exports of graph {graph_id}, so none is the reference; "
            f"keep one, or give the others a tag that is not a precision (e.g. {name}.opt.onnx)"
        )
    reference = references[0] if references else None
    return OnnxGraph(
        folder=folder,
        name=name,
        reference=reference,
        variants=tuple(export for export in ordered if export is not reference),
    )
