"""The protobuf wire format, as far as ONNX files use it: fields, varints, strings, node names.

Shared by the scans of :mod:`pytest_onnxparity.onnxfile.protoscan`,
:mod:`pytest_onnxparity.onnxfile.wiring` and :mod:`pytest_onnxparity.onnxfile.index_tables`; it
reads a buffer (a memory map) and never copies more than a string field. Field numbers are those
of onnx.proto (stable since IR version 3).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Wire types.
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5

GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_SPARSE_INITIALIZER = 1, 5, 15
GRAPH_INPUT, GRAPH_OUTPUT = 11, 12
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 2, 3, 4, 5
VALUE_INFO_NAME = 1
SPARSE_VALUES = 1
TENSOR_NAME = 8


class ProtoScanError(ValueError):
    """The bytes are not a well-formed protobuf message (corrupt, or cut inside a field)."""


def read_mapped(path: Path, read: Callable[[memoryview], T]) -> T:
    """``read(buffer)`` over a read-only memory map of ``path``; the view is released before the
    map closes, as ``mmap`` requires."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)
        try:
            return read(view)
        finally:
            view.release()


def text(buffer: memoryview, start: int, end: int) -> str:
    return bytes(buffer[start:end]).decode("utf-8", errors="replace")


def tensor_name(buffer: memoryview, start: int, end: int) -> str:
    """The ``name`` of the TensorProto at ``buffer[start:end]``."""
    for number, wire, field_start, field_end in fields(buffer, start, end):
        if number == TENSOR_NAME and wire == LENGTH_DELIMITED:
            return text(buffer, field_start, field_end)
    return ""


@dataclass(frozen=True)
class WireNode:
    """A NodeProto's names as its fields hold them (empty names kept), and where each of its
    attributes lies in the buffer."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str
    op_type: str
    attributes: tuple[tuple[int, int], ...]


def read_node(buffer: memoryview, start: int, end: int) -> WireNode:
    """The NodeProto at ``buffer[start:end]``; its attributes are located, not read."""
    inputs: list[str] = []
    outputs: list[str] = []
    attributes: list[tuple[int, int]] = []
    name = op_type = ""
    for number, wire, field_start, field_end in fields(buffer, start, end):
        if wire != LENGTH_DELIMITED:
            continue
        if number == NODE_INPUT:
            inputs.append(text(buffer, field_start, field_end))
        elif number == NODE_OUTPUT:
            outputs.append(text(buffer, field_start, field_end))
        elif number == NODE_NAME:
            name = text(buffer, field_start, field_end)
        elif number == NODE_OP_TYPE:
            op_type = text(buffer, field_start, field_end)
        elif number == NODE_ATTRIBUTE:
            attributes.append((field_start, field_end))
    return WireNode(tuple(inputs), tuple(outputs), name, op_type, tuple(attributes))


def fields(buffer: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field number, wire type, a, b)`` for each field in ``buffer[start:end]``.

    For length-delimited fields ``a:b`` is the payload's span; for varints ``a`` is the value.
    """
    position = start
    while position < end:
        tag, position = varint(buffer, position, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProtoScanError("field number 0")
        if wire == VARINT:
            value, position = varint(buffer, position, end)
            yield number, wire, value, position
        elif wire == LENGTH_DELIMITED:
            length, position = varint(buffer, position, end)
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


def varint(buffer: memoryview, position: int, end: int) -> tuple[int, int]:
    """The varint at ``buffer[position]`` and the position after it."""
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
