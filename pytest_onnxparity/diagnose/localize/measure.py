"""Localizing divergence: which node of a variant is damaged, and where its drift shows.

Both models are instrumented (their intermediate tensors become graph outputs), run on the same
inputs, and their activations are matched by tensor name across the rewrite. For each batch of
matched tensors three runs are made: the reference (the batch and the tensors its replay reads),
the variant (its own values: the drift), and the variant's replay on the reference's values (the
error each node adds on its own). Batches are sized from the tensors' shapes to fit the memory
budget, and each batch is reduced to statistics before the next one runs.

Exposing intermediate tensors blocks the fusions that would consume them, so the instrumented
runs are for localization only: the end-to-end verdict always comes from the ordinary,
uninstrumented run, and each ``Localization`` records the optimisation level it ran at."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytest_onnxparity.diagnose.localize.budget import MB, Batch, plan_batches, tensor_bytes
from pytest_onnxparity.diagnose.localize.chain import (
    initializers_read,
    segment_precision,
    weight_sources,
)
from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
from pytest_onnxparity.diagnose.localize.damage import assess
from pytest_onnxparity.diagnose.localize.instrument import FLOAT_DTYPES, InstrumentableModel
from pytest_onnxparity.diagnose.localize.prior import WeightPrior, WeightVerdict
from pytest_onnxparity.diagnose.localize.records import Localization, TensorDrift, WeightSource
from pytest_onnxparity.diagnose.localize.schedule import Step, held_bytes, plan_runs
from pytest_onnxparity.diagnose.localize.statistics import (
    PairStatistics,
    ShapeDifferenceError,
    compare_tensors,
    sqnr_db,
)
from pytest_onnxparity.runtime.sessions import ModelLoadError, SessionSettings

PLANNED_SHARE = 0.85
"""Batches are planned to hold this share of the budget in activations; the rest is left for
what onnxruntime allocates inside a run (the tensors it computes but does not return)."""

MAX_PLANS = 4
"""Attempts at batches whose held values fit the budget before settling for the last."""


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
    weights: Sequence[WeightVerdict] | None = None,
) -> Localization:
    """Compare every float intermediate tensor of ``variant_path`` with ``reference_path`` on
    ``inputs``, find the nodes that add damage rather than ordinary quantization noise, and say
    where the drift shows.

    Tensors are matched by name; a tensor the variant quantizes through a QuantizeLinear →
    DequantizeLinear pair is compared as its consumers see it, after the pair. Only tensors
    computed from the graph inputs (not constants) of the top-level graph are considered, and
    only float ones (float16 is upcast). Instrumented copies of both models, with their weights in
    one sidecar each (so models with external data work), are written to ``workdir``; each run
    holds at most ``options.memory_budget_mb`` of activations (estimated from shapes).
    ``settings`` picks providers and threads; its optimisation level is replaced by
    ``options.graph_optimization_level``. ``weights`` are weight-space parity's verdicts: a
    failing weight makes the node that reads it damaged, and every named weight gets its error.
    """
    settings = dataclasses.replace(
        settings or SessionSettings(), graph_optimization_level=options.graph_optimization_level
    )
    prior = WeightPrior.of(weights or ())
    workdir.mkdir(parents=True, exist_ok=True)
    reference = InstrumentableModel(reference_path, workdir / "reference.instrumented.onnx")
    candidate = InstrumentableModel(variant_path, workdir / "variant.instrumented.onnx")
    reference_types = reference.tensor_types(settings)
    variant_types = candidate.tensor_types(settings)
    reference_floats = {n for n, dtype in reference_types.items() if dtype in FLOAT_DTYPES}
    variant_floats = {n for n, dtype in variant_types.items() if dtype in FLOAT_DTYPES}

    pairs: dict[str, str] = {}
    unmatched_reference: list[str] = []
    for tensor in reference.activations:
        if tensor not in reference_floats:
            continue
        seen_as = candidate.as_consumed(tensor) if tensor in candidate.producer else None
        if seen_as is not None and seen_as in variant_floats:
            pairs[tensor] = seen_as
        else:
            unmatched_reference.append(tensor)
    # Replay reads the reference's value of every matched tensor the variant computes in float,
    # except graph outputs: a pair of outputs swapped by name would otherwise blame its readers.
    cuttable = {
        name for name in pairs if name in variant_floats and name not in candidate.graph_outputs
    }
    budget = options.memory_budget_mb
    plan = _plan(
        reference,
        candidate,
        pairs,
        {name: candidate.frontier(name, cuttable) for name in pairs},
        (set(reference_types), set(variant_types)),
        tensor_bytes(reference.model, inputs, reference.activations),
        int(budget * MB * PLANNED_SHARE),
        options.batch_size,
    )

    measured: dict[str, tuple[PairStatistics, float]] = {}
    differing: list[str] = []
    replay_error: str | None = None
    reference_held: dict[str, np.ndarray] = {}
    variant_held: dict[str, np.ndarray] = {}
    for batch, reference_step, variant_step in zip(*plan.steps, strict=True):
        reference_values = _run(reference, reference_step, reference_held, inputs, settings)
        variant_values = _run(candidate, variant_step, variant_held, inputs, settings)
        drifts: dict[str, PairStatistics] = {}
        for name in batch.tensors:
            try:
                drifts[name] = compare_tensors(reference_values[name], variant_values[pairs[name]])
            except ShapeDifferenceError as error:
                differing.append(f"{name}: {error}")
        del variant_values
        replayable = [name for name in drifts if name in variant_floats]
        local: dict[str, float] = {}
        try:
            replayed = candidate.run(
                replayable,
                inputs,
                settings,
                fed={
                    name: reference_values[name].astype(variant_types[name], copy=False)
                    for name in batch.frontier
                },
            )
        except ModelLoadError as error:
            replay_error = replay_error or str(error)
        else:
            local = _local_errors(replayable, reference_values, replayed)
            del replayed
        for name, statistics in drifts.items():
            measured[name] = (statistics, local.get(name, math.nan))
        del reference_values
        for name in reference_step.releases:
            reference_held.pop(name, None)
        for name in variant_step.releases:
            variant_held.pop(name, None)

    drifts_in_order = [
        _drift(reference, name, pairs[name], *measured[name])
        for name in reference.activations
        if name in measured
    ]
    cut_in_reference = set(cuttable)
    failures = {
        drift.tensor: prior.failures_read_by(
            initializers_read(
                reference.segment(drift.tensor, cut_in_reference), reference.initializers
            ),
            initializers_read(candidate.segment(drift.tensor, cuttable), candidate.initializers),
        )
        for drift in drifts_in_order
    }
    drifts_in_order = [
        dataclasses.replace(
            drift,
            precision=segment_precision(
                candidate.segment(drift.tensor, cuttable), candidate.initializers, variant_types
            ),
        )
        for drift in drifts_in_order
    ]
    matched, noise = assess(drifts_in_order, options.damage_ratio, failures)
    placed = {weight for names in failures.values() for weight in names}
    compared_in_variant = {drift.variant_tensor for drift in matched} | set(measured)
    differing_names = {entry.split(": ", 1)[0] for entry in differing}
    order = {name: index for index, name in enumerate(reference.activations)}
    localization = Localization(
        graph=graph,
        variant=variant,
        optimization_level=options.graph_optimization_level,
        matched=matched,
        unmatched_reference=tuple(
            sorted({*unmatched_reference, *differing_names}, key=order.__getitem__)
        ),
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
        instrumented_runs=len(plan.batches),
        damage_ratio=options.damage_ratio,
        noise=noise,
        weights_checked=weights is not None,
        unplaced_weight_failures=tuple(name for name in prior.failed if name not in placed),
        differing_shapes=tuple(differing),
        memory_mb=budget,
        largest_batch_mb=plan.largest_bytes / MB,
        replay_error=replay_error,
    )
    return dataclasses.replace(
        localization,
        sources=_sources(localization, reference, candidate, cuttable, prior),
    )


@dataclass(frozen=True)
class _Plan:
    batches: tuple[Batch, ...]
    reference_steps: tuple[Step, ...]
    variant_steps: tuple[Step, ...]
    largest_bytes: int

    @property
    def steps(self) -> tuple[tuple[Batch, ...], tuple[Step, ...], tuple[Step, ...]]:
        return self.batches, self.reference_steps, self.variant_steps


def _plan(
    reference: InstrumentableModel,
    candidate: InstrumentableModel,
    pairs: Mapping[str, str],
    frontiers: Mapping[str, Sequence[str]],
    feedable: tuple[set[str], set[str]],
    sizes: Mapping[str, int],
    budget_bytes: int,
    max_tensors: int | None,
) -> _Plan:
    """Batches within the budget, counting the values held from one batch to the next (planned
    again with smaller batches where holding them overshot it; a single tensor larger than the
    budget is run on its own all the same)."""
    unknown = max(sizes.values(), default=0)
    usable = budget_bytes
    for _ in range(MAX_PLANS):
        batches = tuple(plan_batches(list(pairs), frontiers, sizes, usable, max_tensors))
        reference_steps = plan_runs(
            [[*batch.tensors, *batch.frontier] for batch in batches],
            reference.nodes,
            reference.producer,
            feedable[0],
            reference.reads,
        )
        variant_steps = plan_runs(
            [[pairs[name] for name in batch.tensors] for batch in batches],
            candidate.nodes,
            candidate.producer,
            feedable[1],
            candidate.reads,
        )
        # The variant's values have the reference's shapes where the names agree.
        largest = max(
            (
                a + b
                for a, b in zip(
                    held_bytes(reference_steps, sizes, unknown),
                    held_bytes(variant_steps, sizes, unknown),
                    strict=True,
                )
            ),
            default=0,
        )
        if largest <= budget_bytes or len(batches) == len(pairs):
            break
        usable = max(1, int(usable * budget_bytes / largest))
    return _Plan(batches, tuple(reference_steps), tuple(variant_steps), largest)


def _run(
    model: InstrumentableModel,
    step: Step,
    held: dict[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    settings: SessionSettings,
) -> dict[str, np.ndarray]:
    """One model's values for a batch: what its run computes, and what it read from ``held``
    (to which it adds what later runs read)."""
    read = {name: held[name] for name in step.reads}
    values = {**read, **model.run(step.exposes, inputs, settings, fed=read)}
    held.update({name: values[name] for name in step.keeps})
    return values


def _local_errors(
    names: Sequence[str],
    reference_values: Mapping[str, np.ndarray],
    replayed: Mapping[str, np.ndarray],
) -> dict[str, float]:
    """Each tensor's rel_l2 when only its own segment runs in the variant."""
    local = {}
    for name in names:
        try:
            statistics = compare_tensors(reference_values[name], replayed[name], rel_l2_only=True)
        except ShapeDifferenceError:
            local[name] = math.inf
            continue
        local[name] = math.nan if statistics.masked else statistics.rel_l2
    return local


def _drift(
    reference: InstrumentableModel,
    name: str,
    variant_name: str,
    statistics: PairStatistics,
    local_rel_l2: float,
) -> TensorDrift:
    depth = reference.producer[name]
    node = reference.nodes[depth]
    return TensorDrift(
        tensor=name,
        node=node.name,
        op_type=node.op_type,
        depth=depth,
        max_abs=statistics.max_abs,
        mean_abs=statistics.mean_abs,
        rel_l2=statistics.rel_l2,
        sqnr_db=sqnr_db(statistics.rel_l2),
        cosine=statistics.cosine,
        local_rel_l2=local_rel_l2,
        variant_tensor=variant_name,
        shape=statistics.shape,
        nonfinite_in_variant=statistics.nonfinite_in_variant,
        fill_fraction=statistics.fill_fraction,
        masked=statistics.masked,
    )


def _sources(
    localization: Localization,
    reference: InstrumentableModel,
    candidate: InstrumentableModel,
    cuttable: set[str],
    prior: WeightPrior,
) -> dict[str, tuple[WeightSource, ...]]:
    """The stored weights behind every damaged tensor and the top-ranked ones."""
    wanted = {drift.tensor: None for drift in localization.damaged()}
    wanted.update({drift.tensor: None for drift in localization.top(localization.top_n)})
    sources = {}
    for tensor in wanted:
        found = weight_sources(
            candidate.segment(tensor, cuttable),
            candidate.initializers,
            initializers_read(reference.segment(tensor, cuttable), reference.initializers),
            prior,
        )
        if found:
            sources[tensor] = found
    return sources
