"""Instrumenting a model: its intermediate float tensors exposed as graph outputs, in topological
order, fetched a batch at a time, and its replay copy fed with the reference's activations.

Exposing intermediate tensors blocks the fusions that would consume them, so the instrumented
runs are for localization only: the end-to-end verdict always comes from the ordinary,
uninstrumented run. Each run opens a fresh session without onnxruntime's memory arena and drops
it afterwards, and memory freed since the last run is handed back to the system first, so what
a batch held is gone before the next one starts."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import heapq
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.diagnose.localize.replay import (
    fed_name,
    node_reads,
    replay_model,
    segment,
)
from pytest_onnxparity.runtime.sessions import ModelLoadError, SessionSettings, open_session

FLOAT_DTYPES = ("float32", "float16", "float64")


# Tensors no bigger than this stay inside the instrumented protobuf; larger ones go to a sidecar.
INLINE_TENSOR_BYTES = 1024


class InstrumentableModel:
    """One model's graph, indexed for matching, and a working copy in the workdir whose outputs
    are swapped for each instrumented run."""

    def __init__(self, source: Path, instrumented_path: Path) -> None:
        if not source.is_file():
            raise ModelLoadError(f"{source}: no such model; check the path passed to localize")
        self.source = source
        linked = _linked_copy(source, instrumented_path)
        if linked is None:
            self.path, model = instrumented_path, _externalized_copy(source, instrumented_path)
        else:
            self.path, model = linked
        self.model = model
        self.graph_outputs = {value.name: value for value in model.graph.output}
        # Names, types and shapes only: the values stay in the sidecars.
        self.initializers = {tensor.name: tensor for tensor in model.graph.initializer}
        self.nodes = _topological_nodes(model.graph, source)
        self.producer = {
            name: index for index, node in enumerate(self.nodes) for name in node.output if name
        }
        self.consumers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.activations = _activations(model.graph, self.nodes)
        self.reads = [node_reads(node) for node in self.nodes]
        self._file_nodes = list(model.graph.node)
        self._file_producer = {
            name: index
            for index, node in enumerate(self._file_nodes)
            for name in node.output
            if name
        }

    def as_consumed(self, tensor: str) -> str:
        """``tensor``, or its dequantized copy where it feeds a QuantizeLinear/DequantizeLinear
        pair, as the quantized graph's consumers see it."""
        for quantize in self.consumers.get(tensor, []):
            if quantize.op_type != "QuantizeLinear":
                continue
            for dequantize in self.consumers.get(quantize.output[0], []):
                if dequantize.op_type == "DequantizeLinear":
                    return str(dequantize.output[0])
        return tensor

    def tensor_types(self, settings: SessionSettings) -> dict[str, str]:
        """Every activation onnxruntime types as a tensor, with its numpy dtype name, read from
        a session that is never run."""
        if not self.activations:
            return {}
        self._expose(self.activations)
        session = open_session(self.path, settings, arena=False).session
        types = {}
        for arg in session.get_outputs():
            dtype = _numpy_dtype(arg.type)
            if dtype is not None:
                types[arg.name] = dtype
        return types

    def segment(self, tensor: str, cuttable: Collection[str]) -> tuple[Any, ...]:
        """The nodes that compute ``tensor`` from the nearest ``cuttable`` tensors upstream."""
        found, _ = segment(self.nodes, self.producer, tensor, cuttable, self.reads)
        return tuple(self.nodes[index] for index in found)

    def frontier(self, tensor: str, cuttable: Collection[str]) -> tuple[str, ...]:
        """The nearest ``cuttable`` tensors upstream of ``tensor``."""
        return segment(self.nodes, self.producer, tensor, cuttable, self.reads)[1]

    def run(
        self,
        names: Sequence[str],
        inputs: Mapping[str, np.ndarray],
        settings: SessionSettings,
        fed: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The values of ``names`` on ``inputs``, from a fresh session of a copy of the model
        that keeps only the nodes they need and reads each tensor in ``fed`` from the given value
        instead of computing it (the replay, or a value an earlier run computed)."""
        import onnx

        if not names:
            return {}
        give_back_freed_memory()
        fed = fed or {}
        element_types = {
            name: onnx.helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)
            for name, value in fed.items()
        }
        pruned = replay_model(self.model, names, element_types, self._file_producer)
        onnx.save_model(pruned, str(self.path))
        feeds = {**inputs, **{fed_name(name): np.asarray(value) for name, value in fed.items()}}
        # The original inputs stay declared, so they are fed as in the ordinary runs.
        return open_session(self.path, settings, arena=False).run(feeds)

    def _expose(self, names: Sequence[str]) -> None:
        import onnx

        outputs = self.model.graph.output
        del outputs[:]
        for name in dict.fromkeys(names):
            # Untyped outputs are fine: onnxruntime infers their types when it resolves the graph.
            outputs.append(self.graph_outputs.get(name) or onnx.ValueInfoProto(name=name))
        onnx.save_model(self.model, str(self.path))


def _linked_copy(source: Path, instrumented_path: Path) -> tuple[Path, Any] | None:
    """The model's graph saved in a folder of its own next to ``instrumented_path`` (the
    reference's and the variant's data files may have the same names), its external data files
    hard-linked beside it under the names the graph gives them: nothing is copied or loaded (and
    nothing is ever written to them). None where the model keeps its weights inline, names a data
    file outside its folder, or links cannot be made (another file system)."""
    import onnx

    structure = onnx.load(str(source), load_external_data=False)
    locations = {
        entry.value
        for tensor in structure.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    if not locations or any(
        Path(location).is_absolute() or ".." in Path(location).parts for location in locations
    ):
        return None
    folder = instrumented_path.with_name(instrumented_path.name + ".links")
    try:
        for location in locations:
            link = folder / location
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            # A hard link: onnxruntime refuses data files that resolve outside the model's folder.
            link.hardlink_to(source.parent / location)
    except OSError:  # another file system, or no links here: copy instead
        return None
    path = folder / instrumented_path.name
    onnx.save_model(structure, str(path))
    return path, structure


def _externalized_copy(source: Path, instrumented_path: Path) -> Any:
    """The model saved at ``instrumented_path`` with its weights moved to one sidecar, read
    back without them."""
    import onnx

    sidecar = instrumented_path.name + ".data"
    # onnx appends to an existing sidecar instead of replacing it.
    (instrumented_path.parent / sidecar).unlink(missing_ok=True)
    onnx.save_model(
        onnx.load(str(source)),
        str(instrumented_path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=sidecar,
        size_threshold=INLINE_TENSOR_BYTES,
    )
    # Read back without the weights: the loaded copy keeps their memory while it lives
    # (protobuf frees a message's arena only with the message), and rewriting the outputs of a
    # graph whose weights are in the sidecar is cheap.
    return onnx.load(str(instrumented_path), load_external_data=False)


def give_back_freed_memory() -> None:
    """Hand memory freed since the last run back to the system before the next one.

    glibc's malloc keeps large freed blocks for reuse once it has seen blocks of that size
    freed (its mmap threshold rises), so the activations of one batch would stay resident
    under the next one's; ``malloc_trim`` releases them. Elsewhere this does nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)  # musl has none


def _topological_nodes(graph: Any, source: Path) -> list[Any]:
    """The top-level nodes in topological order, keeping file order wherever it is free."""
    nodes = list(graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    waiting = [
        {producer[name] for name in node.input if name in producer} - {index}
        for index, node in enumerate(nodes)
    ]
    unblocks: dict[int, list[int]] = {}
    for index, dependencies in enumerate(waiting):
        for dependency in dependencies:
            unblocks.setdefault(dependency, []).append(index)
    ready = [index for index, dependencies in enumerate(waiting) if not dependencies]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for follower in unblocks.get(index, []):
            waiting[follower].discard(index)
            if not waiting[follower]:
                heapq.heappush(ready, follower)
    if len(order) != len(nodes):
        raise ModelLoadError(
            f"{source}: the graph has a cycle, so it has no topological order; "
            "re-export it or check it with onnx.checker.check_model"
        )
    return [nodes[index] for index in order]


def _activations(graph: Any, nodes: Sequence[Any]) -> tuple[str, ...]:
    """Node outputs computed from a graph input, in topological order; constants and weights
    (a QDQ graph's dequantized weights) are left out."""
    initializers = {tensor.name for tensor in graph.initializer}
    dynamic = {value.name for value in graph.input if value.name not in initializers}
    activations = []
    for node in nodes:
        if any(name in dynamic for name in node.input):
            for name in node.output:
                if name:
                    dynamic.add(name)
                    activations.append(name)
    return tuple(activations)


def _numpy_dtype(ort_type: str) -> str | None:
    """``tensor(float16)`` -> ``float16``; None for what numpy cannot hold (sequences, maps,
    bfloat16, 4-bit types)."""
    if not ort_type.startswith("tensor(") or not ort_type.endswith(")"):
        return None
    name = ort_type[len("tensor(") : -1]
    name = {"double": "float64", "float": "float32", "string": "object"}.get(name, name)
    try:
        return np.dtype(name).name if name != "object" else None
    except TypeError:
        return None
