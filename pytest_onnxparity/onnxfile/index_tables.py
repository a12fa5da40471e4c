"""Which graph inputs index a table, and how many rows it has: token ids into an embedding.

Input synthesis must draw token ids inside the vocabulary, token types inside their (often 2-row)
table: an id past the table's end crashes the reference (``Gather idx=2 must be within
[-2,1]``). The bound is read from the graph itself: a ``Gather`` whose ``indices`` are the input
(directly or through Cast/Reshape/Unsqueeze…) and whose ``data`` is an initializer (directly or
through DequantizeLinear/Cast/Identity) has ``dims[axis]`` rows.

Read with :mod:`pytest_onnxparity.onnxfile.wire`'s field walk over a memory map: the main
graph's nodes and the initializers' names and dims, never their data (no onnx import).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_onnxparity.onnxfile.protoscan import MODEL_GRAPH

# One wire-format reader for the package.
from pytest_onnxparity.onnxfile.wire import (
    GRAPH_INITIALIZER,
    GRAPH_NODE,
    LENGTH_DELIMITED,
    TENSOR_NAME,
    VARINT,
    read_mapped,
    read_node,
)
from pytest_onnxparity.onnxfile.wire import fields as _fields
from pytest_onnxparity.onnxfile.wire import text as _text
from pytest_onnxparity.onnxfile.wire import varint as _varint

ATTRIBUTE_NAME, ATTRIBUTE_INT = 1, 3
TENSOR_DIMS = 1
# Ops an index passes through unchanged in meaning (on their first input).
INDEX_PASS_THROUGH = frozenset(
    {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand"}
)
# Ops between a table's initializer and the Gather that reads it.
TABLE_PASS_THROUGH = frozenset({"DequantizeLinear", "Cast", "Identity"})


@dataclass(frozen=True)
class _Node:
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    axis: int = 0


@dataclass
class _Graph:
    nodes: list[_Node] = field(default_factory=list)
    initializer_dims: dict[str, tuple[int, ...]] = field(default_factory=dict)


def index_table_sizes(path: Path, inputs: tuple[str, ...]) -> dict[str, int]:
    """``{input: rows}`` for each of ``inputs`` that indexes a table (the smallest table where
    it indexes several). Inputs that index nothing known are left out."""
    graph = read_mapped(path, _read_graph)
    return table_sizes(graph.nodes, graph.initializer_dims, inputs)


def table_sizes(
    nodes: list[_Node], initializer_dims: Mapping[str, tuple[int, ...]], inputs: tuple[str, ...]
) -> dict[str, int]:
    consumers: dict[str, list[tuple[_Node, int]]] = {}
    producers: dict[str, _Node] = {}
    for node in nodes:
        for slot, name in enumerate(node.inputs):
            consumers.setdefault(name, []).append((node, slot))
        for name in node.outputs:
            producers[name] = node
    sizes: dict[str, int] = {}
    for name in inputs:
        pending, seen = [name], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for node, slot in consumers.get(current, ()):
                if node.op_type in INDEX_PASS_THROUGH and slot == 0:
                    pending.extend(node.outputs)
                elif node.op_type == "Gather" and slot == 1 and node.inputs:
                    rows = _table_rows(node.inputs[0], node.axis, producers, initializer_dims)
                    if rows is not None:
                        sizes[name] = min(rows, sizes.get(name, rows))
    return sizes


def _table_rows(
    table: str,
    axis: int,
    producers: Mapping[str, _Node],
    initializer_dims: Mapping[str, tuple[int, ...]],
) -> int | None:
    for _ in range(8):  # a short chain of dequantize/cast ops at most
        if table in initializer_dims:
            dims = initializer_dims[table]
            if not -len(dims) <= axis < len(dims) or dims[axis] <= 0:
                return None
            return dims[axis]
        producer = producers.get(table)
        if producer is None or producer.op_type not in TABLE_PASS_THROUGH or not producer.inputs:
            return None
        table = producer.inputs[0]
    return None


def _read_graph(buffer: memoryview) -> _Graph:
    graph = _Graph()
    for number, wire, start, end in _fields(buffer, 0, len(buffer)):
        if number != MODEL_GRAPH or wire != LENGTH_DELIMITED:
            continue
        for field_number, field_wire, field_start, field_end in _fields(buffer, start, end):
            if field_wire != LENGTH_DELIMITED:
                continue
            if field_number == GRAPH_NODE:
                graph.nodes.append(_node(buffer, field_start, field_end))
            elif field_number == GRAPH_INITIALIZER:
                name, dims = _tensor_name_and_dims(buffer, field_start, field_end)
                graph.initializer_dims[name] = dims
    return graph


def _node(buffer: memoryview, start: int, end: int) -> _Node:
    node = read_node(buffer, start, end)
    axis = 0
    for attribute_start, attribute_end in node.attributes:
        name, value = _int_attribute(buffer, attribute_start, attribute_end)
        if name == "axis" and value is not None:
            axis = value
    return _Node(node.op_type, node.inputs, node.outputs, axis)


def _int_attribute(buffer: memoryview, start: int, end: int) -> tuple[str, int | None]:
    name, value = "", None
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == ATTRIBUTE_NAME and wire == LENGTH_DELIMITED:
            name = _text(buffer, field_start, field_end)
        elif number == ATTRIBUTE_INT and wire == VARINT:
            value = _signed(field_start)
    return name, value


def _tensor_name_and_dims(buffer: memoryview, start: int, end: int) -> tuple[str, tuple[int, ...]]:
    name = ""
    dims: list[int] = []
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == TENSOR_NAME and wire == LENGTH_DELIMITED:
            name = _text(buffer, field_start, field_end)
        elif number == TENSOR_DIMS and wire == VARINT:
            dims.append(_signed(field_start))
        elif number == TENSOR_DIMS and wire == LENGTH_DELIMITED:
            dims.extend(_signed(value) for value in _packed(buffer, field_start, field_end))
    return name, tuple(dims)


def _packed(buffer: memoryview, start: int, end: int) -> Iterator[int]:
    position = start
    while position < end:
        value, position = _varint(buffer, position, end)
        yield value


def _signed(value: int) -> int:
    """An int64 sent as a varint: negative values come as their 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value
