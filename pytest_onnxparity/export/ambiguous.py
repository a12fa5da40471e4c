"""Files whose place discovery must decide rather than read off the name.

* An unknown last ``_``/``-`` word (``model_qdq8.onnx`` beside ``model.onnx``) makes a variant
  only when both files have the same input and output names (:func:`with_word_tags`).
* An ``.onnx`` file another model names as its external data is data, unless it is a readable
  model itself: then the model naming it is the broken one (:func:`without_models_as_data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath

from pytest_onnxparity.export.model_files import Inspection
from pytest_onnxparity.export.naming import (
    UNTAGGED_VARIANT,
    Placement,
    with_unknown_word_tag,
    without_word_tag,
)
from pytest_onnxparity.onnxfile.protoscan import scan_signature


def without_models_as_data(root: Path, inspections: dict[str, Inspection]) -> dict[str, Inspection]:
    """Drop the ``.onnx`` files other models name as external data, unless they are readable
    models themselves: then the models naming them get a problem instead."""
    models = {
        root / relpath: relpath for relpath, found in inspections.items() if not found.problem
    }
    kept = dict(inspections)
    for relpath, inspection in inspections.items():
        hidden = [models[sidecar] for sidecar in inspection.external_data if sidecar in models]
        if hidden:
            data = [
                (sidecar, size)
                for sidecar, size in zip(
                    inspection.external_data, inspection.external_data_sizes, strict=True
                )
                if sidecar not in models
            ]
            kept[relpath] = replace(
                inspection,
                external_data=tuple(sidecar for sidecar, _ in data),
                external_data_sizes=tuple(size for _, size in data),
                problem=_names_a_model(relpath, hidden[0]),
            )
    named_as_data = {
        sidecar for inspection in inspections.values() for sidecar in inspection.external_data
    }
    return {
        relpath: inspection
        for relpath, inspection in kept.items()
        if root / relpath not in named_as_data or root / relpath in models
    }


def _names_a_model(relpath: str, model: str) -> str:
    name = PurePosixPath(relpath).name
    return (
        f"{relpath}: names {model}, an ONNX model of this folder, as its external data; "
        f're-save it with onnx.save_model(..., save_as_external_data=True, location="{name}.data")'
    )


class SignatureReader:
    """Input and output names of the folder's readable files, read on demand from the wire
    format (only files whose name may carry an unknown ``_`` tag are ever read)."""

    def __init__(self, root: Path, inspections: Mapping[str, Inspection]) -> None:
        self.root = root
        self.inspections = inspections
        self._names: dict[str, tuple[tuple[str, ...], tuple[str, ...]] | None] = {}

    def __call__(self, relpath: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        if relpath not in self._names:
            self._names[relpath] = self._read(relpath)
        return self._names[relpath]

    def _read(self, relpath: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        inspection = self.inspections.get(relpath)
        if inspection is None or inspection.problem:
            return None
        try:
            inputs, outputs = scan_signature(self.root / relpath)
        except (OSError, ValueError):  # ProtoScanError is a ValueError
            return None
        return tuple(i.name for i in inputs), tuple(o.name for o in outputs)


def with_word_tags(placements: list[Placement], signatures: SignatureReader) -> list[Placement]:
    """Make ``<graph>_<word>`` a variant of ``<graph>`` when both files have the same input and
    output names. A name that is itself such a candidate never anchors another one, so
    ``a_b_c`` does not chain onto ``a_b``."""
    untagged = {
        (p.folder, p.graph): p
        for p in placements
        if p.variant == UNTAGGED_VARIANT and p.tier == "fp32" and not p.unknown_dot_tag
    }

    def base(placement: Placement) -> Placement | None:
        if placement.unknown_word_tag is None:
            return None
        return untagged.get((placement.folder, without_word_tag(placement)))

    candidates = {p.relpath for p in placements if base(p) is not None}
    chosen: list[Placement] = []
    for placement in placements:
        anchor = base(placement)
        if (
            anchor is not None
            and anchor.relpath not in candidates
            and signatures(placement.relpath) is not None
            and signatures(placement.relpath) == signatures(anchor.relpath)
        ):
            chosen.append(with_unknown_word_tag(placement))
        else:
            chosen.append(placement)
    return chosen
