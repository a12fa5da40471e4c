"""Which variant tensor stands for each float initializer of the reference.

Matching reads graph structure only (no weight values). A variant tensor belongs to a reference
initializer by name, as quantizers keep it (``W``, ``W_quantized``, ``W_Q4``, ``W_DQ_Q4``,
nncf's ``q_output_W_1``; see :func:`pytest_onnxparity.onnxfile.weight_forms.locate_forms`);
a reference weight whose name the variant does not keep is found through the node that reads
it, when the variant keeps that node's name (``MatMul`` -> ``MatMul_Q4``), or by the end of its
module path and its shape (:mod:`pytest_onnxparity.compare.weight_space.renamed`). What is left is
listed: reference weights with no form, and variant weight tensors that no reference weight owns
(renamed, fused or new).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_onnxparity.compare.weight_space.renamed import locate_renamed
from pytest_onnxparity.onnxfile.graph import (
    GraphIndex,
    float_element_types,
    node_label,
)
from pytest_onnxparity.onnxfile.weight_forms import (
    QUANTIZED_DATA_SLOTS,
    WEIGHT_SLOTS,
    WeightForm,
    locate_forms,
    locate_forms_by_reader,
    reference_weights,
)


@dataclass(frozen=True)
class ReferenceWeight:
    """A float initializer of the reference and its forms in the variant (maybe none).

    ``op_types`` are the reference ops that read it as a weight (MatMul's B, a Conv kernel, a
    Gather table…), empty for other initializers (biases, norm gains, constants); ``readers``
    label every reference node that reads it.
    """

    name: str
    elements: int
    op_types: tuple[str, ...]
    readers: tuple[str, ...]
    forms: tuple[WeightForm, ...] = field(default=())


@dataclass(frozen=True)
class WeightMatching:
    """Every reference float initializer with its forms, the ones left out by ``skip``, and the
    variant's weight tensors that no reference initializer owns."""

    weights: tuple[ReferenceWeight, ...]
    skipped: tuple[str, ...]
    unmatched_variant: tuple[str, ...]


def match_weights(
    reference: GraphIndex, variant: GraphIndex, skips: Callable[[str], bool] = lambda _: False
) -> WeightMatching:
    """Match every float initializer of the reference (but those ``skips`` names)."""
    floats = float_element_types()
    names = [name for name, t in reference.initializers.items() if t.data_type in floats]
    skipped = tuple(name for name in names if skips(name))
    names = [name for name in names if name not in skipped]
    forms = locate_forms(reference, variant, names)
    claimed = {form.tensor for found in forms.values() for form in found}
    unnamed = [name for name in names if not forms[name]]
    for name, found in locate_forms_by_reader(reference, variant, unnamed, claimed).items():
        forms[name] = found
    unnamed = [name for name in names if not forms[name]]
    for name, found in locate_renamed(reference, variant, unnamed, claimed).items():
        forms[name] = found
    weight_uses = reference_weights(reference)
    weights = tuple(
        ReferenceWeight(
            name=name,
            elements=math.prod(reference.initializers[name].dims),
            op_types=tuple(sorted({op_type for op_type, _ in weight_uses.get(name, [])})),
            readers=tuple(dict.fromkeys(node_label(node) for node, _ in reference.reads(name))),
            forms=tuple(forms[name]),
        )
        for name in names
    )
    claimed = {form.tensor for weight in weights for form in weight.forms}
    return WeightMatching(weights, skipped, _unowned_weight_tensors(variant, claimed, reference))


def _unowned_weight_tensors(
    variant: GraphIndex, claimed: set[str], reference: GraphIndex
) -> tuple[str, ...]:
    """Variant initializers read as quantized weight data, or as a float weight, that no
    reference initializer owns."""
    floats = float_element_types()
    unowned = []
    for name, tensor in variant.initializers.items():
        if name in claimed or name in reference.initializers:
            continue
        for node, slot in variant.consumers.get(name, ()):
            quantized = slot in QUANTIZED_DATA_SLOTS.get(node.op_type, ())
            float_weight = tensor.data_type in floats and _read_as_weight(variant, name)
            if quantized or float_weight:
                unowned.append(name)
                break
    return tuple(unowned)


def _read_as_weight(index: GraphIndex, name: str) -> bool:
    return any(slot in WEIGHT_SLOTS.get(node.op_type, ()) for node, slot in index.reads(name))
