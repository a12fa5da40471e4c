"""The memory budget of localization: each exposed tensor's size from its shape, and batches of
tensors whose activations fit the budget.

Sizes come from ONNX shape inference on the reference graph with its inputs fixed to the shapes
of the arrays it runs on. A batch holds the reference's values of its tensors and of their
frontier (what the replay feeds in) while the variant's values of its tensors are compared, so
its cost is the reference bytes of both plus the variant's bytes of the tensors; each batch's
values are reduced to statistics and dropped before the next batch runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MB = 2**20


@dataclass(frozen=True)
class Batch:
    """Tensors exposed by one instrumented run, the frontier their replay reads, and the bytes
    the run is estimated to hold."""

    tensors: tuple[str, ...]
    frontier: tuple[str, ...]
    estimated_bytes: int


def tensor_bytes(model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Bytes of each tensor whose shape ONNX shape inference can work out with the graph inputs
    fixed to the shapes of ``inputs``; tensors it cannot size are missing."""
    import onnx

    sized = onnx.ModelProto()
    sized.CopyFrom(model)
    del sized.graph.output[:]
    for value in sized.graph.input:
        array = inputs.get(value.name)
        if array is None or not value.type.HasField("tensor_type"):
            continue
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for size in np.shape(array):
            shape.dim.add().dim_value = int(size)
    try:
        inferred = onnx.shape_inference.infer_shapes(sized, data_prop=True)
    except Exception:  # onnx raises InferenceError and plain RuntimeErrors on odd graphs
        return {}
    item_sizes = {element: np.dtype(name).itemsize for element, name in _dtypes().items()}
    sizes: dict[str, int] = {}
    for value in inferred.graph.value_info:
        tensor_type = value.type.tensor_type
        item = item_sizes.get(tensor_type.elem_type)
        dims = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim]
        if item is None or not tensor_type.HasField("shape") or any(d < 0 for d in dims):
            continue
        sizes[value.name] = int(np.prod(dims, dtype=np.int64)) * item
    return sizes


def _dtypes() -> dict[int, str]:
    from onnx import TensorProto

    return {
        TensorProto.FLOAT: "float32",
        TensorProto.FLOAT16: "float16",
        TensorProto.DOUBLE: "float64",
        TensorProto.BFLOAT16: "float16",
    }


def plan_batches(
    tensors: Sequence[str],
    frontiers: Mapping[str, Sequence[str]],
    sizes: Mapping[str, int],
    budget_bytes: int,
    max_tensors: int | None = None,
) -> Iterator[Batch]:
    """Consecutive batches of ``tensors`` (kept in order) whose estimated bytes fit
    ``budget_bytes``; a tensor too big for the budget on its own gets a batch of its own.

    A tensor inference could not size counts as the largest one it could.
    """
    unknown = max(sizes.values(), default=0)
    size_of = {name: sizes.get(name, unknown) for name in tensors}

    def cost(batch: Sequence[str], frontier: Mapping[str, None]) -> int:
        held = set(batch) | set(frontier)
        return sum(size_of.get(name, sizes.get(name, unknown)) for name in held) + sum(
            size_of[name] for name in batch
        )

    batch: list[str] = []
    frontier: dict[str, None] = {}
    for tensor in tensors:
        grown_frontier = {**frontier, **dict.fromkeys(frontiers.get(tensor, ()))}
        full = max_tensors is not None and len(batch) >= max_tensors
        if batch and (full or cost([*batch, tensor], grown_frontier) > budget_bytes):
            yield Batch(tuple(batch), tuple(frontier), cost(batch, frontier))
            batch, grown_frontier = [], dict.fromkeys(frontiers.get(tensor, ()))
        batch.append(tensor)
        frontier = grown_frontier
    if batch:
        yield Batch(tuple(batch), tuple(frontier), cost(batch, frontier))
