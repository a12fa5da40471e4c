"""What discovery finds: an export folder's graphs, each with its reference and variants, each a
model file with its sidecars, sizes and any problem reading it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_OVERRIDE_KEYS = ("graph", "variant", "tier")


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
            f"{models[relpath].graph} with its reference's tier {models[relpath].tier} "
            f'(set [tags] "{models[relpath].variant}" = "int8" or another tier if it differs)'
            for relpath in self.unknown_tags
        )
        lone = [graph.name for graph in self.graphs if not graph.variants]
        if lone:
            lines.append(
                f"no variant, only checked to load: {', '.join(lone)} (name a variant "
                '<graph>_int8.onnx, map a file with [files."<path>"] graph = ..., or set '
                "require_variants = true to fail such graphs)"
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
