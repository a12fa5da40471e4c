"""What each file and each variant bundle of an export folder weighs, and its compression ratio.

* A file's size is the ``.onnx`` file plus the external-data sidecars it names.
* A variant bundle is every graph's file of one variant tag (``int4``: ``encoder.int4.onnx`` +
  ``decoder.int4.onnx``), with each sidecar counted once however many graphs share it: what a
  release of that variant ships.
* The compression ratio is the reference's bytes over the variant's (``4.0`` = four times
  smaller): for a file, its graph's reference file; for a bundle, the reference files of the
  same graphs, sidecars counted once too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.export.folder import ExportFolder, Graph, ModelFile

BYTES_PER_MB = 1_000_000


def compression_text(ratio: float | None) -> str:
    """The one way sizes are compared in every table: ``1.77x smaller`` (reference bytes over
    variant bytes), ``1.25x larger`` for a variant that grew, ``same size`` at 1."""
    if ratio is None or ratio <= 0:
        return "-"
    if round(ratio, 2) == 1.0:
        return "same size"
    return f"{ratio:.2f}x smaller" if ratio > 1 else f"{1 / ratio:.2f}x larger"


@dataclass(frozen=True)
class FileSize:
    """One graph file with its sidecars, and how it compares with its graph's reference file."""

    graph: str
    variant: str
    tier: str
    relpath: str
    model_bytes: int
    sidecars: Mapping[str, int]
    """Sidecar path (relative to the export root) -> bytes."""
    reference_variant: str
    reference_bytes: int

    @property
    def is_reference(self) -> bool:
        return self.variant == self.reference_variant

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + sum(self.sidecars.values())

    @property
    def ratio(self) -> float | None:
        return self.reference_bytes / self.total_bytes if self.total_bytes else None

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.graph, f"{self.graph}/{self.variant}")

    def to_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "variant": self.variant,
            "tier": self.tier,
            "relpath": self.relpath,
            "model_bytes": self.model_bytes,
            "sidecars": dict(self.sidecars),
            "total_bytes": self.total_bytes,
            "reference_variant": self.reference_variant,
            "reference_bytes": self.reference_bytes,
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class Bundle:
    """Every graph's file of one variant tag; sidecars shared by several files counted once."""

    variant: str
    files: tuple[FileSize, ...]
    total_bytes: int
    reference_bytes: int
    """The reference files of the same graphs, sidecars counted once."""

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(sorted({file.tier for file in self.files}))

    @property
    def is_reference(self) -> bool:
        """Only reference files: comparing it with the reference says nothing."""
        return all(file.is_reference for file in self.files)

    @property
    def ratio(self) -> float | None:
        return self.reference_bytes / self.total_bytes if self.total_bytes else None

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.variant, *self.tiers)

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "tiers": list(self.tiers),
            "graphs": [file.graph for file in self.files],
            "total_bytes": self.total_bytes,
            "reference_bytes": self.reference_bytes,
            "ratio": self.ratio,
            "is_reference": self.is_reference,
            "files": [file.to_json() for file in self.files],
        }


@dataclass(frozen=True)
class SizeReport:
    """Every file and every variant bundle of an export folder."""

    files: tuple[FileSize, ...]
    bundles: tuple[Bundle, ...]

    def bundle(self, variant: str) -> Bundle:
        for bundle in self.bundles:
            if bundle.variant == variant:
                return bundle
        raise KeyError(f"no bundle {variant!r}; bundles: {', '.join(self.variants)}")

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(bundle.variant for bundle in self.bundles)

    def to_json(self) -> dict[str, Any]:
        return {"bundles": [bundle.to_json() for bundle in self.bundles]}


def size_report(folder: ExportFolder) -> SizeReport:
    """Sizes of every file and bundle of ``folder``, from discovery (no model is loaded)."""
    root = folder.root
    files = [file_size(root, graph, model) for graph in folder.graphs for model in graph.files]
    by_variant: dict[str, list[tuple[Graph, ModelFile]]] = {}
    for graph in folder.graphs:
        for model in graph.files:
            by_variant.setdefault(model.variant, []).append((graph, model))
    bundles = []
    for variant in sorted(by_variant, key=lambda tag: (_first_reference(by_variant[tag]), tag)):
        members = by_variant[variant]
        bundles.append(
            Bundle(
                variant=variant,
                files=tuple(f for f in files if f.variant == variant),
                total_bytes=bundle_bytes(model for _, model in members),
                reference_bytes=bundle_bytes(graph.reference_file for graph, _ in members),
            )
        )
    return SizeReport(files=tuple(files), bundles=tuple(bundles))


def _first_reference(members: Sequence[tuple[Graph, ModelFile]]) -> int:
    # Reference bundles first, then the others by name: the table reads top-down from fp32.
    return 0 if all(model is graph.reference_file for graph, model in members) else 1


def file_size(root: Path, graph: Graph, model: ModelFile) -> FileSize:
    return FileSize(
        graph=graph.name,
        variant=model.variant,
        tier=model.tier,
        relpath=model.relpath,
        model_bytes=model.size_bytes,
        sidecars={
            _relative(root, path): size
            for path, size in zip(model.external_data, model.external_data_sizes, strict=True)
        },
        reference_variant=graph.reference,
        reference_bytes=graph.reference_file.total_bytes,
    )


def bundle_bytes(models: Iterable[ModelFile]) -> int:
    """Model files plus their sidecars, a sidecar named by several models counted once."""
    model_bytes = 0
    sidecars: dict[Path, int] = {}
    for model in models:
        model_bytes += model.size_bytes
        sidecars.update(zip(model.external_data, model.external_data_sizes, strict=True))
    return model_bytes + sum(sidecars.values())


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
