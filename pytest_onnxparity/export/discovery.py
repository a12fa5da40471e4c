"""Turn an export folder into graphs × variants: which file is which graph, tag and tier.

Names are read by :mod:`pytest_onnxparity.export.naming`. Beyond them:

* A folder whose name holds a precision word holds variants: ``int8/encoder.onnx`` is variant
  ``int8`` of graph ``encoder``. Other folders (``onnx/``) only contain graphs; a graph name
  found in several such folders is qualified with the folder (``a/model``, ``b/model``).
* A dot tag that is not a precision word (``encoder-model.preq.onnx``) is a variant when
  stripping it leaves another graph of the same folder. Its tier is its reference's, and it is
  listed in :attr:`ExportFolder.unknown_tags` so the report header shows the guess. The last
  ``_``/``-`` word of a name (``model_qdq8.onnx``, as a third-party quantizer writes it) is such
  a tag too when, stripped, it leaves another graph of the folder with the same input and output
  names: an underscore joins the words of names far more often than a dot, so the signature
  must agree as well (``decoder_model_merged`` stays a graph beside ``decoder_model``).
* An ``.onnx`` file that another model names as its external data is that model's data, unless
  it is itself a readable model: then the model naming it is broken (its problem says so), and
  the file stays a model, so a damaged variant can never hide its reference.
* A graph's reference is its ``fp32`` variant (untagged, ``fp32/`` folder or ``_fp32`` tag);
  without one, its most precise variant, in the order fp32 > bf16 > fp16 > int8 > int4.
  :class:`DiscoveryOverrides` changes any of this per file, per tag or per graph.

Each file is inspected without loading it (:mod:`pytest_onnxparity.export.model_files`): a file
that cannot be read, or whose sidecars are missing or outside the export folder, gets a one-line
:attr:`ModelFile.problem` instead of an exception, so the plugin fails that file's tests and runs
the others.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath

from pytest_onnxparity.export.ambiguous import (
    SignatureReader,
    with_word_tags,
    without_models_as_data,
)
from pytest_onnxparity.export.folder import (
    FILE_OVERRIDE_KEYS,
    DiscoveryError,
    DiscoveryOverrides,
    ExportFolder,
    Graph,
)
from pytest_onnxparity.export.model_files import Inspection, inspect_model, model_file
from pytest_onnxparity.export.naming import (
    ONNX_SUFFIX,
    TAG_WORD_TIERS,
    TIERS_BY_PRECISION,
    UNKNOWN_DOT_TAG,
    UNTAGGED_VARIANT,
    Placement,
    split_name,
    tier_of_tag,
    unknown_word_tag,
    with_unknown_dot_tag,
    without_dot_tag,
)


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
    inspections = without_models_as_data(
        root_path, {relpath: inspect_model(root_path, relpath) for relpath in relpaths}
    )
    relpaths = list(inspections)
    _check_overridden_files_exist(root_path, file_overrides, relpaths)

    signatures = SignatureReader(root_path, inspections)
    placements = [
        _overridden(placement, file_overrides.get(placement.relpath), tag_tiers)
        for placement in _placements_from_names(relpaths, tag_tiers, signatures)
    ]
    by_graph: dict[str, list[Placement]] = {}
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
            if key in ("graph", "variant") and not _safe_name(value, nested=key == "graph"):
                raise DiscoveryError(
                    f"{where} {key} is {value!r}; a {key} name is a plain name ({key} names "
                    "become file names of recordings): use letters, digits, '_', '-', '.'"
                    + (" and '/' between folder names" if key == "graph" else "")
                )
        if "tier" in mapping:
            _checked_tier(mapping["tier"], f"{where} tier")
        checked[PurePosixPath(relpath).as_posix()] = mapping
    return checked


def _safe_name(name: str, nested: bool) -> bool:
    """A name that stays a name when joined to a folder: no absolute path, no ``..``, no
    backslash or drive, no empty part (and no ``/`` at all unless ``nested``)."""
    parts = name.split("/")
    return (
        "\\" not in name
        and ":" not in name
        and (nested or len(parts) == 1)
        and all(part not in ("", ".", "..") for part in parts)
    )


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
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(relpath, pattern) for relpath in found):
            raise DiscoveryError(
                f"exclude pattern {pattern!r} matches no {ONNX_SUFFIX} file under {root} "
                "(patterns match the path below the folder, e.g. 'onnx/*_q4.onnx'); fix or "
                "remove it"
            )
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


def _placements_from_names(
    relpaths: list[str], tag_tiers: Mapping[str, str], signatures: SignatureReader
) -> list[Placement]:
    placements = [_placement_from_name(relpath, tag_tiers) for relpath in relpaths]
    # Only names that carry no candidate tag anchor the guess, so "a.b.c" never chains onto "a.b"
    # and the outcome does not depend on the order files are read in.
    anchors = {(p.folder, p.graph) for p in placements if p.unknown_dot_tag is None}
    placements = [
        with_unknown_dot_tag(placement)
        if placement.unknown_dot_tag is not None
        and (placement.folder, without_dot_tag(placement)) in anchors
        else placement
        for placement in placements
    ]
    placements = with_word_tags(placements, signatures)
    folders_by_graph: dict[str, set[str]] = {}
    for placement in placements:
        folders_by_graph.setdefault(placement.graph, set()).add(placement.folder)
    return [
        replace(placement, graph=f"{placement.folder}/{placement.graph}")
        if len(folders_by_graph[placement.graph]) > 1 and placement.folder
        else placement
        for placement in placements
    ]


def _placement_from_name(relpath: str, tag_tiers: Mapping[str, str]) -> Placement:
    path = PurePosixPath(relpath)
    stem = path.name[: -len(ONNX_SUFFIX)]
    directories = path.parent.parts
    folder_tier = tier_of_tag(directories[-1], tag_tiers) if directories else None
    folder = "/".join(directories[:-1] if folder_tier else directories)
    graph, tag = split_name(stem, tag_tiers)
    if tag is not None:
        return Placement(relpath, folder, graph, tag, tier_of_tag(tag, tag_tiers))
    if folder_tier is not None:
        return Placement(relpath, folder, graph, directories[-1], folder_tier)
    base, _, last_segment = stem.rpartition(".")
    unknown_dot_tag = last_segment if base and UNKNOWN_DOT_TAG.fullmatch(last_segment) else None
    word_tag = None if unknown_dot_tag else unknown_word_tag(stem)
    return Placement(relpath, folder, graph, UNTAGGED_VARIANT, "fp32", unknown_dot_tag, word_tag)


def _overridden(
    placement: Placement, mapping: Mapping[str, str] | None, tag_tiers: Mapping[str, str]
) -> Placement:
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
    root: Path, references: Mapping[str, str], by_graph: Mapping[str, list[Placement]]
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
    placements: list[Placement],
    inspections: Mapping[str, Inspection],
    reference_tag: str | None,
) -> Graph:
    by_variant: dict[str, Placement] = {}
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
            model_file(root, placement, inspections[placement.relpath], inherited_tier)
            for placement in ordered
        ),
    )


def _reference_preference(placement: Placement) -> tuple[bool, int, str]:
    precision = (
        TIERS_BY_PRECISION.index(placement.tier) if placement.tier else len(TIERS_BY_PRECISION)
    )
    return (placement.variant != UNTAGGED_VARIANT, precision, placement.variant)
