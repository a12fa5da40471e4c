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


# (reference op type, weight slot) -> variant op types that stand in for it, and their slot.
_MATMUL_B = {
    "MatMul": 1,
    "Gemm": 1,
    "FusedMatMul": 1,
    "MatMulNBits": 1,
    "MatMulInteger": 1,
    "QLinearMatMul": 3,
    "QGemm": 3,
    "DynamicQuantizeMatMul": 1,
    "MatMulIntegerToFloat": 1,
}
_MATMUL_A = {
    "MatMul": 0,
    "Gemm": 0,
    "FusedMatMul": 0,
    "MatMulInteger": 0,
    "QLinearMatMul": 0,
    "QGemm": 0,
    "MatMulIntegerToFloat": 0,
}
STAND_IN_SLOTS: Mapping[tuple[str, int], Mapping[str, int]] = {
    ("MatMul", 1): _MATMUL_B,
    ("Gemm", 1): _MATMUL_B,
    ("MatMul", 0): _MATMUL_A,
    ("Gemm", 0): _MATMUL_A,
    ("Conv", 1): {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "FusedConv": 1, "NhwcConv": 1},
    ("ConvTranspose", 1): {"ConvTranspose": 1},
    ("Gather", 0): {"Gather": 0, "GatherBlockQuantized": 0},
}


def locate_forms_by_reader(
    reference: GraphIndex,
    variant: GraphIndex,
    names: Sequence[str],
    claimed: set[str],
) -> dict[str, list[WeightForm]]:
    """Forms of weights whose names the variant does not keep, found through the node that
    reads them: a variant node named like the reference's reader (quantizers keep it or add a
    suffix: ``MatMul_Q4``, ``MatMul_quant``) whose stand-in slot leads, through
    DequantizeLinear and pass-through ops, to an initializer no other weight ``claimed``."""
    nodes = {id(node): node for node in variant.producers.values() if node.name}
    by_name: dict[str, list[Any]] = {}
    for node in nodes.values():
        for base in _name_and_prefixes(node.name):
            by_name.setdefault(base, []).append(node)
    found: dict[str, list[WeightForm]] = {}
    for name in names:
        reference_type = reference.initializers[name].data_type
        for reader, reader_slot in reference.reads(name):
            slots = STAND_IN_SLOTS.get((reader.op_type, reader_slot), {})
            for node in by_name.get(reader.name, []) if reader.name else []:
                if node.op_type not in slots or slots[node.op_type] >= len(node.input):
                    continue
                form = _form_behind(variant, node, slots[node.op_type], name, reference_type)
                if form is not None and form.tensor not in claimed:
                    claimed.add(form.tensor)
                    found.setdefault(name, []).append(form)
    return found


def _form_behind(
    variant: GraphIndex, node: Any, slot: int, owner: str, reference_type: int
) -> WeightForm | None:
    """The initializer a node reads at ``slot``, through DequantizeLinear and pass-throughs."""
    floats = float_element_types()
    consumer, consumer_slot, tensor_name = node, slot, node.input[slot]
    for _ in range(16):
        if tensor_name in variant.initializers:
            break
        producer = variant.producers.get(tensor_name)
        if producer is None or not producer.input:
            return None
        if producer.op_type == "DequantizeLinear":
            consumer, consumer_slot = producer, 0
        elif producer.op_type not in PASS_THROUGH_OPS:
            return None
        tensor_name = producer.input[0]
    tensor = variant.initializers.get(tensor_name)
    if tensor is None:
        return None
    storage = _storage(consumer, consumer_slot, tensor, True, reference_type, floats)
    if storage is None:
        return None
    users = frozenset({node.op_type})
    return WeightForm(owner, tensor_name, storage, consumer, consumer_slot, users)


def _name_and_prefixes(name: str) -> list[str]:
    """``a_b_c`` -> ``a_b_c``, ``a_b``, ``a`` (a node name and its prefixes up to an ``_``)."""
    names = [name] if name else []
    cut = name.rfind("_")
    while cut > 0:
        names.append(name[:cut])
        cut = name.rfind("_", 0, cut)
    return names


def _owning_reference_name(name: str, reference_names: Mapping[str, Any]) -> str | None:
    """The reference name ``name`` starts with (up to an ``_``); failing that, the longest one it
    contains between ``_`` boundaries, for quantizers that add a prefix too (nncf writes
    ``q_output_<weight>_1``)."""
    owner = _prefix_owner(name, reference_names)
    if owner is not None:
        return owner
    best = None
    start = name.find("_")
    while start >= 0:
        candidate = _prefix_owner(name[start + 1 :], reference_names)
        if candidate is not None and (best is None or len(candidate) > len(best)):
            best = candidate
        start = name.find("_", start + 1)
    return best


def _prefix_owner(name: str, reference_names: Mapping[str, Any]) -> str | None:
    if name in reference_names:
        return name
    cut = name.rfind("_")
    while cut > 0:
        if name[:cut] in reference_names:
            return name[:cut]
        cut = name.rfind("_", 0, cut)
    return None


def storage_of(
    node: Any, slot: int, tensor: Any, reference_type: int, floats: Mapping[int, str]
) -> str | None:
    """How ``node`` reading ``tensor`` at ``slot`` stores a weight whose name the variant
    changed: as for a tensor of the weight's own name, but a float tensor read as a quantized
    op's scale or zero point is not the weight."""
    quantized_op = node.op_type in QUANTIZED_DATA_SLOTS
    if (
        tensor.data_type in floats
        and quantized_op
        and slot not in QUANTIZED_DATA_SLOTS[node.op_type]
    ):
        return None
    return _storage(node, slot, tensor, True, reference_type, floats)


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
