"""Weights a variant renamed, matched by the end of their module path and their shape.

Exporters and wrappers prefix parameter names differently (``model.encoder.0.weight`` in one
file, ``encoder.0.weight`` or ``If_0_then_branch__Inline_0__encoder.0.weight`` in another), so a
reference weight that neither its name nor its reader matched is paired with a variant tensor
whose name ends with the same dotted components (at least two, the last one whole; a
quantizer's suffix such as ``_quantized`` or ``_Q4`` is looked through) and whose values have
the reference's shape. Where two reference weights fit one variant tensor (an If whose branches
hold the same layer for two sample rates), the name prefixes the unambiguous pairs agree on
decide; what stays ambiguous stays unmatched.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pytest_onnxparity.onnxfile.graph import GraphIndex, float_element_types
from pytest_onnxparity.onnxfile.weight_forms import WeightForm, storage_of

MIN_COMPONENTS = 2
"""Dotted components two names must end with to be paired (``rnn.weight_ih`` at least)."""


def locate_renamed(
    reference: GraphIndex, variant: GraphIndex, names: Sequence[str], claimed: set[str]
) -> dict[str, list[WeightForm]]:
    """Forms of reference weights ``names`` among the variant tensors nobody ``claimed``."""
    candidates = _candidates(reference, variant, names, claimed)
    pairs = {
        tensor: refs[0]
        for tensor, refs in candidates.items()
        if len(refs) == 1 and len(_tensors_of(candidates, refs[0])) == 1
    }
    agreed = Counter(
        (_prefix(reference_name), _prefix(tensor)) for tensor, reference_name in pairs.items()
    )
    taken = set(pairs.values())
    for tensor, refs in candidates.items():
        if tensor in pairs:
            continue
        votes = {ref: agreed[(_prefix(ref), _prefix(tensor))] for ref in refs if ref not in taken}
        best = max(votes.values(), default=0)
        winners = [ref for ref, count in votes.items() if count == best]
        if best and len(winners) == 1:
            pairs[tensor] = winners[0]
            taken.add(winners[0])
    found: dict[str, list[WeightForm]] = {}
    for tensor, reference_name in pairs.items():
        form = _form(reference, variant, tensor, reference_name)
        if form is not None:
            claimed.add(tensor)
            found.setdefault(reference_name, []).append(form)
    return found


def _candidates(
    reference: GraphIndex, variant: GraphIndex, names: Sequence[str], claimed: set[str]
) -> dict[str, list[str]]:
    """Variant tensor -> the reference names it could stand for (best suffix, same shape)."""
    wanted = [name for name in names if math.prod(reference.initializers[name].dims) > 1]
    candidates: dict[str, list[str]] = {}
    for tensor_name, tensor in variant.initializers.items():
        if tensor_name in claimed or tensor_name in reference.initializers:
            continue
        shape = _read_shape(variant, tensor_name, tensor)
        if shape is None:
            continue
        scored = [
            (score, name)
            for name in wanted
            if _fits(shape, tuple(reference.initializers[name].dims))
            and (score := _suffix_score(name, tensor_name)) >= MIN_COMPONENTS
        ]
        best = max((score for score, _ in scored), default=0)
        if best:
            candidates[tensor_name] = [name for score, name in scored if score == best]
    return candidates


def _tensors_of(candidates: dict[str, list[str]], reference_name: str) -> list[str]:
    return [tensor for tensor, refs in candidates.items() if reference_name in refs]


def _suffix_score(reference_name: str, tensor_name: str) -> int:
    """How many dotted components both names end with, the tensor's quantizer suffix looked
    through; the first compared component may be a ``_``-separated tail of the other."""
    best = 0
    for base in _bases(tensor_name):
        ours, theirs = reference_name.split("."), base.split(".")
        score = 0
        while score < min(len(ours), len(theirs)):
            a, b = ours[-1 - score], theirs[-1 - score]
            if a == b:
                score += 1
                continue
            if score and (a.endswith("_" + b) or b.endswith("_" + a)):
                score += 1
            break
        best = max(best, score)
    return best


def _bases(name: str) -> list[str]:
    """The name and the name less each ``_`` tail (``w_quantized`` -> ``w``)."""
    bases = [name]
    cut = name.rfind("_")
    while cut > 0 and len(bases) < 3:
        bases.append(name[:cut])
        cut = name.rfind("_", 0, cut)
    return bases


def _prefix(name: str) -> str:
    """What comes before the module path: ``model_8k`` of ``model_8k.encoder.0.weight``."""
    head = name.split(".", 1)[0]
    return head.rsplit("__", 1)[0] if "__" in head else head


def _read_shape(variant: GraphIndex, name: str, tensor: Any) -> tuple[int, ...] | None:
    """The shape a tensor's values have once read: MatMulNBits' ``[K, N]``, else its dims;
    None when no op reads it as a weight."""
    for node, slot in variant.consumers.get(name, ()):
        if node.op_type == "MatMulNBits" and slot == 1:
            attributes = {a.name: a.i for a in node.attribute}
            return (attributes.get("K", 0), attributes.get("N", 0))
    return tuple(tensor.dims)


def _fits(shape: tuple[int, ...], reference_shape: tuple[int, ...]) -> bool:
    if shape == reference_shape:
        return True
    return len(shape) == 2 and shape[::-1] == reference_shape


def _form(
    reference: GraphIndex, variant: GraphIndex, tensor_name: str, reference_name: str
) -> WeightForm | None:
    tensor = variant.initializers[tensor_name]
    reference_type = reference.initializers[reference_name].data_type
    floats = float_element_types()
    for node, slot in variant.consumers.get(tensor_name, ()):
        storage = storage_of(node, slot, tensor, reference_type, floats)
        if storage is not None:
            users = frozenset(variant.final_users(tensor_name))
            return WeightForm(reference_name, tensor_name, storage, node, slot, users)
    return None
