"""Read what discovery needs from an ONNX file without importing onnx or parsing its weights.

Discovery must know, for every file of a folder, whether it is a model at all and which
external-data files it names. ``onnx.load`` answers that by parsing every message (and copying
every inline weight); onnxruntime then reads the file again to build its session. This module
walks the protobuf wire format over a memory map instead, descending only into the messages that
can hold tensors and stepping over everything else, so weight bytes are never touched.

:func:`scan_format` reads the same way what a model card states about a file: IR version,
opset imports, producer (the exporter) and the operator domains its nodes use.

Field numbers are those of onnx.proto (stable since IR version 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_onnxparity.onnxfile.wire import (
    GRAPH_INITIALIZER,
    GRAPH_INPUT,
    GRAPH_NODE,
    GRAPH_OUTPUT,
    GRAPH_SPARSE_INITIALIZER,
    LENGTH_DELIMITED,
    NODE_ATTRIBUTE,
    NODE_OP_TYPE,
    SPARSE_VALUES,
    VALUE_INFO_NAME,
    VARINT,
    read_mapped,
)
from pytest_onnxparity.onnxfile.wire import ProtoScanError as ProtoScanError
from pytest_onnxparity.onnxfile.wire import fields as _fields
from pytest_onnxparity.onnxfile.wire import tensor_name as _tensor_name
from pytest_onnxparity.onnxfile.wire import text as _text
from pytest_onnxparity.onnxfile.wiring import wiring_problem

MODEL_IR_VERSION, MODEL_PRODUCER_NAME, MODEL_PRODUCER_VERSION = 1, 2, 3
MODEL_GRAPH, MODEL_OPSET_IMPORT, MODEL_FUNCTIONS = 7, 8, 25
OPSET_DOMAIN, OPSET_VERSION = 1, 2
NODE_DOMAIN = 7
VALUE_INFO_TYPE = 2
TYPE_TENSOR = 1
TENSOR_TYPE_ELEM_TYPE, TENSOR_TYPE_SHAPE = 1, 2
SHAPE_DIM = 1
DIM_VALUE, DIM_PARAM = 1, 2
FUNCTION_NODE = 7
ATTRIBUTE_TENSOR, ATTRIBUTE_GRAPH, ATTRIBUTE_TENSORS, ATTRIBUTE_GRAPHS = 5, 6, 10, 11
ATTRIBUTE_SPARSE_TENSOR, ATTRIBUTE_SPARSE_TENSORS = 22, 23
SPARSE_INDICES = 2
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 13, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
DATA_LOCATION_EXTERNAL = 1


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


@dataclass(frozen=True)
class ModelFormat:
    """What a model card states about one file: ``opset_imports`` maps each domain (``""`` is
    ai.onnx) to its version; ``ops_by_domain`` counts every node's op type per domain,
    subgraphs and local functions included."""

    ir_version: int | None
    producer_name: str
    producer_version: str
    opset_imports: tuple[tuple[str, int], ...]
    ops_by_domain: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]

    def to_json(self) -> dict[str, object]:
        imports = {domain or "ai.onnx": version for domain, version in self.opset_imports}
        return {
            "ir_version": self.ir_version,
            "opset": imports.get("ai.onnx"),
            "opset_imports": imports,
            "producer": " ".join(p for p in (self.producer_name, self.producer_version) if p),
            "ops_by_domain": {domain or "ai.onnx": dict(ops) for domain, ops in self.ops_by_domain},
        }


def scan_format(path: Path) -> ModelFormat:
    """IR version, producer, opset imports and op types per domain of ``path``, weights unread.

    Raises ProtoScanError when the file is not a protobuf message."""
    return read_mapped(path, _format)


def _format(buffer: memoryview) -> ModelFormat:
    ir_version: int | None = None
    producer = {MODEL_PRODUCER_NAME: "", MODEL_PRODUCER_VERSION: ""}
    imports: list[tuple[str, int]] = []
    ops: dict[str, dict[str, int]] = {}
    for number, wire, start, end in _fields(buffer, 0, len(buffer)):
        if number == MODEL_IR_VERSION and wire == VARINT:
            ir_version = start
        elif wire != LENGTH_DELIMITED:
            continue
        elif number in producer:
            producer[number] = _text(buffer, start, end)
        elif number == MODEL_OPSET_IMPORT:
            domain, version = "", 0
            for field, field_wire, field_start, field_end in _fields(buffer, start, end):
                if field == OPSET_DOMAIN and field_wire == LENGTH_DELIMITED:
                    domain = _text(buffer, field_start, field_end)
                elif field == OPSET_VERSION and field_wire == VARINT:
                    version = field_start
            imports.append(("" if domain == "ai.onnx" else domain, version))
        elif number == MODEL_GRAPH:
            _count_ops(buffer, start, end, GRAPH_NODE, ops)
        elif number == MODEL_FUNCTIONS:
            _count_ops(buffer, start, end, FUNCTION_NODE, ops)
    return ModelFormat(
        ir_version=ir_version,
        producer_name=producer[MODEL_PRODUCER_NAME],
        producer_version=producer[MODEL_PRODUCER_VERSION],
        opset_imports=tuple(sorted(imports)),
        ops_by_domain=tuple(
            (domain, tuple(sorted(counts.items()))) for domain, counts in sorted(ops.items())
        ),
    )


def _count_ops(
    buffer: memoryview, start: int, end: int, node_field: int, ops: dict[str, dict[str, int]]
) -> None:
    """Count the op types of a graph's (or function's) nodes by domain, into ``ops``."""
    for number, wire, node_start, node_end in _fields(buffer, start, end):
        if number != node_field or wire != LENGTH_DELIMITED:
            continue
        op_type = domain = ""
        for field, field_wire, field_start, field_end in _fields(buffer, node_start, node_end):
            if field_wire != LENGTH_DELIMITED:
                continue
            if field == NODE_OP_TYPE:
                op_type = _text(buffer, field_start, field_end)
            elif field == NODE_DOMAIN:
                domain = _text(buffer, field_start, field_end)
            elif field == NODE_ATTRIBUTE:
                for kind, kind_wire, kind_start, kind_end in _fields(
                    buffer, field_start, field_end
                ):
                    if (
                        kind in (ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS)
                        and kind_wire == LENGTH_DELIMITED
                    ):
                        _count_ops(buffer, kind_start, kind_end, GRAPH_NODE, ops)
        domain = "" if domain == "ai.onnx" else domain
        per_domain = ops.setdefault(domain, {})
        per_domain[op_type] = per_domain.get(op_type, 0) + 1


def scan_signature(path: Path) -> tuple[tuple[ValueInfo, ...], tuple[ValueInfo, ...]]:
    """The main graph's inputs (initializers left out) and outputs, without reading weights."""
    return read_mapped(path, _signature)


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


def scan_model(path: Path) -> ModelScan:
    """Scan ``path`` (a non-empty file); raises ProtoScanError when it is not a protobuf."""
    return read_mapped(path, _scan)


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
    wiring = wiring_problem(buffer, graph_spans) if graph_spans else None
    return ModelScan(bool(graph_spans), has_opset, tuple(locations), wiring)


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
