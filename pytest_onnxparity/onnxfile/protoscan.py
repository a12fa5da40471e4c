"""Read what discovery needs from an ONNX file without importing onnx or parsing its weights.

Discovery must know, for every file of a folder, whether it is a model at all and which
external-data files it names. ``onnx.load`` answers that by parsing every message (and copying
every inline weight); onnxruntime then reads the file again to build its session. This module
walks the protobuf wire format over a memory map instead, descending only into the messages that
can hold tensors and stepping over everything else, so weight bytes are never touched.

Field numbers are those of onnx.proto (stable since IR version 3).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Wire types.
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5

MODEL_GRAPH, MODEL_OPSET_IMPORT, MODEL_FUNCTIONS = 7, 8, 25
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_SPARSE_INITIALIZER = 1, 5, 15
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE = 1, 2, 3, 4
GRAPH_INPUT, GRAPH_OUTPUT = 11, 12
VALUE_INFO_NAME, VALUE_INFO_TYPE = 1, 2
TYPE_TENSOR = 1
TENSOR_TYPE_ELEM_TYPE, TENSOR_TYPE_SHAPE = 1, 2
SHAPE_DIM = 1
DIM_VALUE, DIM_PARAM = 1, 2
TENSOR_NAME = 8
NODE_ATTRIBUTE = 5
FUNCTION_NODE = 7
ATTRIBUTE_TENSOR, ATTRIBUTE_GRAPH, ATTRIBUTE_TENSORS, ATTRIBUTE_GRAPHS = 5, 6, 10, 11
ATTRIBUTE_SPARSE_TENSOR, ATTRIBUTE_SPARSE_TENSORS = 22, 23
SPARSE_VALUES, SPARSE_INDICES = 1, 2
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 13, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
DATA_LOCATION_EXTERNAL = 1


class ProtoScanError(ValueError):
    """The bytes are not a well-formed protobuf message (corrupt, or cut inside a field)."""


@dataclass(frozen=True)
class ModelScan:
    """What one pass over a model file found."""

    has_graph: bool
    has_opset_import: bool
    external_data_locations: tuple[str, ...]
    wiring_problem: str | None = None
    """How the main graph's nodes are miswired (a node reading a value no earlier node, input or
    initializer makes), or None. onnxruntime may crash rather than refuse such a file."""


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output as the file declares it: ``elem_type`` is ONNX's enum value;
    ``shape`` is None when undeclared, a dim is an int, a symbol, or None when unnamed."""

    name: str
    elem_type: int
    shape: tuple[int | str | None, ...] | None


def scan_signature(path: Path) -> tuple[tuple[ValueInfo, ...], tuple[ValueInfo, ...]]:
    """The main graph's inputs (initializers left out) and outputs, without reading weights."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)
        try:
            return _signature(view)
        finally:
            view.release()


def _signature(buffer: memoryview) -> tuple[tuple[ValueInfo, ...], tuple[ValueInfo, ...]]:
    inputs: list[ValueInfo] = []
    outputs: list[ValueInfo] = []
    initializers: set[str] = set()
    for number, wire, start, end in _fields(buffer, 0, len(buffer)):
        if number != MODEL_GRAPH or wire != LENGTH_DELIMITED:
            continue
        for field, field_wire, field_start, field_end in _fields(buffer, start, end):
            if field_wire != LENGTH_DELIMITED:
                continue
            if field == GRAPH_INPUT:
                inputs.append(_value_info(buffer, field_start, field_end))
            elif field == GRAPH_OUTPUT:
                outputs.append(_value_info(buffer, field_start, field_end))
            elif field == GRAPH_INITIALIZER:
                initializers.add(_tensor_name(buffer, field_start, field_end))
    return tuple(i for i in inputs if i.name not in initializers), tuple(outputs)


def _value_info(buffer: memoryview, start: int, end: int) -> ValueInfo:
    name, elem_type, shape = "", 0, None
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if wire != LENGTH_DELIMITED:
            continue
        if number == VALUE_INFO_NAME:
            name = _text(buffer, field_start, field_end)
        elif number == VALUE_INFO_TYPE:
            for kind, kind_wire, kind_start, kind_end in _fields(buffer, field_start, field_end):
                if kind == TYPE_TENSOR and kind_wire == LENGTH_DELIMITED:
                    elem_type, shape = _tensor_type(buffer, kind_start, kind_end)
    return ValueInfo(name, elem_type, shape)


def _tensor_type(
    buffer: memoryview, start: int, end: int
) -> tuple[int, tuple[int | str | None, ...] | None]:
    elem_type, shape = 0, None
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == TENSOR_TYPE_ELEM_TYPE and wire == VARINT:
            elem_type = field_start
        elif number == TENSOR_TYPE_SHAPE and wire == LENGTH_DELIMITED:
            shape = tuple(
                _dim(buffer, dim_start, dim_end)
                for dim, dim_wire, dim_start, dim_end in _fields(buffer, field_start, field_end)
                if dim == SHAPE_DIM and dim_wire == LENGTH_DELIMITED
            )
    return elem_type, shape


def _dim(buffer: memoryview, start: int, end: int) -> int | str | None:
    for number, wire, value_or_start, field_end in _fields(buffer, start, end):
        if number == DIM_VALUE and wire == VARINT:
            # int64 in a varint: negative values come as their 64-bit two's complement.
            return value_or_start - (1 << 64) if value_or_start >= 1 << 63 else value_or_start
        if number == DIM_PARAM and wire == LENGTH_DELIMITED:
            return _text(buffer, value_or_start, field_end)
    return None


def _tensor_name(buffer: memoryview, start: int, end: int) -> str:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == TENSOR_NAME and wire == LENGTH_DELIMITED:
            return _text(buffer, field_start, field_end)
    return ""


def _text(buffer: memoryview, start: int, end: int) -> str:
    return bytes(buffer[start:end]).decode("utf-8", errors="replace")


def scan_model(path: Path) -> ModelScan:
    """Scan ``path`` (a non-empty file); raises ProtoScanError when it is not a protobuf."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)
        try:
            return _scan(view)
        finally:
            view.release()


def _scan(buffer: memoryview) -> ModelScan:
    has_opset = False
    locations: list[str] = []
    graph_spans: list[tuple[int, int]] = []
    for number, wire, start, end in _fields(buffer, 0, len(buffer)):
        if wire != LENGTH_DELIMITED:
            continue
        if number == MODEL_GRAPH:
            graph_spans.append((start, end))
            locations.extend(_graph_locations(buffer, start, end))
        elif number == MODEL_OPSET_IMPORT:
            has_opset = True
        elif number == MODEL_FUNCTIONS:
            locations.extend(_function_locations(buffer, start, end))
    wiring = _wiring_problem(buffer, graph_spans) if graph_spans else None
    return ModelScan(bool(graph_spans), has_opset, tuple(locations), wiring)


def _wiring_problem(buffer: memoryview, graph_spans: list[tuple[int, int]]) -> str | None:
    """The first node input no earlier node, graph input or initializer makes, or a graph output
    nothing makes. Several graph fields are merged, as protobuf parsers do. Subgraphs may read
    outer values, so only the main graph's own node list is checked."""
    available: set[str] = {""}  # an empty name is an omitted optional input
    nodes: list[tuple[int, int]] = []
    outputs: list[str] = []
    for start, end in graph_spans:
        for number, wire, field_start, field_end in _fields(buffer, start, end):
            if wire != LENGTH_DELIMITED:
                continue
            if number == GRAPH_NODE:
                nodes.append((field_start, field_end))
            elif number == GRAPH_INPUT:
                available.add(_value_info_name(buffer, field_start, field_end))
            elif number == GRAPH_OUTPUT:
                outputs.append(_value_info_name(buffer, field_start, field_end))
            elif number == GRAPH_INITIALIZER:
                available.add(_tensor_name(buffer, field_start, field_end))
            elif number == GRAPH_SPARSE_INITIALIZER:
                available.update(_sparse_names(buffer, field_start, field_end))
    wiring = [_node_wiring(buffer, start, end) for start, end in nodes]
    made_later = {name: label for label, _, made in wiring for name in made}
    for index, (label, reads, made) in enumerate(wiring):
        for name in reads:
            if name not in available:
                return _miswired(label, name, made_later.get(name), index)
        available.update(made)
    missing = [name for name in outputs if name not in available]
    if missing:
        return f"graph output {missing[0]!r} is made by no node, input or initializer"
    return None


def _miswired(label: str, name: str, producer: str | None, index: int) -> str:
    if producer is None:
        return f"node {index} ({label}) reads {name!r}, which no node, input or initializer makes"
    return (
        f"node {index} ({label}) reads {name!r} before {producer} makes it: the nodes are not "
        "in topological order"
    )


def _node_wiring(buffer: memoryview, start: int, end: int) -> tuple[str, list[str], list[str]]:
    reads: list[str] = []
    made: list[str] = []
    name = op_type = ""
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if wire != LENGTH_DELIMITED:
            continue
        if number == NODE_INPUT:
            reads.append(_text(buffer, field_start, field_end))
        elif number == NODE_OUTPUT:
            made.append(_text(buffer, field_start, field_end))
        elif number == NODE_NAME:
            name = _text(buffer, field_start, field_end)
        elif number == NODE_OP_TYPE:
            op_type = _text(buffer, field_start, field_end)
    label = f"{op_type} {name!r}" if name else op_type or "an unnamed node"
    return label, reads, [output for output in made if output]


def _value_info_name(buffer: memoryview, start: int, end: int) -> str:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == VALUE_INFO_NAME and wire == LENGTH_DELIMITED:
            return _text(buffer, field_start, field_end)
    return ""


def _sparse_names(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == SPARSE_VALUES and wire == LENGTH_DELIMITED:
            yield _tensor_name(buffer, field_start, field_end)


def _graph_locations(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if wire != LENGTH_DELIMITED:
            continue
        if number == GRAPH_INITIALIZER:
            yield from _tensor_locations(buffer, field_start, field_end)
        elif number == GRAPH_SPARSE_INITIALIZER:
            yield from _sparse_locations(buffer, field_start, field_end)
        elif number == GRAPH_NODE:
            yield from _node_locations(buffer, field_start, field_end)


def _function_locations(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == FUNCTION_NODE and wire == LENGTH_DELIMITED:
            yield from _node_locations(buffer, field_start, field_end)


def _node_locations(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == NODE_ATTRIBUTE and wire == LENGTH_DELIMITED:
            yield from _attribute_locations(buffer, field_start, field_end)


def _attribute_locations(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if wire != LENGTH_DELIMITED:
            continue
        if number in (ATTRIBUTE_TENSOR, ATTRIBUTE_TENSORS):
            yield from _tensor_locations(buffer, field_start, field_end)
        elif number in (ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS):
            yield from _graph_locations(buffer, field_start, field_end)
        elif number in (ATTRIBUTE_SPARSE_TENSOR, ATTRIBUTE_SPARSE_TENSORS):
            yield from _sparse_locations(buffer, field_start, field_end)


def _sparse_locations(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number in (SPARSE_VALUES, SPARSE_INDICES) and wire == LENGTH_DELIMITED:
            yield from _tensor_locations(buffer, field_start, field_end)


def _tensor_locations(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    """The ``location`` entries of a TensorProto whose data_location is EXTERNAL."""
    external = False
    locations: list[str] = []
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if number == TENSOR_DATA_LOCATION and wire == VARINT:
            external = field_start == DATA_LOCATION_EXTERNAL
        elif number == TENSOR_EXTERNAL_DATA and wire == LENGTH_DELIMITED:
            entry = _string_entry(buffer, field_start, field_end)
            if entry[0] == "location":
                locations.append(entry[1])
    if external:
        yield from locations


def _string_entry(buffer: memoryview, start: int, end: int) -> tuple[str, str]:
    key = value = ""
    for number, wire, field_start, field_end in _fields(buffer, start, end):
        if wire != LENGTH_DELIMITED:
            continue
        text = _text(buffer, field_start, field_end)
        if number == ENTRY_KEY:
            key = text
        elif number == ENTRY_VALUE:
            value = text
    return key, value


def _fields(buffer: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field number, wire type, a, b)`` for each field in ``buffer[start:end]``.

    For length-delimited fields ``a:b`` is the payload's span; for varints ``a`` is the value.
    """
    position = start
    while position < end:
        tag, position = _varint(buffer, position, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProtoScanError("field number 0")
        if wire == VARINT:
            value, position = _varint(buffer, position, end)
            yield number, wire, value, position
        elif wire == LENGTH_DELIMITED:
            length, position = _varint(buffer, position, end)
            payload_end = position + length
            if payload_end > end:
                raise ProtoScanError("a field runs past the end of its message")
            yield number, wire, position, payload_end
            position = payload_end
        elif wire in (FIXED64, FIXED32):
            position += 8 if wire == FIXED64 else 4
            if position > end:
                raise ProtoScanError("a field runs past the end of its message")
        else:
            raise ProtoScanError(f"wire type {wire} is not used by ONNX")


def _varint(buffer: memoryview, position: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= end or shift > 63:
            raise ProtoScanError("a varint runs past the end of its message")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
