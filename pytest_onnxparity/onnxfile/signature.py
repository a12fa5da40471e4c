"""A graph's input/output signature, read from the ONNX protobuf or an ONNX Runtime session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Dim = int | str | None

# ONNX Runtime's type strings ("tensor(float)") mapped to numpy dtype names.
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type (a numpy dtype name) and shape; a dim is an int, a symbol or None."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    @classmethod
    def from_value_info(cls, value_info: Any) -> TensorSpec:
        """From an ``onnx.ValueInfoProto``."""
        from onnx import helper

        tensor_type = value_info.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        except (KeyError, TypeError, ValueError):
            dtype = f"onnx-elem-{tensor_type.elem_type}"
        if not tensor_type.HasField("shape"):
            return cls(value_info.name, dtype, None)
        dims: list[Dim] = []
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                dims.append(dim.dim_param)
            else:
                dims.append(None)
        return cls(value_info.name, dtype, tuple(dims))

    @classmethod
    def from_ort(cls, node_arg: Any) -> TensorSpec:
        """From an ``onnxruntime.NodeArg`` (``session.get_inputs()[i]``)."""
        dtype = ORT_TYPES.get(node_arg.type, node_arg.type)
        shape = node_arg.shape
        dims = None if shape is None else tuple(_ort_dim(d) for d in shape)
        return cls(node_arg.name, dtype, dims)

    def describe(self) -> str:
        dims = "?" if self.shape is None else ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
        }


def _ort_dim(dim: object) -> Dim:
    if isinstance(dim, int):
        return dim if dim > 0 else None
    return str(dim) if dim else None


# ONNX's TensorProto.DataType values as numpy dtype names (what TensorSpec.dtype holds).
ONNX_ELEM_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "object",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
}


def read_signature(model_path: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Graph inputs (initializers excluded) and outputs of an ONNX file.

    Read by :mod:`pytest_onnxparity.onnxfile.protoscan`: no onnx import, and the weights are
    not read.
    """
    from pathlib import Path

    from pytest_onnxparity.onnxfile.protoscan import scan_signature

    inputs, outputs = scan_signature(Path(model_path))

    def spec(info: Any) -> TensorSpec:
        dtype = ONNX_ELEM_TYPES.get(info.elem_type, f"onnx-elem-{info.elem_type}")
        return TensorSpec(info.name, dtype, info.shape)

    return tuple(spec(i) for i in inputs), tuple(spec(o) for o in outputs)
