"""Streaming: run a stateful graph over a sequence of chunks, carrying its state from call to
call, and compare a variant's per-chunk outputs with the reference's.

Voice-activity detectors such as silero-vad take one chunk of audio and a recurrent state and
return a speech probability and the next state; a one-shot comparison on random inputs says
little about them, because what users see is the probability over a stream, with each call's
state coming from the previous call. :func:`run_stream` drives a graph the way a streaming
wrapper does (``context`` samples of the previous window prepended to each chunk, the state
outputs fed back into the state inputs, constants such as the sample rate fed every call), and
:func:`compare_streams` gates the variant's per-chunk outputs, each side carrying its own state,
with the ordinary tolerances plus the agreement of thresholded decisions.

Pure numpy: the caller hands in a ``run(arrays) -> outputs`` callable per graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_onnxparity.compare.gates import GateOutcome, failure_message
from pytest_onnxparity.compare.parity import ParityResult, compare
from pytest_onnxparity.config.tolerances import (
    Tolerance,
)
from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.speech.streaming.config import DECISION_KEY, StreamingError, StreamingOptions

RunFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class StreamRun:
    """What one graph returned over a stream: each compared output stacked as [chunks, ...],
    and the state fed to each call (for replaying another graph on this one's states)."""

    outputs: Mapping[str, np.ndarray]
    states: tuple[Mapping[str, np.ndarray], ...]


def run_stream(
    run: RunFn,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    options: StreamingOptions,
    signal: np.ndarray,
    forced_states: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> StreamRun:
    """Call ``run`` once per chunk of ``signal``, carrying state outputs into state inputs.

    With ``forced_states`` each call gets the given state instead of its own previous one (the
    reference's), which measures the error of one step apart from the error carried in the
    state. ``inputs``/``outputs`` are the graph's signature.
    """
    compared = compared_outputs(options, outputs)
    state = {name: initial_state(name, inputs, options) for name in options.state_pairs}
    fixed = _fixed_inputs(inputs, options)
    chunk_spec = _spec(inputs, options.chunk_input)
    context = np.zeros(options.context, np.float32)
    collected: dict[str, list[np.ndarray]] = {name: [] for name in compared}
    states = []
    for index in range(options.chunks):
        chunk = signal[index * options.chunk_size : (index + 1) * options.chunk_size]
        window = np.concatenate([context, chunk]).astype(np.float32)
        if forced_states is not None:
            state = dict(forced_states[index])
        states.append(state)
        arrays = {options.chunk_input: _shaped_window(window, chunk_spec), **state, **fixed}
        returned = run(arrays)
        for name in compared:
            collected[name].append(np.asarray(returned[name]))
        state = {name: np.asarray(returned[output]) for name, output in options.state_pairs.items()}
        if options.context:
            context = window[-options.context :]
    return StreamRun(
        outputs={name: np.stack(values) for name, values in collected.items()},
        states=tuple(states),
    )


def compared_outputs(options: StreamingOptions, outputs: Sequence[TensorSpec]) -> tuple[str, ...]:
    """The outputs gated chunk by chunk: ``options.outputs``, else every non-state output."""
    names = [spec.name for spec in outputs]
    if options.outputs:
        missing = [name for name in options.outputs if name not in names]
        if missing:
            raise StreamingError(
                f"streaming outputs {missing} are not outputs of the graph (it has {names}); "
                "fix outputs in [suite.streaming]"
            )
        return options.outputs
    states = set(options.state_pairs.values())
    return tuple(name for name in names if name not in states)


def initial_state(name: str, inputs: Sequence[TensorSpec], options: StreamingOptions) -> np.ndarray:
    """Zeros shaped by ``state_shapes``, else by the graph's input with dynamic dims as 1."""
    spec = _spec(inputs, name)
    dtype = _float_dtype(spec)
    if name in options.state_shapes:
        return np.zeros(options.state_shapes[name], dtype)
    if spec.shape is None:
        raise StreamingError(
            f"state input {name!r} has no declared shape; give its shape in [suite.streaming] "
            f"state_shapes = {{ {name} = [...] }}"
        )
    return np.zeros([d if isinstance(d, int) else 1 for d in spec.shape], dtype)


def check_streamable(
    inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], options: StreamingOptions
) -> None:
    """Raise :class:`StreamingError` naming what a variant lacks to be streamed like the
    reference: the chunk input, a state input or output, or a value for another input."""
    input_names = [spec.name for spec in inputs]
    output_names = [spec.name for spec in outputs]
    if options.chunk_input not in input_names:
        raise StreamingError(
            f"the graph has no chunk input {options.chunk_input!r} (inputs {input_names}); set "
            "chunk_input in [suite.streaming]"
        )
    for state_input, state_output in options.state_pairs.items():
        if state_input not in input_names or state_output not in output_names:
            raise StreamingError(
                f"the graph does not carry state {state_input!r} -> {state_output!r} (inputs "
                f"{input_names}, outputs {output_names}); fix state_pairs in [suite.streaming]"
            )
    _fixed_inputs(inputs, options)


def _fixed_inputs(inputs: Sequence[TensorSpec], options: StreamingOptions) -> dict[str, Any]:
    """Constant inputs the graph takes (a constant it does not take is not fed)."""
    fixed = {}
    for spec in inputs:
        if spec.name == options.chunk_input or spec.name in options.state_pairs:
            continue
        if spec.name not in options.constants:
            raise StreamingError(
                f"graph input {spec.name!r} is neither the chunk input, a state input nor a "
                f"constant; give it a value in [suite.streaming] inputs = {{ {spec.name} = ... }}"
            )
        shape = [d if isinstance(d, int) else 1 for d in spec.shape or ()]
        dtype = np.float32 if spec.dtype == "bfloat16" else np.dtype(spec.dtype)
        fixed[spec.name] = np.full(shape, options.constants[spec.name], dtype)
    return fixed


def _shaped_window(window: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The window with leading axes of 1 to the input's rank (samples are on the last axis)."""
    rank = len(spec.shape) if spec.shape is not None else 2
    return window.reshape((1,) * max(rank - 1, 0) + (-1,)).astype(_float_dtype(spec))


def _float_dtype(spec: TensorSpec) -> Any:
    return np.float32 if spec.dtype in ("bfloat16", "float32") else np.dtype(spec.dtype)


def _spec(specs: Sequence[TensorSpec], name: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise StreamingError(
        f"the graph has no input {name!r} (inputs {[spec.name for spec in specs]}); fix "
        "[suite.streaming]"
    )


@dataclass(frozen=True)
class DecisionAgreement:
    """How often ``output > threshold`` is the same on both sides, over the chunks."""

    output: str
    threshold: float
    agreement: float
    disagreeing_chunks: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "threshold": self.threshold,
            "agreement": self.agreement,
            "disagreeing_chunks": list(self.disagreeing_chunks),
        }


@dataclass(frozen=True)
class StreamComparison:
    """A variant's stream against the reference's: numeric gates over [chunks, ...] outputs,
    decision agreement, and the error of one step on the reference's states."""

    parity: ParityResult
    decisions: tuple[DecisionAgreement, ...]
    decision_gates: tuple[GateOutcome, ...]
    step_max_abs: Mapping[str, float | None]
    chunk_size: int
    sample_rate: int

    @property
    def passed(self) -> bool:
        return self.parity.passed and all(gate.passed for gate in self.decision_gates)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "parity": self.parity.to_json(),
            "decisions": [d.to_json() for d in self.decisions],
            "decision_gates": [g.to_json() for g in self.decision_gates],
            "step_max_abs": dict(self.step_max_abs),
        }

    def failure_text(self, title: str, hint: str) -> str:
        """Each failed gate, the worst chunk with the time it starts, and the next step."""
        numeric_failed = [gate for gate in self.parity.gates if not gate.passed]
        failed_decisions = [gate for gate in self.decision_gates if not gate.passed]
        count = len(numeric_failed) + len(failed_decisions)
        lines = failure_message(title, self.parity.stats, numeric_failed, hint).splitlines()
        lines[0] = f"{title}: {count} gate(s) failed"
        extra = []
        for gate in failed_decisions:
            decision = next(d for d in self.decisions if d.output == gate.output)
            shown = ", ".join(str(c) for c in decision.disagreeing_chunks[:8])
            more = "…" if len(decision.disagreeing_chunks) > 8 else ""
            extra.append(
                f"  output {gate.output!r}: decisions (> {decision.threshold:g}) agree on "
                f"{gate.value:.4g} of chunks, limit >= {gate.limit:g} (chunks {shown}{more} "
                "differ)"
            )
        for stats in self.parity.stats:
            if stats.worst is None or not any(g.output == stats.output for g in numeric_failed):
                continue
            chunk = stats.worst.index[0]
            start = chunk * self.chunk_size / self.sample_rate
            step = self.step_max_abs.get(stats.output)
            where = (
                f"  worst chunk of {stats.output!r}: #{chunk} (from {start:.2f} s): reference="
                f"{stats.worst.reference:.6g} variant={stats.worst.variant:.6g}"
            )
            if step is not None:
                cause = (
                    "the error builds up in the carried state"
                    if step < 0.5 * stats.max_abs
                    else "each step differs, not only the carried state"
                )
                where += (
                    f"; fed the reference's state every chunk, its largest error is "
                    f"{step:.3g} ({cause})"
                )
            extra.append(where)
        # After the failed gates, before the worst element and histogram lines.
        head = 1 + len(numeric_failed)
        return "\n".join([*lines[:head], *extra, *lines[head:]])


def compare_streams(
    reference: StreamRun,
    variant: StreamRun,
    tolerance_for: Callable[[str], Tolerance],
    threshold: float | None,
    decision_limit: float | None,
    step: StreamRun | None = None,
    chunk_size: int = 1,
    sample_rate: int = 1,
) -> StreamComparison:
    """Gate ``variant``'s stacked outputs against ``reference``'s (tolerances per output), and
    decisions at ``threshold`` with ``decision_limit``. ``step`` is the variant replayed on the
    reference's states (its error is reported, not gated)."""
    parity = compare(reference.outputs, variant.outputs, tolerance_for)
    decisions = []
    gates = []
    if threshold is not None:
        for name, expected in reference.outputs.items():
            if not np.issubdtype(expected.dtype, np.floating):
                continue
            ref_on = expected.reshape(len(expected), -1) > threshold
            var_on = variant.outputs[name].reshape(len(expected), -1) > threshold
            differs = np.flatnonzero((ref_on != var_on).any(axis=1))
            agreement = 1.0 - len(differs) / max(len(expected), 1)
            decisions.append(
                DecisionAgreement(name, threshold, agreement, tuple(int(i) for i in differs))
            )
            if decision_limit is not None:
                gates.append(
                    GateOutcome(
                        name, DECISION_KEY, agreement, decision_limit, agreement >= decision_limit
                    )
                )
    step_max_abs: dict[str, float | None] = {}
    if step is not None:
        for name, expected in reference.outputs.items():
            with np.errstate(invalid="ignore", over="ignore"):
                difference = np.abs(
                    np.asarray(step.outputs[name], np.float64) - np.asarray(expected, np.float64)
                )
            # A NaN/Inf on either side: the replayed error is not measurable (null, not 0).
            finite = bool(np.isfinite(difference).all())
            step_max_abs[name] = (
                (float(difference.max()) if difference.size else 0.0) if finite else None
            )
    return StreamComparison(
        parity=parity,
        decisions=tuple(decisions),
        decision_gates=tuple(gates),
        step_max_abs=step_max_abs,
        chunk_size=chunk_size,
        sample_rate=sample_rate,
    )
