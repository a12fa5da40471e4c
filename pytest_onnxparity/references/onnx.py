"""ONNX references: a graph's fp32 file (or the same file in another folder, or under other
session settings) run through onnxruntime, each input set once."""

from __future__ import annotations

import numpy as np

from pytest_onnxparity.references.base import CachedReference, ReferenceError
from pytest_onnxparity.runtime.inputs import InputSet
from pytest_onnxparity.runtime.sessions import (
    ModelLoadError,
    OnnxRunner,
)


class OnnxReference(CachedReference):
    """An ONNX graph run by onnxruntime: the same folder's fp32 file, another folder's file, or
    the same file under other :class:`SessionSettings`."""

    def __init__(self, runner: OnnxRunner, label: str = "onnx fp32") -> None:
        super().__init__()
        self.runner = runner
        self.description = f"{label} ({runner.path.name})"

    def _run(self, inputs: InputSet) -> dict[str, np.ndarray]:
        try:
            # Outputs are cached per input set: each set runs once.
            return self.runner.run(inputs.arrays, free_arena=True, dims=inputs.dims)
        except ModelLoadError as error:
            raise ReferenceError(f"reference {error}") from error
