"""The memory budget of localization: each exposed tensor's size from its shape, and batches of
tensors whose activations fit the budget.

Sizes come from ONNX shape inference on the reference graph with its inputs fixed to the shapes
of the arrays it runs on. A batch holds the reference's values of its tensors and of their
frontier (what the replay feeds in) while the variant's values of its tensors are compared, so
its cost is the reference bytes of both plus the variant's bytes of the tensors; each batch's
values are reduced to statistics and dropped before the next batch runs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
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


def tensor_bytes(
    model: Any, inputs: Mapping[str, np.ndarray], wanted: Collection[str] = ()
) -> dict[str, int]:
    """Bytes of each tensor whose shape shape inference works out with the graph inputs fixed
    to the shapes of ``inputs``: ONNX's, then, where it leaves some of ``wanted`` unsized,
    onnxruntime's symbolic one (slower; it follows shapes computed at run time). Tensors
    neither can size are missing."""
    import onnx

    sized = onnx.ModelProto()
    sized.CopyFrom(model)
    for value in sized.graph.input:
        array = inputs.get(value.name)
        if array is None or not value.type.HasField("tensor_type"):
            continue
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for size in np.shape(array):
            shape.dim.add().dim_value = int(size)
    _weights_as_inputs(sized)
    sizes: dict[str, int] = {}
    for infer in (_onnx_inference, _onnxruntime_inference):
        inferred = infer(sized)
        if inferred is not None:
            sizes = {**sizes, **_sizes(inferred)}
        if all(name in sizes for name in wanted):
            break
    return sizes


def _weights_as_inputs(model: Any) -> None:
    """Initializers kept in a sidecar become graph inputs of their type and shape, so that
    inference never reads weights (and needs no sidecar); small inline constants stay."""
    from onnx import TensorProto, helper

    graph = model.graph
    external = [t for t in graph.initializer if t.data_location == TensorProto.EXTERNAL]
    for tensor in external:
        graph.initializer.remove(tensor)
        value = helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
        graph.input.append(value)


def _onnxruntime_inference(model: Any) -> Any:
    """onnxruntime's symbolic shape inference, which follows shapes computed at run time
    (``Shape`` → ``Slice``) and knows its contrib ops; None where it cannot run (it needs sympy)
    or gives up on the graph."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return None
    try:
        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # it raises bare Exceptions and asserts on graphs it does not follow
        return None


def _onnx_inference(model: Any) -> Any:
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # onnx raises InferenceError and plain RuntimeErrors on odd graphs
        return None


def _sizes(inferred: Any) -> dict[str, int]:
    from onnx import helper

    sizes: dict[str, int] = {}
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape") or not tensor_type.elem_type:
            continue
        dims = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim]
        try:
            item = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).itemsize
        except (KeyError, TypeError):  # 4-bit and string types: never held
            continue
        if all(d >= 0 for d in dims):
            sizes[value.name] = int(np.prod(dims, dtype=np.int64)) * item
    return sizes


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
