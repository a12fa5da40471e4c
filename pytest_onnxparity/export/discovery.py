"""Turn an export folder into graphs × variants: which file is which graph, tag and tier.

Names follow the layouts that model hubs and release scripts produce:

* ``encoder.onnx`` is the untagged (``fp32``) export of graph ``encoder``.
* A precision word after the first word of a name starts the variant tag, whatever separates it
  (``.``, ``_`` or ``-``): ``encoder.int4.onnx``, ``encoder_int8.onnx``, ``model_q4f16.onnx``,
  ``silero_vad_half.onnx``. The tag runs to the end of the name, so ``model_int4_full.onnx`` is
  variant ``int4_full`` of graph ``model``. The first word is never a tag (``quantized.onnx`` is a
  graph), and other words belong to the name (``kokoro-v1.0``, ``silero_vad_16k_op15``).
* A folder whose name holds a precision word holds variants: ``int8/encoder.onnx`` is variant
  ``int8`` of graph ``encoder``. Other folders (``onnx/``) only contain graphs; a graph name found
  in several such folders is qualified with the folder (``a/model``, ``b/model``).
* A dot tag that is not a precision word (``encoder-model.preq.onnx``) is a variant when stripping
  it leaves another graph of the same folder. Its tier is its reference's, and it is listed in
  :attr:`ExportFolder.unknown_tags` so the report header shows the guess.

A tag's tier is the least precise tier among its words (``fp16_int8`` is int8). A graph's reference
is its ``fp32`` variant (untagged, ``fp32/`` folder or ``_fp32`` tag); without one, its most precise
variant, in the order fp32 > bf16 > fp16 > int8 > int4. :class:`DiscoveryOverrides` changes any of
this per file, per tag or per graph.

External-data sidecars are the ``location`` entries the model itself names, read by
:mod:`pytest_onnxparity.onnxfile.protoscan` without importing onnx or touching the weights.
A file that cannot be read, or whose sidecars are missing or outside the export folder, gets a
one-line
:attr:`ModelFile.problem` instead of an exception, so the plugin fails that file's tests and runs
the others.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pytest_onnxparity.onnxfile.protoscan import ModelScan, ProtoScanError, scan_model

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

FILE_OVERRIDE_KEYS = ("graph", "variant", "tier")

_NAME_WORD = re.compile(r"[^._-]+")
_NAME_SEPARATORS = "._-"
# A letter first keeps version numbers such as the ".0" of "kokoro-v1.0" out of the guess.
_UNKNOWN_DOT_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class DiscoveryError(ValueError):
    """The export folder or the overrides cannot be used at all; the message names the fix."""


class NotDiscoveredError(KeyError):
    """A graph or variant name that discovery did not find; the message lists what it found."""

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were the missing key.
        return str(self.args[0])


@dataclass(frozen=True)
class DiscoveryOverrides:
    """What the project config corrects or adds, as plain values.

    ``files`` maps a relative path to any of ``graph``, ``variant``, ``tier``; ``tiers`` maps extra
    tags (or words) to tiers, which also makes the parser see them as tags; ``references`` maps a
    graph to the variant tag its others are compared against; ``exclude`` holds globs matched
    against each relative posix path (``*`` also matches ``/``). Error messages name them as the
    config does: ``[files."<relpath>"]``, ``[tags]``, ``[graphs."<graph>"] reference``.
    """

    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    tiers: Mapping[str, str] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFile:
    """One ``.onnx`` file of an export folder and where discovery placed it."""

    path: Path
    """Absolute path of the model file."""
    relpath: str
    """Path below the export root, with ``/`` separators."""
    graph: str
    variant: str
    """The tag as written (``int8``, ``q4f16``, the folder name), ``fp32`` when there is none."""
    tier: str
    """The precision class that picks default tolerances: one of :data:`TIERS_BY_PRECISION`."""
    size_bytes: int
    """Size of the ``.onnx`` file itself."""
    external_data: tuple[Path, ...] = ()
    """Absolute paths of the sidecar files the model names that exist (deduplicated, sorted)."""
    known_tag: bool = True
    """False when the tier was inherited from the reference because the tag is not known."""
    problem: str | None = None
    """Why this file cannot be tested (one line naming the file and the fix), or None."""
    external_data_sizes: tuple[int, ...] = ()
    """Sizes of :attr:`external_data`, in the same order."""

    @property
    def total_bytes(self) -> int:
        """The model file plus its sidecars."""
        return self.size_bytes + sum(self.external_data_sizes)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "relpath": self.relpath,
            "graph": self.graph,
            "variant": self.variant,
            "tier": self.tier,
            "size_bytes": self.size_bytes,
            "total_bytes": self.total_bytes,
            "external_data": [str(path) for path in self.external_data],
            "known_tag": self.known_tag,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Graph:
    """One graph: its reference export and every variant compared against it."""

    name: str
    reference: str
    """The variant tag of the reference file."""
    files: tuple[ModelFile, ...]
    """The reference first, then the variants sorted by tag."""

    @property
    def variants(self) -> tuple[str, ...]:
        """The tags of every file but the reference."""
        return tuple(model.variant for model in self.files[1:])

    @property
    def reference_file(self) -> ModelFile:
        """The file the variants are compared against."""
        return self.files[0]

    @property
    def total_bytes(self) -> int:
        """Every file of the graph with its sidecars, a sidecar shared by several counted once."""
        sidecar_sizes = {
            path: size
            for model in self.files
            for path, size in zip(model.external_data, model.external_data_sizes, strict=True)
        }
        return sum(model.size_bytes for model in self.files) + sum(sidecar_sizes.values())

    def file(self, variant: str) -> ModelFile:
        """The file of one variant tag (the reference's included); raises
        :class:`NotDiscoveredError` listing the tags when it is absent."""
        for model in self.files:
            if model.variant == variant:
                return model
        tags = ", ".join(model.variant for model in self.files)
        raise NotDiscoveredError(f"graph {self.name!r} has no variant {variant!r}; it has: {tags}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.reference,
            "variants": list(self.variants),
            "total_bytes": self.total_bytes,
            "files": [model.to_json() for model in self.files],
        }


@dataclass(frozen=True)
class ExportFolder:
    """Every graph found under one export root."""

    root: Path
    graphs: tuple[Graph, ...]
    """Sorted by name."""
    unknown_tags: tuple[str, ...] = ()
    """Relative paths of files whose tag is not known but was accepted, with an inherited tier."""

    def graph(self, name: str) -> Graph:
        """The graph of that name; :class:`NotDiscoveredError` lists the names when it is absent."""
        for graph in self.graphs:
            if graph.name == name:
                return graph
        names = ", ".join(graph.name for graph in self.graphs)
        raise NotDiscoveredError(f"{self.root} has no graph {name!r}; it has: {names}")

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "graphs": [graph.to_json() for graph in self.graphs],
            "unknown_tags": list(self.unknown_tags),
        }

    def table_lines(self) -> list[str]:
        """The report header: one row per graph, then a note for each unknown tag accepted."""
        rows = [("graph", "reference", "variants", "files", "size")]
        for graph in self.graphs:
            sidecars = {path for model in graph.files for path in model.external_data}
            files = str(len(graph.files)) + (f" + {len(sidecars)} data" if sidecars else "")
            variants = ", ".join(graph.variants) or "-"
            rows.append(
                (graph.name, graph.reference, variants, files, human_size(graph.total_bytes))
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        models = {model.relpath: model for graph in self.graphs for model in graph.files}
        lines.extend(
            f"unknown tag {models[relpath].variant!r} in {relpath}: taken as a variant of "
            f"{models[relpath].graph} with its reference's tier {models[relpath].tier}"
            for relpath in self.unknown_tags
        )
        return lines


def human_size(size_bytes: int) -> str:
    """``512 B``, ``12.3 kB``, ``4.5 MB``, ``1.2 GB`` (decimal units)."""
    if size_bytes < 1000:
        return f"{size_bytes} B"
    size = float(size_bytes)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        # Rounded first, so 999_999 bytes reads "1.0 MB" rather than "1000.0 kB".
        if round(size, 1) < 1000 or unit == "TB":
            break
    return f"{size:.1f} {unit}"


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


def discover(root: Path | str, overrides: DiscoveryOverrides | None = None) -> ExportFolder:
    """Find every ``.onnx`` file under ``root`` and group the files into graphs × variants.

    Hidden files and folders are skipped, and so is an ``.onnx`` file that another model names as
    its external data. Raises :class:`DiscoveryError` when ``root`` is missing, is not a folder or
    holds no ``.onnx`` file, when the overrides are invalid, or when two files claim the same
    graph and variant. Problems with single files are recorded on them (:attr:`ModelFile.problem`).
    """
    overrides = overrides if overrides is not None else DiscoveryOverrides()
    root_path = _checked_root(Path(root))
    tag_tiers = _tag_tiers_with(overrides.tiers)
    file_overrides = _checked_file_overrides(overrides.files)

    relpaths = _onnx_relpaths(root_path, overrides.exclude)
    inspections = {relpath: _inspect_model(root_path, relpath) for relpath in relpaths}
    named_as_data = {
        sidecar for inspection in inspections.values() for sidecar in inspection.external_data
    }
    relpaths = [relpath for relpath in relpaths if root_path / relpath not in named_as_data]
    _check_overridden_files_exist(root_path, file_overrides, relpaths)

    placements = [
        _overridden(placement, file_overrides.get(placement.relpath), tag_tiers)
        for placement in _placements_from_names(relpaths, tag_tiers)
    ]
    by_graph: dict[str, list[_Placement]] = {}
    for placement in placements:
        by_graph.setdefault(placement.graph, []).append(placement)
    _check_references(root_path, overrides.references, by_graph)

    graphs = tuple(
        _graph(root_path, name, by_graph[name], inspections, overrides.references.get(name))
        for name in sorted(by_graph)
    )
    unknown_tags = tuple(
        sorted(model.relpath for graph in graphs for model in graph.files if not model.known_tag)
    )
    return ExportFolder(root=root_path, graphs=graphs, unknown_tags=unknown_tags)


@dataclass(frozen=True)
class _Placement:
    """Where a file goes, before its graph's reference is known."""

    relpath: str
    folder: str
    graph: str
    variant: str
    tier: str | None
    """None for an unknown tag: the tier is inherited once the graph's reference is chosen."""
    unknown_dot_tag: str | None = None


@dataclass(frozen=True)
class _Inspection:
    size_bytes: int
    external_data: tuple[Path, ...] = ()
    external_data_sizes: tuple[int, ...] = ()
    problem: str | None = None


def _tier_of_word(word: str, tag_tiers: Mapping[str, str]) -> str | None:
    # A trailing "w" marks weight-only precision (fp16w); the tier is that of the precision.
    return tag_tiers.get(word) or (tag_tiers.get(word[:-1]) if word.endswith("w") else None)


def _checked_root(root: Path) -> Path:
    if not root.exists():
        raise DiscoveryError(
            f"{root} does not exist; pass the folder your export wrote (--onnx-dir)"
        )
    if not root.is_dir():
        raise DiscoveryError(
            f"{root} is a file, not a folder; pass the folder that holds it: {root.parent}"
        )
    return root.resolve()


def _checked_tier(tier: object, where: str) -> str:
    if tier not in TIERS_BY_PRECISION:
        raise DiscoveryError(
            f"{where} is {tier!r}, not a tier; use one of {', '.join(TIERS_BY_PRECISION)}"
        )
    return str(tier)


def _tag_tiers_with(extra: Mapping[str, str]) -> dict[str, str]:
    extra_tiers = {
        tag.lower(): _checked_tier(tier, f"[tags] {tag!r}") for tag, tier in extra.items()
    }
    return {**TAG_WORD_TIERS, **extra_tiers}


def _checked_file_overrides(
    files: Mapping[str, Mapping[str, str]],
) -> dict[str, Mapping[str, str]]:
    checked: dict[str, Mapping[str, str]] = {}
    for relpath, mapping in files.items():
        where = f'[files."{relpath}"]'
        for key, value in mapping.items():
            if key not in FILE_OVERRIDE_KEYS:
                raise DiscoveryError(
                    f"{where} has key {key!r}; use any of {', '.join(FILE_OVERRIDE_KEYS)}"
                )
            if not isinstance(value, str) or not value:
                raise DiscoveryError(f"{where} {key} is {value!r}; give a non-empty string")
        if "tier" in mapping:
            _checked_tier(mapping["tier"], f"{where} tier")
        checked[PurePosixPath(relpath).as_posix()] = mapping
    return checked


def _onnx_relpaths(root: Path, exclude: Iterable[str]) -> list[str]:
    found: list[str] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        folder = PurePosixPath(Path(directory).relative_to(root).as_posix())
        found.extend(
            (folder / name).as_posix()
            for name in names
            if name.lower().endswith(ONNX_SUFFIX) and not name.startswith(".")
        )
    if not found:
        raise DiscoveryError(
            f"{root} holds no {ONNX_SUFFIX} file; pass the folder your export wrote (--onnx-dir)"
        )
    patterns = tuple(exclude)
    kept = [
        relpath
        for relpath in found
        if not any(fnmatch.fnmatchcase(relpath, pattern) for pattern in patterns)
    ]
    if not kept:
        raise DiscoveryError(
            f"{root}: every {ONNX_SUFFIX} file is excluded by {', '.join(map(repr, patterns))}; "
            f"narrow the exclude patterns"
        )
    return sorted(kept)


def _check_overridden_files_exist(
    root: Path, file_overrides: Mapping[str, object], relpaths: list[str]
) -> None:
    missing = sorted(set(file_overrides) - set(relpaths))
    if missing:
        raise DiscoveryError(
            f'[files."{missing[0]}"] names no discovered {ONNX_SUFFIX} file '
            f"under {root} (missing, hidden, excluded or used as external data); "
            f"fix the path or remove the entry"
        )


def _placements_from_names(relpaths: list[str], tag_tiers: Mapping[str, str]) -> list[_Placement]:
    placements = [_placement_from_name(relpath, tag_tiers) for relpath in relpaths]
    # Only names that carry no candidate tag anchor the guess, so "a.b.c" never chains onto "a.b"
    # and the outcome does not depend on the order files are read in.
    anchors = {(p.folder, p.graph) for p in placements if p.unknown_dot_tag is None}
    placements = [
        _with_unknown_dot_tag(placement)
        if placement.unknown_dot_tag is not None
        and (placement.folder, _without_dot_tag(placement)) in anchors
        else placement
        for placement in placements
    ]
    folders_by_graph: dict[str, set[str]] = {}
    for placement in placements:
        folders_by_graph.setdefault(placement.graph, set()).add(placement.folder)
    return [
        replace(placement, graph=f"{placement.folder}/{placement.graph}")
        if len(folders_by_graph[placement.graph]) > 1 and placement.folder
        else placement
        for placement in placements
    ]


def _placement_from_name(relpath: str, tag_tiers: Mapping[str, str]) -> _Placement:
    path = PurePosixPath(relpath)
    stem = path.name[: -len(ONNX_SUFFIX)]
    directories = path.parent.parts
    folder_tier = tier_of_tag(directories[-1], tag_tiers) if directories else None
    folder = "/".join(directories[:-1] if folder_tier else directories)
    graph, tag = split_name(stem, tag_tiers)
    if tag is not None:
        return _Placement(relpath, folder, graph, tag, tier_of_tag(tag, tag_tiers))
    if folder_tier is not None:
        return _Placement(relpath, folder, graph, directories[-1], folder_tier)
    base, _, last_segment = stem.rpartition(".")
    unknown_dot_tag = last_segment if base and _UNKNOWN_DOT_TAG.fullmatch(last_segment) else None
    return _Placement(relpath, folder, graph, UNTAGGED_VARIANT, "fp32", unknown_dot_tag)


def _without_dot_tag(placement: _Placement) -> str:
    return placement.graph.rpartition(".")[0]


def _with_unknown_dot_tag(placement: _Placement) -> _Placement:
    assert placement.unknown_dot_tag is not None
    return replace(
        placement,
        graph=_without_dot_tag(placement),
        variant=placement.unknown_dot_tag,
        tier=None,
        unknown_dot_tag=None,
    )


def _overridden(
    placement: _Placement, mapping: Mapping[str, str] | None, tag_tiers: Mapping[str, str]
) -> _Placement:
    if not mapping:
        return placement
    variant = mapping.get("variant", placement.variant)
    if "tier" in mapping:
        tier: str | None = mapping["tier"]
    elif "variant" in mapping:
        tier = tier_of_tag(variant, tag_tiers)
    else:
        tier = placement.tier
    return replace(
        placement, graph=mapping.get("graph", placement.graph), variant=variant, tier=tier
    )


def _check_references(
    root: Path, references: Mapping[str, str], by_graph: Mapping[str, list[_Placement]]
) -> None:
    for graph, tag in references.items():
        if graph not in by_graph:
            raise DiscoveryError(
                f'[graphs."{graph}"] reference: there is no graph {graph!r} under {root}; '
                f"graphs are: {', '.join(sorted(by_graph))}"
            )
        variants = sorted(placement.variant for placement in by_graph[graph])
        if tag not in variants:
            raise DiscoveryError(
                f'[graphs."{graph}"] reference is {tag!r}, not a variant of '
                f"{graph}; use one of {', '.join(variants)}"
            )


def _graph(
    root: Path,
    name: str,
    placements: list[_Placement],
    inspections: Mapping[str, _Inspection],
    reference_tag: str | None,
) -> Graph:
    by_variant: dict[str, _Placement] = {}
    for placement in sorted(placements, key=lambda p: p.relpath):
        twin = by_variant.setdefault(placement.variant, placement)
        if twin is not placement:
            raise DiscoveryError(
                f"{root}: {twin.relpath} and {placement.relpath} are both variant "
                f"{placement.variant!r} of graph {name}; exclude one, or give it a variant of "
                f'its own with [files."{placement.relpath}"] variant = "..."'
            )
    known = [placement for placement in placements if placement.tier is not None]
    default_reference = min(known or placements, key=_reference_preference)
    reference = by_variant[reference_tag] if reference_tag else default_reference
    inherited_tier = reference.tier or default_reference.tier or "fp32"
    ordered = [
        reference,
        *sorted(
            (placement for placement in placements if placement is not reference),
            key=lambda placement: (placement.variant.casefold(), placement.variant),
        ),
    ]
    return Graph(
        name=name,
        reference=reference.variant,
        files=tuple(
            _model_file(root, placement, inspections[placement.relpath], inherited_tier)
            for placement in ordered
        ),
    )


def _reference_preference(placement: _Placement) -> tuple[bool, int, str]:
    precision = (
        TIERS_BY_PRECISION.index(placement.tier) if placement.tier else len(TIERS_BY_PRECISION)
    )
    return (placement.variant != UNTAGGED_VARIANT, precision, placement.variant)


def _model_file(
    root: Path, placement: _Placement, inspection: _Inspection, inherited_tier: str
) -> ModelFile:
    return ModelFile(
        path=root / placement.relpath,
        relpath=placement.relpath,
        graph=placement.graph,
        variant=placement.variant,
        tier=placement.tier or inherited_tier,
        size_bytes=inspection.size_bytes,
        external_data=inspection.external_data,
        known_tag=placement.tier is not None,
        problem=inspection.problem,
        external_data_sizes=inspection.external_data_sizes,
    )


def _inspect_model(root: Path, relpath: str) -> _Inspection:
    path = root / relpath
    try:
        size_bytes = path.stat().st_size
        if size_bytes == 0:
            return _Inspection(0, problem=_unreadable(relpath, "empty file"))
        scan = scan_model(path)
    except ProtoScanError:
        return _Inspection(path.stat().st_size, problem=_unreadable(relpath, "corrupt protobuf"))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return _Inspection(0, problem=_unreadable(relpath, reason))
    gap = _missing_part(scan)
    if gap is not None:
        return _Inspection(size_bytes, problem=_unreadable(relpath, gap))

    model_folder = PurePosixPath(relpath).parent
    found: list[Path] = []
    missing: list[str] = []
    outside: list[str] = []
    for location in sorted(set(scan.external_data_locations)):
        escape = _escape(model_folder, location)
        if escape is not None:
            outside.append(escape)
        elif (root / model_folder / location).is_file():
            found.append(root / model_folder / location)
        else:
            missing.append(location)
    sidecars = tuple(sorted(set(found)))
    return _Inspection(
        size_bytes,
        external_data=sidecars,
        external_data_sizes=tuple(sidecar.stat().st_size for sidecar in sidecars),
        problem=_sidecar_problem(root, relpath, outside, missing),
    )


def _unreadable(relpath: str, reason: str) -> str:
    return (
        f"{relpath}: not a readable ONNX model ({reason}); "
        f"re-export it or remove it from the folder"
    )


def _missing_part(scan: ModelScan) -> str | None:
    # A protobuf prefix that ends between two fields is well formed; a model cut there lacks the
    # fields written last (the graph, then the opset imports).
    if not scan.has_graph:
        return "no graph, truncated?"
    if not scan.has_opset_import:
        return "no opset_import, truncated?"
    return None


def _escape(model_folder: PurePosixPath, location: str) -> str | None:
    """How ``location`` leaves the model's folder, or None when it stays inside it."""
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute():
        return f"external data {location!r} points outside the export folder (absolute path)"
    if ".." not in PurePosixPath(location).parts:
        return None
    if os.path.normpath(model_folder / location).startswith(".."):
        return f"external data {location!r} points outside the export folder"
    return f"external data {location!r} climbs out of the model's folder, which onnx.load refuses"


def _sidecar_problem(
    root: Path, relpath: str, outside: list[str], missing: list[str]
) -> str | None:
    if outside:
        return (
            f"{relpath}: {'; '.join(outside)}; move the data next to the model and re-save with "
            f"onnx.save_model(..., save_as_external_data=True, location=<a file name>)"
        )
    if missing:
        names = ", ".join(map(repr, missing))
        sidecar_folder = (root / relpath).parent / PurePosixPath(missing[0]).parent
        return (
            f"{relpath}: external data {names} not found next to the model; copy the sidecar into "
            f"{os.path.normpath(sidecar_folder)} or re-save with "
            f"onnx.save_model(..., save_as_external_data=True)"
        )
    return None
