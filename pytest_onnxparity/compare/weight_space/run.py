"""Weight-space parity of one variant file: every reference weight matched to its forms in the
variant, dequantized, put in the reference's layout and compared against its tier's limits.

No inference: it reads graph structure and weight values only, so it runs where inputs cannot
be synthesized and needs no onnxruntime. Both models are loaded as structure only, their inline
weights left in the file and external data in its sidecars
(:func:`~pytest_onnxparity.onnxfile.streamed.load_streamed`), and tensors are read by offset one
at a time, each once, so memory holds one reference weight and its forms at a time, not the
models.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_onnxparity.compare.weight_space.layout import (
    as_read,
    matching_read,
    reads,
    smooth_quant_scale,
    to_reference_layout,
)
from pytest_onnxparity.compare.weight_space.limits import (
    WeightLimits,
    WeightSettings,
    storage_tier,
)
from pytest_onnxparity.compare.weight_space.matching import (
    ReferenceWeight,
    WeightMatching,
    match_weights,
)
from pytest_onnxparity.compare.weight_space.report import (
    UncomparedForm,
    UnmatchedWeight,
    WeightComparison,
    WeightParityReport,
)
from pytest_onnxparity.compare.weight_space.statistics import WeightStatistics, measure
from pytest_onnxparity.onnxfile.dequantize import Dequantized, dequantize_form, read_array
from pytest_onnxparity.onnxfile.graph import GraphIndex, node_label
from pytest_onnxparity.onnxfile.streamed import load_streamed
from pytest_onnxparity.onnxfile.weight_forms import WeightForm


@dataclass(frozen=True)
class AlignedForm:
    """One form of a reference weight with both value arrays in the reference's layout: what
    the statistics compare. ``layout_problem`` is set when it only lined up by transposing or
    reshaping a layout that nothing in the graph flips back."""

    weight: ReferenceWeight
    form: WeightForm
    reference_values: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)
    dequantized: Dequantized = field(repr=False)
    readers: tuple[str, ...]
    layout_problem: str | None = None
    notes: tuple[str, ...] = ()


def iter_aligned_forms(
    reference_path: Path,
    variant_path: Path,
    reference: GraphIndex,
    variant: GraphIndex,
    matching: WeightMatching,
) -> Iterator[AlignedForm | UncomparedForm]:
    """Each matched form, dequantized and aligned, one reference weight at a time: each tensor
    is read once and dropped before the next weight is read."""
    for weight in matching.weights:
        if not weight.forms:
            continue
        values = read_array(reference.initializers[weight.name], reference_path.parent)
        for form in weight.forms:
            yield _align(weight, form, values, reference, variant, variant_path.parent)
        del values


def compare_weights(
    reference_path: Path,
    variant_path: Path,
    settings: WeightSettings | None = None,
    *,
    file_tier: str | None = None,
) -> WeightParityReport:
    """Weight-space parity of the variant at ``variant_path`` against ``reference_path``;
    ``file_tier`` is the variant file's precision tier (its forms are judged at their storage's
    tier, or at the file's when that is looser)."""
    settings = settings or WeightSettings()
    reference = GraphIndex.of(load_streamed(reference_path), constants=True)
    variant = GraphIndex.of(load_streamed(variant_path), constants=True)
    matching = match_weights(reference, variant, settings.skips)
    comparisons: list[WeightComparison] = []
    uncompared: list[UncomparedForm] = []
    for aligned in iter_aligned_forms(reference_path, variant_path, reference, variant, matching):
        if isinstance(aligned, UncomparedForm):
            uncompared.append(aligned)
        else:
            comparisons.append(_judge(aligned, settings, file_tier))
    compared_names = {comparison.reference for comparison in comparisons}
    unmatched = tuple(
        UnmatchedWeight(w.name, w.elements, w.readers, bool(w.op_types))
        for w in matching.weights
        if w.name not in compared_names
    )
    return WeightParityReport(
        reference_file=reference_path.name,
        variant_file=str(variant_path),
        comparisons=tuple(comparisons),
        uncompared=tuple(uncompared),
        unmatched_reference=unmatched,
        unmatched_variant=matching.unmatched_variant,
        skipped=matching.skipped,
        unmatched_fraction=_unmatched_fraction(matching.weights, compared_names),
        max_unmatched_fraction=settings.max_unmatched_fraction,
        by_op_type=_by_op_type(matching.weights, comparisons),
    )


def _align(
    weight: ReferenceWeight,
    form: WeightForm,
    reference_values: np.ndarray,
    reference: GraphIndex,
    variant: GraphIndex,
    base_dir: Path,
) -> AlignedForm | UncomparedForm:
    dequantized = dequantize_form(form, variant, base_dir)
    if isinstance(dequantized, str):
        return UncomparedForm(weight.name, form.tensor, form.storage, dequantized)
    start = form.consumer.output[0] if form.consumer.op_type == "DequantizeLinear" else form.tensor
    variant_reads = reads(variant, start)
    variant_read = variant_reads[0] if variant_reads else None
    values = as_read(dequantized.values, variant_read)
    notes = []
    if variant_read is not None and values.ndim == 2:
        scale = smooth_quant_scale(variant, reference, variant_read, values.shape[0], base_dir)
        if scale is not None:
            values = scale[0].reshape(-1, 1) * values
            notes.append(f"input scale of {scale[1]} folded in (SmoothQuant)")
    reference_read = matching_read(variant_read, reads(reference, weight.name))
    placed = to_reference_layout(
        values, variant_read, reference_read, tuple(reference_values.shape)
    )
    if isinstance(placed, str):
        return UncomparedForm(weight.name, form.tensor, form.storage, placed)
    if placed[2]:
        notes.append(placed[2])
    return AlignedForm(
        weight=weight,
        form=form,
        reference_values=reference_values,
        values=placed[0],
        dequantized=dequantized,
        readers=tuple(dict.fromkeys(node_label(read.node) for read in variant_reads)),
        layout_problem=placed[1],
        notes=tuple(notes),
    )


def _judge(
    aligned: AlignedForm, settings: WeightSettings, file_tier: str | None
) -> WeightComparison:
    dequantized = aligned.dequantized
    adjustable = dequantized.float_type is not None and not aligned.weight.op_types
    tier = storage_tier(dequantized.bits, dequantized.float_type, file_tier if adjustable else None)
    limits = settings.limits_for(tier)
    statistics = measure(aligned.reference_values, aligned.values, dequantized.float_type)
    failures = _failures(statistics, limits)
    if aligned.layout_problem:
        failures = (aligned.layout_problem, *failures)
    return WeightComparison(
        reference=aligned.weight.name,
        tensor=aligned.form.tensor,
        storage=aligned.form.storage,
        layout=dequantized.layout,
        tier=tier,
        readers=aligned.readers,
        statistics=statistics,
        limits=limits,
        failures=failures,
        notes=aligned.notes,
    )


def _failures(statistics: WeightStatistics, limits: WeightLimits) -> tuple[str, ...]:
    """The limits a weight breaks; ``not value <= limit`` so that NaN never passes."""
    failures = []
    if statistics.non_finite:
        failures.append(f"{statistics.non_finite} NaN/Inf values")
    if statistics.reference_non_finite:
        failures.append(f"the reference has {statistics.reference_non_finite} NaN/Inf values")
    for key, value in (
        ("rel_l2", statistics.rel_l2),
        ("max_abs_over_range", statistics.max_abs_over_range),
    ):
        limit = getattr(limits, key)
        if limit is not None and not value <= limit:
            failures.append(f"{key} {value:.3g} > {limit:g}")
    if limits.min_cosine is not None and not statistics.cosine >= limits.min_cosine:
        failures.append(f"cosine {statistics.cosine:.4g} < {limits.min_cosine:g}")
    return tuple(failures)


def _unmatched_fraction(weights: tuple[ReferenceWeight, ...], compared: set[str]) -> float:
    """The share of weight elements (initializers read as weights; every float initializer
    when none is) that no comparison covers."""
    counted = [w for w in weights if w.op_types] or list(weights)
    total = sum(w.elements for w in counted)
    missing = sum(w.elements for w in counted if w.name not in compared)
    return missing / total if total else 0.0


def _by_op_type(
    weights: tuple[ReferenceWeight, ...], comparisons: list[WeightComparison]
) -> tuple[tuple[str, int, int, float], ...]:
    """Per reference op type reading weights: compared, failed, worst rel_l2 (for the coverage
    table, which tells quantized weights apart but cannot see their values)."""
    op_types = {w.name: w.op_types for w in weights}
    rows: dict[str, list[WeightComparison]] = {}
    for comparison in comparisons:
        for op_type in op_types.get(comparison.reference, ()):
            rows.setdefault(op_type, []).append(comparison)
    return tuple(
        (
            op_type,
            len({c.reference for c in found}),
            len({c.reference for c in found if not c.passed}),
            max((c.statistics.rel_l2 for c in found), default=0.0),
        )
        for op_type, found in sorted(rows.items())
    )
