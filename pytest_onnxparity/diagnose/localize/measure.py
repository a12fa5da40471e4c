"""Localizing divergence: which intermediate tensor of a variant first drifts from its reference,
and which layers add the most drift.

Both models are instrumented (their intermediate tensors become graph outputs), run on the same
inputs, and their activations are matched by tensor name across the rewrite. Activations are
fetched in batches of ``batch_size`` tensors, one onnxruntime session per batch and model, so
memory holds one batch of activations per model at a time rather than every tensor of the graph.

Exposing intermediate tensors blocks the fusions that would consume them, so the instrumented
runs are for localization only: the end-to-end verdict always comes from the ordinary,
uninstrumented run, and each ``Localization`` records the optimisation level it ran at."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from pytest_onnxparity.compare.metrics import ShapeMismatchError, compare_outputs
from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
from pytest_onnxparity.diagnose.localize.instrument import InstrumentableModel
from pytest_onnxparity.diagnose.localize.records import Localization, TensorDrift
from pytest_onnxparity.runtime.sessions import SessionSettings


def localize(
    reference_path: Path,
    variant_path: Path,
    inputs: Mapping[str, np.ndarray],
    *,
    graph: str,
    variant: str,
    options: LocalizeOptions,
    workdir: Path,
    settings: SessionSettings | None = None,
) -> Localization:
    """Compare every float intermediate tensor of ``variant_path`` with ``reference_path`` on
    ``inputs`` and report where the variant drifts.

    Tensors are matched by name; a tensor the variant quantizes through a QuantizeLinear →
    DequantizeLinear pair is compared as its consumers see it, after the pair. Only tensors
    computed from the graph inputs (not constants) of the top-level graph are considered, and
    only float ones (float16 is upcast). Instrumented copies of both models, with their weights in
    one sidecar each (so models with external data work), are written to ``workdir``; each run
    exposes at most ``options.batch_size`` tensors. ``settings`` picks providers and threads;
    its optimisation level is replaced by ``options.graph_optimization_level``.
    """
    settings = dataclasses.replace(
        settings or SessionSettings(), graph_optimization_level=options.graph_optimization_level
    )
    workdir.mkdir(parents=True, exist_ok=True)
    reference = InstrumentableModel(reference_path, workdir / "reference.instrumented.onnx")
    candidate = InstrumentableModel(variant_path, workdir / "variant.instrumented.onnx")
    reference_floats = reference.float_activations(settings)
    variant_floats = candidate.float_activations(settings)

    pairs: list[tuple[str, str]] = []
    unmatched_reference: list[str] = []
    for tensor in reference.activations:
        if tensor not in reference_floats:
            continue
        seen_as = candidate.as_consumed(tensor) if tensor in candidate.producer else None
        if seen_as is not None and seen_as in variant_floats:
            pairs.append((tensor, seen_as))
        else:
            unmatched_reference.append(tensor)

    drifts: dict[str, TensorDrift] = {}
    runs = 0
    for batch in _batches(pairs, options.batch_size):
        reference_values = reference.run([ref for ref, _ in batch], inputs, settings)
        variant_values = candidate.run([var for _, var in batch], inputs, settings)
        runs += 1
        for ref_name, var_name in batch:
            drift = _measure(
                reference, ref_name, var_name, reference_values[ref_name], variant_values[var_name]
            )
            if drift is None:
                unmatched_reference.append(ref_name)
            else:
                drifts[ref_name] = drift
        del reference_values, variant_values

    matched = _with_added_drift(reference, drifts)
    compared_in_variant = {drift.variant_tensor for drift in matched}
    # The pre-quantization tensor of a QDQ pair was matched through its dequantized copy.
    compared_in_variant |= {drift.tensor for drift in matched}
    order = {name: index for index, name in enumerate(reference.activations)}
    return Localization(
        graph=graph,
        variant=variant,
        optimization_level=options.graph_optimization_level,
        matched=matched,
        unmatched_reference=tuple(sorted(unmatched_reference, key=order.__getitem__)),
        unmatched_variant=tuple(
            name
            for name in candidate.activations
            if name in variant_floats and name not in compared_in_variant
        ),
        first_past_tolerance=next(
            (drift for drift in matched if drift.exceeds(options.tolerance_rel_l2)), None
        ),
        tolerance_rel_l2=options.tolerance_rel_l2,
        top_n=options.top_n,
        instrumented_runs=runs,
    )


def _batches(pairs: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for start in range(0, len(pairs), size):
        yield pairs[start : start + size]


def _measure(
    reference: InstrumentableModel,
    ref_name: str,
    var_name: str,
    ref_value: np.ndarray,
    var_value: np.ndarray,
) -> TensorDrift | None:
    """The drift of one tensor, or None where the two are not comparable (shape or dtype)."""
    ref_value, var_value = np.asarray(ref_value), np.asarray(var_value)
    if ref_value.dtype.kind != "f" or var_value.dtype.kind != "f":
        return None
    try:
        stats = compare_outputs(ref_name, ref_value, var_value, argmax_axis=None)
    except ShapeMismatchError:
        return None
    rel_l2 = math.inf if stats.nonfinite_in_variant else stats.rel_l2
    node = reference.nodes[reference.producer[ref_name]]
    return TensorDrift(
        tensor=ref_name,
        node=node.name,
        op_type=node.op_type,
        depth=reference.producer[ref_name],
        max_abs=stats.max_abs,
        mean_abs=stats.mean_abs,
        rel_l2=rel_l2,
        sqnr_db=_sqnr_db(rel_l2),
        cosine=stats.cosine,
        variant_tensor=var_name,
        shape=stats.shape,
        nonfinite_in_variant=stats.nonfinite_in_variant,
    )


def _sqnr_db(rel_l2: float) -> float:
    """Signal-to-quantization-noise ratio: ``10·log10(‖ref‖² / ‖var − ref‖²)``, which is
    ``−20·log10(rel_l2)``."""
    if rel_l2 == 0.0:
        return math.inf
    if math.isinf(rel_l2):
        return -math.inf
    return -20.0 * math.log10(rel_l2)


def _with_added_drift(
    reference: InstrumentableModel, drifts: Mapping[str, TensorDrift]
) -> tuple[TensorDrift, ...]:
    """The matched drifts in topological order, each with the drift its own layer adds.

    A tensor inherits the worst drift of the matched tensors upstream of it; unmatched tensors
    pass their inputs' drift through, so a layer hidden by a rewrite is charged to the next
    matched tensor.
    """
    inherited: dict[str, float] = {}
    ordered = []
    for node in reference.nodes:
        upstream = max((inherited.get(name, 0.0) for name in node.input), default=0.0)
        for name in node.output:
            drift = drifts.get(name)
            if drift is None:
                inherited[name] = upstream
                continue
            inherited[name] = drift.rel_l2
            added = 0.0 if math.isinf(upstream) else max(drift.rel_l2 - upstream, 0.0)
            ordered.append(dataclasses.replace(drift, added_rel_l2=added))
    return tuple(ordered)
