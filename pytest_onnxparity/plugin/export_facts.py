"""What the results document states about the export folder's files: each graph's inputs and
outputs, and each file's format (IR version, opsets, producer, op types per domain), read from
the files' bytes (no onnx import, no weights, no external data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_onnxparity.run.engine import ParityEngine


def file_formats(engine: ParityEngine) -> dict[str, Any]:
    """Each file's IR version, opsets, producer and op types per domain, by relative path (read
    from the file's bytes: no onnx import, no weights)."""
    from pytest_onnxparity.onnxfile.protoscan import scan_format

    formats: dict[str, Any] = {}
    for graph in engine.folder.graphs:
        for model in graph.files:
            if model.problem:
                continue
            try:
                formats[model.relpath] = scan_format(model.path).to_json()
            except (OSError, ValueError):  # its own test already failed with the file named
                continue
    return formats


def graph_io(engine: ParityEngine) -> dict[str, Any]:
    """Each graph's inputs and outputs, read from its reference file (no external data)."""
    from pytest_onnxparity.onnxfile.signature import read_signature

    io: dict[str, Any] = {}
    for graph in engine.folder.graphs:
        model = graph.reference_file
        if model.problem:
            continue
        try:
            inputs, outputs = read_signature(str(model.path))
        except (OSError, ValueError):  # protoscan's errors are ValueErrors
            continue  # its own test already failed with the file named
        io[graph.name] = {
            "file": model.relpath,
            "inputs": [spec.to_json() for spec in inputs],
            "outputs": [spec.to_json() for spec in outputs],
        }
    return io
