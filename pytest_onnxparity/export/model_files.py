"""One model file inspected without loading it: readable as ONNX, its external-data sidecars
present and inside the export folder. A problem becomes a one-line
:attr:`~pytest_onnxparity.export.folder.ModelFile.problem`, so the plugin fails that file's
tests and runs the others."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from pytest_onnxparity.export.folder import ModelFile
from pytest_onnxparity.export.naming import Placement
from pytest_onnxparity.onnxfile.protoscan import (
    ModelScan,
    ProtoScanError,
    scan_model,
    scan_signature,
)


@dataclass(frozen=True)
class Inspection:
    size_bytes: int
    external_data: tuple[Path, ...] = ()
    external_data_sizes: tuple[int, ...] = ()
    problem: str | None = None


def model_file(
    root: Path, placement: Placement, inspection: Inspection, inherited_tier: str
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


def inspect_model(root: Path, relpath: str) -> Inspection:
    path = root / relpath
    try:
        size_bytes = path.stat().st_size
        if size_bytes == 0:
            return Inspection(0, problem=_unreadable(relpath, "empty file"))
        scan = scan_model(path)
    except ProtoScanError:
        return Inspection(path.stat().st_size, problem=_unreadable(relpath, "corrupt protobuf"))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return Inspection(0, problem=_unreadable(relpath, reason))
    try:
        scan_signature(path)  # the model scan skips over inputs and outputs it does not need
    except ProtoScanError as error:
        return Inspection(size_bytes, problem=_unreadable(relpath, f"corrupt signature: {error}"))
    gap = _missing_part(scan)
    if gap is not None:
        return Inspection(size_bytes, problem=_unreadable(relpath, gap))
    if scan.wiring_problem is not None:
        return Inspection(size_bytes, problem=_miswired(relpath, scan.wiring_problem))

    model_folder = PurePosixPath(relpath).parent
    found: list[Path] = []
    missing: list[str] = []
    outside: list[str] = []
    for location in sorted(set(scan.external_data_locations)):
        escape = _escape(model_folder, location)
        if escape is None:
            escape = _linked_outside(root, root / model_folder / location, location)
        if escape is not None:
            outside.append(escape)
        elif (root / model_folder / location).is_file():
            found.append(root / model_folder / location)
        else:
            missing.append(location)
    sidecars = tuple(sorted(set(found)))
    return Inspection(
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


def _miswired(relpath: str, problem: str) -> str:
    # Checked before onnxruntime sees the file: some builds crash on such graphs instead of
    # refusing them, which would take the whole run down.
    fix = (
        "sort its nodes topologically (onnxruntime.transformers.onnx_model.OnnxModel(model)."
        "topological_sort(), then save) or re-export it"
        if "topological" in problem
        else "re-export it"
    )
    return f"{relpath}: not a valid ONNX graph ({problem}); {fix}"


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


def _linked_outside(root: Path, sidecar: Path, location: str) -> str | None:
    """How a sidecar that is a symbolic link leaves the export folder, or None: onnxruntime
    refuses data whose real path is outside the model's folder."""
    if not sidecar.is_symlink():
        return None
    target = Path(os.path.realpath(sidecar))
    if target == root.resolve() or root.resolve() in target.parents:
        return None
    return f"external data {location!r} is a symbolic link to {target}, outside the export folder"


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
