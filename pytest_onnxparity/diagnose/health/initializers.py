"""``health:initializers``: no NaN/Inf in float tensors (a single-value ±Inf, the fill value of
``masked_fill(-inf)``, is a warning where the reference has it too); no weight that the variant
made all-zero, constant or far off (rel_l2 above 0.5, every tier's limit) where the reference's
tensor is not, compared after dequantizing and matching as weight-space parity does (see
:mod:`pytest_onnxparity.compare.weight_space`); all-zero weight matrices of a reference reported
as warnings. Tensor values are streamed one at a time from their sidecar files."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.compare.weight_space import DEFAULT_LIMITS
from pytest_onnxparity.compare.weight_space.matching import match_weights
from pytest_onnxparity.compare.weight_space.report import UncomparedForm
from pytest_onnxparity.compare.weight_space.run import iter_aligned_forms
from pytest_onnxparity.compare.weight_space.statistics import measure
from pytest_onnxparity.diagnose.health.common import DETAIL_ITEMS, Outcome, listed, load_model
from pytest_onnxparity.diagnose.health.config import (
    DEFAULT_DOMAIN,
)
from pytest_onnxparity.onnxfile.dequantize import read_array
from pytest_onnxparity.onnxfile.graph import (
    GraphIndex,
    float_element_types,
    iter_nodes,
    node_label,
)
from pytest_onnxparity.onnxfile.weight_forms import reference_weights

LOOSEST_REL_L2 = max(limits.rel_l2 or 0.0 for limits in DEFAULT_LIMITS.values())
"""A weight off by more than every tier's default rel_l2 limit is broken whatever its storage."""


def check_initializers(path: Path, reference_path: Path | None) -> Outcome:
    model = load_model(path)
    index = GraphIndex.of(model)
    floats = float_element_types()
    non_finite: list[dict[str, Any]] = []
    tensors = 0
    for name, tensor in _float_tensors(model, floats):
        tensors += 1
        values = read_array(tensor, path.parent).astype(np.float64)
        nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if nan or inf:
            non_finite.append({"name": name, "nan": nan, "inf": inf, "size": int(values.size)})
    by_design = _deliberate_infinities(non_finite, reference_path)
    for item in non_finite:
        item["by_design"] = item["name"] in by_design
    details: dict[str, Any] = {"float_tensors": tensors, "non_finite": non_finite[:DETAIL_ITEMS]}
    problems: list[str] = []
    warnings: list[str] = []
    if by_design and reference_path is None:
        # Reported once, for the reference; its variants inherit the same constants.
        first = sorted(by_design)[0]
        warnings.append(
            f"{path}: {len(by_design)} single-value ±Inf constants taken as deliberate mask "
            f"fills or clamp bounds (e.g. {first}, read by {_readers(index, first)})"
        )
    non_finite = [item for item in non_finite if not item["by_design"]]
    if non_finite:
        problems += [
            f"{path}: {len(non_finite)} float tensors hold NaN or Inf; fix the training "
            "checkpoint or the conversion step (an overflowing fp16 cast, a zero scale) that "
            "wrote them",
            *listed(
                [
                    f"{item['name']}: {item['nan']} NaN, {item['inf']} Inf of {item['size']} "
                    f"values, read by {_readers(index, item['name'])}"
                    for item in non_finite
                ]
            ),
        ]
    if reference_path is None:
        zero_matrices = _zero_weight_matrices(index, path.parent)
        details["zero_weight_matrices"] = zero_matrices[:DETAIL_ITEMS]
        warnings += [
            f"{path}: weight {name} is all zeros in the reference (read by "
            f"{_readers(index, name)}); check the checkpoint that was exported"
            for name in zero_matrices
        ]
        return Outcome(problems, details, warnings)
    collapsed, compared, uncompared = _collapsed_weights(path, index, reference_path)
    details.update(
        compared=compared,
        collapsed=collapsed[:DETAIL_ITEMS],
        uncompared=uncompared[:DETAIL_ITEMS],
    )
    if collapsed:
        problems += [
            f"{path}: {len(collapsed)} weights are all-zero, constant or far off where the "
            f"reference ({reference_path.name}) varies, after dequantizing; re-run the quantizer "
            "and check its scales, zero points and packing (the weights test compares every "
            "weight against its tier's limits)",
            *listed(
                [
                    f"{item['reference']} -> {item['tensor']} as {item['storage']}: "
                    f"{item['kind']}, read by {_readers(index, item['tensor'])}; the reference "
                    f"spans [{item['reference_min']:.4g}, {item['reference_max']:.4g}]"
                    for item in collapsed
                ]
            ),
        ]
    return Outcome(problems, details, warnings)


def _deliberate_infinities(
    non_finite: Sequence[Mapping[str, Any]], reference_path: Path | None
) -> set[str]:
    """Single-value ±Inf tensors an exporter writes on purpose (``masked_fill(-inf)``, a clamp
    bound). In a variant, only those whose reference tensor is not finite either: a finite
    reference value that became Inf is an overflow (70000 in float16)."""
    candidates = {item["name"] for item in non_finite if item["size"] == 1 and item["nan"] == 0}
    if not candidates or reference_path is None:
        return candidates
    reference = load_model(reference_path)
    deliberate = set()
    for name, tensor in _float_tensors(reference, float_element_types()):
        if name in candidates:
            values = read_array(tensor, reference_path.parent)
            if values.size == 1 and np.all(np.isinf(values)):
                deliberate.add(name)
    return deliberate


def _float_tensors(model: Any, floats: Mapping[int, str]) -> Iterator[tuple[str, Any]]:
    """Float initializers of every (sub)graph and float Constant values, by name."""
    yield from _graph_float_initializers(model.graph, floats)
    for node in iter_nodes(model.graph):
        if node.op_type == "Constant" and node.domain in ("", DEFAULT_DOMAIN):
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type in floats:
                    yield node.output[0], attribute.t
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from _graph_float_initializers(attribute.g, floats)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _graph_float_initializers(subgraph, floats)


def _graph_float_initializers(graph: Any, floats: Mapping[int, str]) -> Iterator[tuple[str, Any]]:
    for tensor in graph.initializer:
        if tensor.data_type in floats:
            yield tensor.name, tensor


def _readers(index: GraphIndex, name: str, limit: int = 3) -> str:
    nodes = list(dict.fromkeys(node_label(node) for node, _ in index.consumers.get(name, ())))
    if not nodes:
        return "no node"
    more = f", … {len(nodes) - limit} more" if len(nodes) > limit else ""
    return ", ".join(nodes[:limit]) + more


def _zero_weight_matrices(index: GraphIndex, base_dir: Path) -> list[str]:
    zero = []
    for name in reference_weights(index):
        tensor = index.initializers[name]
        if len(tensor.dims) >= 2 and not np.any(read_array(tensor, base_dir)):
            zero.append(name)
    return zero


def _collapsed_weights(
    path: Path, index: GraphIndex, reference_path: Path
) -> tuple[list[dict[str, Any]], int, list[dict[str, str]]]:
    """Variant forms that are all-zero or constant although their reference tensor is not, or
    off by more than the loosest weight-space limit (``rel_l2`` 0.5, int4's).

    Forms are matched, dequantized and lined up as weight-space parity does them
    (:mod:`pytest_onnxparity.compare.weight_space`), so every quantized layout it reads is seen
    here too (a packed 4-bit table written with the wrong sign convention is off, not constant).
    A form is flagged as collapsed only when a faithful quantizer at its resolution (``step``,
    its largest quantization step) could not have produced it: all-zero while the reference
    reaches beyond one step, constant while the reference spans more than two. Zero biases and
    near-constant tensors (LayerNorm gains in fp16, say) therefore pass.
    """
    reference = GraphIndex.of(load_model(reference_path))
    matching = match_weights(reference, index)
    collapsed: list[dict[str, Any]] = []
    uncompared: list[dict[str, str]] = []
    compared = 0
    for aligned in iter_aligned_forms(reference_path, path, reference, index, matching):
        if isinstance(aligned, UncomparedForm):
            uncompared.append(
                {
                    "reference": aligned.reference,
                    "tensor": aligned.tensor,
                    "storage": aligned.storage,
                }
            )
            continue
        ref = aligned.reference_values
        if not ref.size or not np.all(np.isfinite(ref)) or not np.any(ref):
            continue
        compared += 1
        values, step = aligned.values, aligned.dequantized.step
        if not np.all(np.isfinite(values)):
            continue  # reported as NaN/Inf already
        peak, spread = float(np.max(np.abs(ref))), float(np.ptp(ref))
        rel_l2 = measure(ref, values, aligned.dequantized.float_type).rel_l2
        if not np.any(values) and peak > step:
            kind = "all zeros"
        elif values.size > 1 and np.ptp(values) == 0 and spread > 2 * step:
            kind = f"constant {float(values.flat[0]):.4g}"
        elif rel_l2 > LOOSEST_REL_L2:
            kind = f"off by rel_l2 {rel_l2:.3g} (above {LOOSEST_REL_L2:g}, any tier's limit)"
        else:
            continue
        collapsed.append(
            {
                "reference": aligned.weight.name,
                "tensor": aligned.form.tensor,
                "storage": aligned.form.storage,
                "kind": kind,
                "reference_min": float(ref.min()),
                "reference_max": float(ref.max()),
                "step": float(step),
                "rel_l2": rel_l2,
            }
        )
    return collapsed, compared, uncompared
