"""Where a reference weight lives in a variant: the initializer that stores it (float, fp16,
quantized with scales and zero points, packed 4-bit) and the nodes that read it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_onnxparity.onnxfile.graph import PASS_THROUGH_OPS, GraphIndex, float_element_types

# Reference op type -> input slots that hold a weight.
WEIGHT_SLOTS: Mapping[str, tuple[int, ...]] = {
    "MatMul": (0, 1),
    "Gemm": (0, 1),
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Gather": (0,),
    "LSTM": (1, 2),
    "GRU": (1, 2),
    "RNN": (1, 2),
}


# Variant op type -> input slots that hold quantized data. DequantizeLinear is the QDQ form.
QUANTIZED_DATA_SLOTS: Mapping[str, tuple[int, ...]] = {
    "DequantizeLinear": (0,),
    "MatMulNBits": (1,),
    "MatMulInteger": (0, 1),
    "ConvInteger": (1,),
    "QLinearMatMul": (0, 3),
    "QLinearConv": (3,),
    "QGemm": (0, 3),
    "DynamicQuantizeMatMul": (1,),
    "MatMulIntegerToFloat": (0, 1),
    "GatherBlockQuantized": (0,),
    "MatMulBnb4": (1,),
    "DynamicQuantizeLSTM": (1, 2),
}


FLOAT_STORAGE = "float"


@dataclass(frozen=True)
class WeightForm:
    """One way a variant stores and reads a reference initializer.

    ``storage`` is ``"float"`` (the reference's precision), a narrower float (``"float16"``,
    ``"bfloat16"``), the quantized op that reads it (``"MatMulNBits"``, ``"DequantizeLinear"``,
    ``"MatMulInteger"``…), or an integer type name (``"uint8"``) when a plain op reads the
    integers as its weight (quantize_dynamic's Gather, which dequantizes the gathered rows).
    """

    reference_name: str
    tensor: str
    storage: str
    consumer: Any = field(compare=False, repr=False)
    slot: int
    final_users: frozenset[str]

    @property
    def quantized(self) -> bool:
        return self.storage != FLOAT_STORAGE


def reference_weights(index: GraphIndex) -> dict[str, list[tuple[str, Any]]]:
    """Weight initializer name -> ``(op_type, node)`` of each reference node using it as one."""
    floats = float_element_types()
    weights: dict[str, list[tuple[str, Any]]] = {}
    for name, uses in index.consumers.items():
        for node, slot in uses:
            if slot not in WEIGHT_SLOTS.get(node.op_type, ()):
                continue
            source = _through_pass_through(index, name)
            tensor = index.initializers.get(source)
            if tensor is not None and tensor.data_type in floats:
                weights.setdefault(source, []).append((node.op_type, node))
    return weights


def _through_pass_through(index: GraphIndex, name: str) -> str:
    seen = set()
    while name not in index.initializers and name not in seen:
        seen.add(name)
        producer = index.producers.get(name)
        if producer is None or producer.op_type not in PASS_THROUGH_OPS or not producer.input:
            break
        name = producer.input[0]
    return name


def locate_forms(
    reference: GraphIndex, variant: GraphIndex, names: Sequence[str] | None = None
) -> dict[str, list[WeightForm]]:
    """Reference initializer name -> its forms in the variant (empty when none is found).

    ``names`` defaults to every reference initializer. A variant initializer belongs to the
    longest reference name that equals it or prefixes it up to an ``_``. A tensor read the same
    way by several nodes is one form, whose ``final_users`` gathers theirs.
    """
    floats = float_element_types()
    wanted = list(reference.initializers) if names is None else list(names)
    found: dict[str, dict[tuple[str, str], WeightForm]] = {name: {} for name in wanted}
    for tensor_name, tensor in variant.initializers.items():
        owner = _owning_reference_name(tensor_name, reference.initializers)
        if owner is None or owner not in found:
            continue
        reference_type = reference.initializers[owner].data_type
        for node, slot in variant.consumers.get(tensor_name, ()):
            storage = _storage(node, slot, tensor, tensor_name == owner, reference_type, floats)
            if storage is None:
                continue
            if node.op_type in QUANTIZED_DATA_SLOTS and node.op_type != "DequantizeLinear":
                users = frozenset({node.op_type})
            else:
                users = frozenset(variant.final_users(tensor_name))
            key = (tensor_name, storage)
            if key in found[owner]:
                users |= found[owner][key].final_users
                node, slot = found[owner][key].consumer, found[owner][key].slot
            found[owner][key] = WeightForm(owner, tensor_name, storage, node, slot, users)
    return {name: list(forms.values()) for name, forms in found.items()}


def _owning_reference_name(name: str, reference_names: Mapping[str, Any]) -> str | None:
    if name in reference_names:
        return name
    cut = name.rfind("_")
    while cut > 0:
        if name[:cut] in reference_names:
            return name[:cut]
        cut = name.rfind("_", 0, cut)
    return None


def _storage(
    node: Any,
    slot: int,
    tensor: Any,
    same_name: bool,
    reference_type: int,
    floats: Mapping[int, str],
) -> str | None:
    if tensor.data_type in floats:
        if not same_name:
            return None  # a scale or a float zero point named after the weight
        narrower = list(floats).index(tensor.data_type) > list(floats).index(reference_type)
        return floats[tensor.data_type] if narrower else FLOAT_STORAGE
    if slot in QUANTIZED_DATA_SLOTS.get(node.op_type, ()):
        return str(node.op_type)
    if same_name or slot in WEIGHT_SLOTS.get(node.op_type, ()):
        # Plain ops reading integers as their weight: quantize_dynamic's Gather reads
        # "<weight>_quantized" and dequantizes the gathered rows.
        from onnx import helper

        return str(helper.tensor_dtype_to_np_dtype(tensor.data_type).name)
    return None  # an integer zero point named after the weight
