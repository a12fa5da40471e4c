"""The checks a suite adds to each variant of a graph, run through the engine: pooled
embeddings (``[suite.pooled]``) and streaming (``[suite.streaming]``).

Each returns a :class:`CheckResult` (the glue turns it into a test). Problems with the user's
files or config become a failed result with a one-line message, never an exception. Limits come
from the suite's tier table of the variant's tier, overridden by ``--parity-tolerance`` exactly
as for ordinary outputs (scopes name the output ``pooled``, or the streamed output's name).
No pytest here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_onnxparity.compare.pooling import (
    POOLED_OUTPUT,
    PooledOptions,
    PoolingError,
    compare_pooled,
    pool,
)
from pytest_onnxparity.references.onnx import OnnxReference
from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.views import REAL, SYNTHESIZED
from pytest_onnxparity.run.cases import INPUT_PROBLEMS
from pytest_onnxparity.runtime.inputs import InputSet
from pytest_onnxparity.speech.audio.signals import load_signal
from pytest_onnxparity.speech.streaming.config import StreamingError, StreamingOptions
from pytest_onnxparity.speech.streaming.stream import (
    StreamRun,
    check_streamable,
    compare_streams,
    run_stream,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pytest_onnxparity.config.tolerances import Tolerance
    from pytest_onnxparity.export.folder import Graph
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.run.settings import Settings

POOLED_CHECK = "pooled"
STREAMING_CHECK = "streaming"


def with_command_line(
    settings: Settings, base: Tolerance, tier: str, graph: str, variant: str, output: str
) -> Tolerance:
    """``base`` with the ``--parity-tolerance`` values that apply to this output on top, the
    narrower scope winning (as :meth:`Settings.tolerance` does for ordinary outputs)."""
    matching = [t for t in settings.cli_tolerances if t.applies_to(tier, graph, variant, output)]
    matching.sort(key=lambda scoped: scoped.specificity)
    return base.overlaid({scoped.key: scoped.value for scoped in matching})


# --------------------------------------------------------------------------------------------
# Pooled embeddings
# --------------------------------------------------------------------------------------------


def pooled_check(
    engine: ParityEngine, graph: Graph, variant_tag: str, options: PooledOptions
) -> CheckResult:
    """Pool the reference's and the variant's ``options.output`` on every input set of the
    graph and gate the pooled vectors, sentence by sentence: the real input sets and the
    synthesized ones each on their own, never one worst case over both."""
    variant = graph.file(variant_tag)
    title = (
        f"{graph.name}[{variant_tag}] vs {engine.reference_label(graph)}: pooled embeddings "
        f"({options.describe()})"
    )
    try:
        runner = engine.runner(variant)
        names = [spec.name for spec in runner.outputs]
        if options.output not in names:
            raise PoolingError(
                f"{variant.relpath} has no output {options.output!r} (outputs {names}); set "
                "output (and pooling) in [tool.onnxparity.suite.pooled]"
            )
        rows: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[str]]] = {}
        for inputs in engine.input_sets(graph):
            mask = inputs.arrays.get(options.mask) if options.mask else None
            expected = engine.reference_outputs(graph, inputs)[options.output]
            actual = runner.run(inputs.arrays)[options.output]
            group = rows.setdefault(SYNTHESIZED if inputs.synthesized else REAL, ([], [], []))
            group[0].append(pool(expected, mask, options))
            group[1].append(pool(actual, mask, options))
            group[2].extend(f"{inputs.name}[{row}]" for row in range(len(group[0][-1])))
        tolerance = with_command_line(
            engine.settings,
            options.tolerance(variant.tier),
            variant.tier,
            graph.name,
            variant_tag,
            POOLED_OUTPUT,
        )
        comparisons = {
            origin: compare_pooled(np.concatenate(ref), np.concatenate(var), tolerance, labels)
            for origin, (ref, var, labels) in sorted(rows.items())
        }
    except (*INPUT_PROBLEMS, PoolingError) as problem:
        return CheckResult(POOLED_CHECK, graph.name, variant_tag, False, f"{title}: {problem}")
    passed = all(comparison.passed for comparison in comparisons.values())
    messages = []
    for origin, comparison in comparisons.items():
        if comparison.passed:
            continue
        key, value = _passing_limit(comparison.gates)
        hint = (
            f"if this drift is acceptable, raise the limit: "
            f"[tool.onnxparity.suite.pooled.tiers.{variant.tier}] {key} = {value}, or "
            f"--parity-tolerance {graph.name}/{variant_tag}/{POOLED_OUTPUT}:{key}={value}"
        )
        if variant.tier == "int8":
            hint += "; dynamic int8 with per-tensor weight scales often needs per_channel=True"
        origin_title = f"{title} on {origin} inputs" if len(comparisons) > 1 else title
        messages.append(comparison.failure_text(origin_title, hint))
    by_set: dict[str, float | None] = {}
    for comparison in comparisons.values():
        for label, cosine in zip(comparison.labels, comparison.cosines, strict=True):
            name = label.rpartition("[")[0]
            worst = by_set.get(name, 1.0)
            by_set[name] = None if worst is None or not np.isfinite(cosine) else min(worst, cosine)
    headline = comparisons.get(REAL) or comparisons[SYNTHESIZED]
    details = {
        "pooling": options.to_json(),
        "tolerance": tolerance.to_json(),
        **headline.to_json(),
        "inputs_from": REAL if REAL in comparisons else SYNTHESIZED,
        "by_origin": {origin: c.to_json() for origin, c in comparisons.items()},
        "min_cosine_by_input_set": by_set,
    }
    return CheckResult(
        POOLED_CHECK, graph.name, variant_tag, passed, "\n".join(messages), details=details
    )


def _passing_limit(gates: Any) -> tuple[str, str]:
    """A failed gate's key (the cosine first: it is the one users read) and a round limit that
    would just have let it pass."""
    from pytest_onnxparity.compare.gates import round_up

    for gate in sorted(gates, key=lambda gate: gate.metric != "min_cosine"):
        if not gate.passed and gate.value is not None:
            if gate.metric.startswith("min_"):
                return gate.metric, f"{np.floor(gate.value * 1e4) / 1e4:g}"
            return gate.metric, f"{round_up(gate.value):g}"
    return "<metric>", "<limit>"


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


@dataclass
class StreamCache:
    """Per-process memo of the signal and each graph's reference stream (computed once for all
    of its variants)."""

    signals: dict[int, np.ndarray] = field(default_factory=dict)
    references: dict[str, StreamRun] = field(default_factory=dict)

    def signal(self, options: StreamingOptions) -> np.ndarray:
        key = hash(repr(options.to_json()))
        if key not in self.signals:
            self.signals[key] = load_signal(options)
        return self.signals[key]

    def release(self, graph: str) -> None:
        self.references.pop(graph, None)


def streaming_check(
    engine: ParityEngine,
    graph: Graph,
    variant_tag: str,
    options: StreamingOptions,
    cache: StreamCache,
) -> CheckResult:
    """Stream the signal through the reference and the variant, each carrying its own state,
    and gate the variant's per-chunk outputs; the variant is also replayed on the reference's
    states, to tell an error of one step from one that builds up in the state."""
    variant = graph.file(variant_tag)
    title = (
        f"{graph.name}[{variant_tag}] vs {engine.reference_label(graph)} streamed over "
        f"{options.describe()}"
    )
    try:
        reference_runner = engine.runner(graph.reference_file)
        runner = engine.runner(variant)
        check_streamable(runner.inputs, runner.outputs, options)
        signal = cache.signal(options)
        if graph.name not in cache.references:
            cache.references[graph.name] = run_stream(
                _reference_call(engine, graph),
                reference_runner.inputs,
                reference_runner.outputs,
                options,
                signal,
            )
        reference = cache.references[graph.name]
        free = run_stream(runner.run, runner.inputs, runner.outputs, options, signal)
        forced = run_stream(
            runner.run, runner.inputs, runner.outputs, options, signal, reference.states
        )
        base = options.tolerance(variant.tier)
        comparison = compare_streams(
            reference,
            free,
            lambda output: with_command_line(
                engine.settings, base, variant.tier, graph.name, variant_tag, output
            ),
            threshold=options.threshold,
            decision_limit=options.decision_limits.get(variant.tier),
            step=forced,
            chunk_size=options.chunk_size,
            sample_rate=options.sample_rate,
        )
    except (*INPUT_PROBLEMS, StreamingError) as problem:
        return CheckResult(STREAMING_CHECK, graph.name, variant_tag, False, f"{title}: {problem}")
    message = ""
    if not comparison.passed:
        message = comparison.failure_text(
            title,
            f"if this drift is acceptable, raise the limit in "
            f"[tool.onnxparity.suite.streaming.tiers.{variant.tier}] (max_abs, mean_abs, "
            f"min_decision_agreement …) or with --parity-tolerance "
            f"{graph.name}/{variant_tag}/<output>:max_abs=<limit>; if the variant is another "
            "model, not an export of this one, exclude it or give it its own graph name",
        )
    details = {"streaming": options.to_json(), **comparison.to_json()}
    return CheckResult(
        STREAMING_CHECK, graph.name, variant_tag, comparison.passed, message, details=details
    )


def _reference_call(engine: ParityEngine, graph: Graph) -> Any:
    """The graph's reference (its fp32 file, or what ``[references]`` chose) as a call on
    named arrays (references cache outputs by set name and array digest, so one name serves).
    An ONNX reference runs its session directly: step after step, keeping its memory arena."""
    reference = engine.reference(graph)
    if isinstance(reference, OnnxReference):
        return reference.runner.run

    def call(arrays: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return reference.outputs(InputSet("stream", "stream", None, {}, dict(arrays)))

    return call
