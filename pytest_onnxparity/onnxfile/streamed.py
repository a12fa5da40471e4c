"""A model's structure with its inline weights left in the file, each read by offset when asked.

``onnx.load(path, load_external_data=False)`` still parses every inline tensor: it reads the
whole file into memory and copies each weight into the message, so a check that then reads the
weights one by one holds the model twice at its peak. :func:`load_streamed` walks the protobuf
wire format instead, reading the file a field at a time (a node whole), and re-encodes only the
messages on the way to a tensor (the graph, its nodes and their attributes, subgraphs included),
leaving out each large
``raw_data`` payload and noting where it lies in the file. The model it returns is the file's
structure; :func:`read_deferred` reads one such tensor from the file, once, when its values are
needed. Peak memory then follows the largest weight, not the model. Tensors already in
external-data files are left as they are (they are read by offset from their sidecar).

Field numbers are those of onnx.proto (stable since IR version 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.onnxfile.protoscan import (
    ATTRIBUTE_GRAPH,
    ATTRIBUTE_GRAPHS,
    ATTRIBUTE_TENSOR,
    ATTRIBUTE_TENSORS,
    DATA_LOCATION_EXTERNAL,
    ENTRY_KEY,
    ENTRY_VALUE,
    MODEL_GRAPH,
    NODE_ATTRIBUTE,
    TENSOR_DATA_LOCATION,
    TENSOR_EXTERNAL_DATA,
)
from pytest_onnxparity.onnxfile.wire import (
    FIXED32,
    FIXED64,
    GRAPH_INITIALIZER,
    GRAPH_NODE,
    LENGTH_DELIMITED,
    VARINT,
    ProtoScanError,
    varint,
)

TENSOR_DATA_TYPE, TENSOR_RAW_DATA = 2, 9
# Payloads below this stay in the structure: scales, zero points, shapes (one read each would
# cost more than it saves).
DEFERRED_MIN_BYTES = 4096
# The external-data key that marks a tensor whose bytes are still inline in the model file.
DEFERRED_KEY = "onnxparity_inline"

# ONNX element types whose raw bytes are a little-endian numpy array as they stand; the others
# (bfloat16, float8, packed 4- and 2-bit, strings) are decoded by onnx.
_DIRECT_TYPES = {
    1: "<f4",  # FLOAT
    2: "u1",  # UINT8
    3: "i1",  # INT8
    4: "<u2",  # UINT16
    5: "<i2",  # INT16
    6: "<i4",  # INT32
    7: "<i8",  # INT64
    9: "?",  # BOOL
    10: "<f2",  # FLOAT16
    11: "<f8",  # DOUBLE
    12: "<u4",  # UINT32
    13: "<u8",  # UINT64
}


def load_streamed(path: Path) -> Any:
    """The ``onnx.ModelProto`` at ``path`` with every inline ``raw_data`` of at least
    :data:`DEFERRED_MIN_BYTES` left in the file (names, dims, types and nodes kept): pass its
    tensors to :func:`read_deferred`. Raises ProtoScanError, naming the file, when it is not a
    protobuf message."""
    import onnx

    with path.open("rb") as handle:
        source = _Source(handle=handle)
        try:
            structure = _message(source, 0, path.stat().st_size, _model_field, path.name)
        except ProtoScanError as error:
            raise ProtoScanError(
                f"{path}: not a readable ONNX protobuf ({error}); re-export it"
            ) from None
    model = onnx.ModelProto()
    model.ParseFromString(structure)
    return model


def is_deferred(tensor: Any) -> bool:
    """Whether ``tensor`` came from :func:`load_streamed` with its bytes left in the file."""
    return any(entry.key == DEFERRED_KEY for entry in tensor.external_data)


def read_deferred(tensor: Any, base_dir: Path) -> np.ndarray:
    """The values of a deferred tensor, read from its model file in ``base_dir`` by offset."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    offset, length = int(entries["offset"]), int(entries["length"])
    path = base_dir / entries["location"]
    direct = _DIRECT_TYPES.get(tensor.data_type)
    if direct is not None and length % np.dtype(direct).itemsize == 0:
        values = np.empty(length // np.dtype(direct).itemsize, dtype=direct)
        read_span(path, offset, values.data.cast("B"))
        return values.astype(values.dtype.newbyteorder("="), copy=False).reshape(tuple(tensor.dims))
    from onnx import TensorProto, numpy_helper

    buffer = bytearray(length)
    read_span(path, offset, memoryview(buffer))
    inline = TensorProto()
    inline.CopyFrom(tensor)
    del inline.external_data[:]
    inline.data_location = TensorProto.DEFAULT
    inline.raw_data = bytes(buffer)
    del buffer
    return numpy_helper.to_array(inline)


def read_span(path: Path, offset: int, target: memoryview) -> None:
    """Fill ``target`` from ``path`` at ``offset``: the one place deferred bytes are read."""
    with path.open("rb") as handle:
        handle.seek(offset)
        if handle.readinto(target) != len(target):
            raise OSError(f"{path}: ends inside a tensor at offset {offset}")


class _Source:
    """The model file's bytes by position: read from the file (``handle``) a field at a time, or
    held in memory (``data``, starting at file position ``base``) for a node and what it holds.

    Reading instead of memory-mapping keeps the scan's footprint to what it reads: touching a
    tensor's header through a map also maps the page-cache folio around it (up to megabytes),
    which on a 336 MB model added 100 MB to the process' peak resident memory."""

    def __init__(self, handle: Any = None, data: bytes = b"", base: int = 0) -> None:
        self.handle, self.data, self.base = handle, memoryview(data), base

    def read(self, start: int, end: int) -> bytes:
        if self.handle is None:
            return bytes(self.data[start - self.base : end - self.base])
        self.handle.seek(start)
        data: bytes = self.handle.read(end - start)
        if len(data) != end - start:
            raise ProtoScanError("a field runs past the end of the file")
        return data

    def held(self, start: int, end: int) -> _Source:
        """``[start, end)`` in memory (one node: its attributes' tensors are what it holds)."""
        return self if self.handle is None else _Source(data=self.read(start, end), base=start)

    def spans(self, start: int, end: int) -> Iterator[tuple[int, int, int | None, int]]:
        """``(field number, field start, payload start, field end)`` for each field in
        ``[start, end)``; the payload start is None unless the field is length-delimited."""
        position = start
        while position < end:
            head = memoryview(self.read(position, min(position + _LONGEST_HEAD, end)))
            tag, offset = varint(head, 0, len(head))
            wire, payload_start = tag & 7, None
            if wire == VARINT:
                offset = varint(head, offset, len(head))[1]
            elif wire == LENGTH_DELIMITED:
                length, offset = varint(head, offset, len(head))
                payload_start = position + offset
                offset += length
            elif wire in (FIXED64, FIXED32):
                offset += 8 if wire == FIXED64 else 4
            else:
                raise ProtoScanError(f"wire type {wire} is not used by ONNX")
            field_start, position = position, position + offset
            if position > end:
                raise ProtoScanError("a field runs past the end of its message")
            yield tag >> 3, field_start, payload_start, position


_LONGEST_HEAD = 20  # a field's tag and length: two varints of at most 10 bytes


# Each function below re-encodes one kind of message from the fields of ``source[start:end]``:
# it returns the replacement bytes of a field, or None to copy the field as it stands.


def _message(source: _Source, start: int, end: int, field_of: Any, location: str) -> bytes:
    pieces: list[bytes] = []
    copy_from = start
    for number, field_start, payload_start, field_end in source.spans(start, end):
        if payload_start is None:
            continue
        replacement = field_of(source, number, payload_start, field_end, location)
        if replacement is not None:
            pieces.append(source.read(copy_from, field_start))
            pieces.append(replacement)
            copy_from = field_end
    pieces.append(source.read(copy_from, end))
    return b"".join(pieces)


def _model_field(source: _Source, number: int, a: int, b: int, location: str) -> bytes | None:
    if number != MODEL_GRAPH:
        return None
    return _field(number, _message(source, a, b, _graph_field, location))


def _graph_field(source: _Source, number: int, a: int, b: int, location: str) -> bytes | None:
    if number == GRAPH_INITIALIZER:
        return _tensor(source, number, a, b, location)
    if number == GRAPH_NODE:
        return _field(number, _message(source.held(a, b), a, b, _node_field, location))
    return None


def _node_field(source: _Source, number: int, a: int, b: int, location: str) -> bytes | None:
    if number != NODE_ATTRIBUTE:
        return None
    return _field(number, _message(source, a, b, _attribute_field, location))


def _attribute_field(source: _Source, number: int, a: int, b: int, location: str) -> bytes | None:
    if number in (ATTRIBUTE_TENSOR, ATTRIBUTE_TENSORS):
        return _tensor(source, number, a, b, location)
    if number in (ATTRIBUTE_GRAPH, ATTRIBUTE_GRAPHS):
        return _field(number, _message(source, a, b, _graph_field, location))
    return None


def _tensor(source: _Source, number: int, a: int, b: int, location: str) -> bytes | None:
    """The TensorProto at ``source[a:b]`` without its raw_data, marked as deferred; None (copy
    it whole) when it is small or already external."""
    raw: tuple[int, int] | None = None
    kept: list[bytes] = []
    for field, field_start, payload_start, field_end in source.spans(a, b):
        if field == TENSOR_RAW_DATA and payload_start is not None:
            raw = (payload_start, field_end)
            continue
        kept.append(source.read(field_start, field_end))
        if field == TENSOR_EXTERNAL_DATA:
            return None
        if field == TENSOR_DATA_LOCATION and payload_start is None:
            piece = memoryview(kept[-1])
            if varint(piece, varint(piece, 0, len(piece))[1], len(piece))[0] != 0:
                return None
    if raw is None or raw[1] - raw[0] < DEFERRED_MIN_BYTES:
        return None
    entries = b"".join(
        _field(TENSOR_EXTERNAL_DATA, _field(ENTRY_KEY, key.encode()) + _field(ENTRY_VALUE, value))
        for key, value in (
            ("location", location.encode()),
            ("offset", str(raw[0]).encode()),
            ("length", str(raw[1] - raw[0]).encode()),
            (DEFERRED_KEY, b"1"),
        )
    )
    location_field = _varint((TENSOR_DATA_LOCATION << 3) | VARINT) + _varint(DATA_LOCATION_EXTERNAL)
    return _field(number, b"".join(kept) + entries + location_field)


def _field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
