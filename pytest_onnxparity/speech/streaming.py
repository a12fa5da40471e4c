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

Pure numpy: the caller hands in a ``run(arrays) -> outputs`` callable per graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.compare.gates import GateOutcome, failure_message
from pytest_onnxparity.compare.parity import ParityResult, compare
from pytest_onnxparity.config.project import ConfigError, check_keys
from pytest_onnxparity.config.tolerances import (
    TIERS,
    TOLERANCE_KEYS,
    Tolerance,
    ToleranceError,
    ToleranceLayer,
    validate_layer,
)
from pytest_onnxparity.onnxfile.signature import TensorSpec

SIGNAL_KINDS = ("speech-like", "noise", "sine", "silence")
DECISION_KEY = "min_decision_agreement"
STREAMING_KEYS = (
    "chunk_input",
    "chunk_size",
    "context",
    "chunks",
    "sample_rate",
    "signal",
    "signal_file",
    "seed",
    "state_pairs",
    "state_shapes",
    "inputs",
    "outputs",
    "threshold",
    "one_shot",
    "tiers",
)

RunFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


class StreamingError(ValueError):
    """A graph cannot be streamed as configured; the message names the input and the fix."""


@dataclass(frozen=True)
class StreamingOptions:
    """The validated ``[suite.streaming]`` table.

    Each call feeds ``chunk_input`` with ``context`` samples of the previous window followed by
    ``chunk_size`` new samples of the signal, each state input (a key of ``state_pairs``) with
    the state output it names from the previous call (zeros at the first call, shaped by
    ``state_shapes`` or by the graph's input with dynamic dims as 1), and each input named in
    ``constants`` with that value. ``outputs`` are compared chunk by chunk (default: every
    output that is not a state); ``threshold`` turns them into decisions whose agreement is
    gated by ``min_decision_agreement`` of the tier. ``one_shot`` keeps the ordinary
    synthesized parity tests of streamed graphs (off: random one-shot inputs rarely fit them).
    """

    state_pairs: Mapping[str, str]
    chunk_input: str = "input"
    chunk_size: int = 512
    context: int = 0
    chunks: int = 64
    sample_rate: int = 16_000
    signal: str = "speech-like"
    signal_file: Path | None = None
    seed: int = 0
    state_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    constants: Mapping[str, float] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    threshold: float | None = 0.5
    one_shot: bool = False
    tiers: Mapping[str, ToleranceLayer] = field(default_factory=dict)
    decision_limits: Mapping[str, float] = field(default_factory=dict)

    @property
    def window(self) -> int:
        """Samples fed per call: the carried context and the new chunk."""
        return self.context + self.chunk_size

    @property
    def duration_s(self) -> float:
        return self.chunks * self.chunk_size / self.sample_rate

    def tolerance(self, tier: str) -> Tolerance:
        """The limits of ``tier`` before command-line overrides; nothing is gated by default."""
        return Tolerance().overlaid(self.tiers.get(tier, {}))

    def streams(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> bool:
        """Whether a graph with this signature is a streamed graph: it takes the chunk input and
        every state input, and returns every state output."""
        input_names = {spec.name for spec in inputs}
        output_names = {spec.name for spec in outputs}
        return (
            self.chunk_input in input_names
            and set(self.state_pairs) <= input_names
            and set(self.state_pairs.values()) <= output_names
        )

    def describe(self) -> str:
        source = str(self.signal_file) if self.signal_file else f"{self.signal} signal"
        context = f" (+{self.context} context)" if self.context else ""
        return (
            f"{self.chunks} chunks of {self.chunk_size} samples{context}, {source}, "
            f"{self.duration_s:.2f} s at {self.sample_rate} Hz"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk_input": self.chunk_input,
            "chunk_size": self.chunk_size,
            "context": self.context,
            "chunks": self.chunks,
            "sample_rate": self.sample_rate,
            "signal": self.signal,
            "signal_file": None if self.signal_file is None else str(self.signal_file),
            "seed": self.seed,
            "state_pairs": dict(self.state_pairs),
            "state_shapes": {name: list(shape) for name, shape in self.state_shapes.items()},
            "inputs": dict(self.constants),
            "outputs": list(self.outputs),
            "threshold": self.threshold,
            "one_shot": self.one_shot,
        }


def parse_streaming_options(
    raw: Mapping[str, Any], where: str, base_dir: Path | None = None
) -> StreamingOptions:
    """Validate a raw ``[suite.streaming]`` table; ``where`` names it in errors.

    A relative ``signal_file`` is resolved against ``base_dir`` (the project root).
    """
    check_keys(raw, STREAMING_KEYS, where)
    pairs = raw.get("state_pairs")
    if not isinstance(pairs, Mapping) or not pairs:
        raise ConfigError(
            f"{where}: state_pairs must name each state input and the output that feeds it, "
            'e.g. state_pairs = { state = "stateN" }'
        )
    for name, output in pairs.items():
        if not isinstance(output, str) or not output:
            raise ConfigError(f"{where}: state_pairs.{name} must be an output name, got {output!r}")
    signal = raw.get("signal", "speech-like")
    if signal not in SIGNAL_KINDS:
        raise ConfigError(
            f"{where}: signal {signal!r} is not one of {', '.join(SIGNAL_KINDS)} "
            "(or give signal_file = PATH to a wav/flac/npy file)"
        )
    signal_file = raw.get("signal_file")
    if signal_file is not None:
        if not isinstance(signal_file, str) or not signal_file:
            raise ConfigError(f"{where}: signal_file must be a path string, got {signal_file!r}")
        signal_file = Path(signal_file)
        if base_dir is not None and not signal_file.is_absolute():
            signal_file = base_dir / signal_file
    threshold = raw.get("threshold", 0.5)
    if threshold is not None and not _is_number(threshold):
        raise ConfigError(f"{where}: threshold must be a number, got {threshold!r}")
    one_shot = raw.get("one_shot", False)
    if not isinstance(one_shot, bool):
        raise ConfigError(f"{where}: one_shot must be true or false, got {one_shot!r}")
    tiers, decisions = _tiers(raw.get("tiers", {}), f"{where} tiers")
    return StreamingOptions(
        state_pairs=dict(pairs),
        chunk_input=_string(raw, "chunk_input", "input", where),
        chunk_size=_integer(raw, "chunk_size", 512, where, minimum=1),
        context=_integer(raw, "context", 0, where, minimum=0),
        chunks=_integer(raw, "chunks", 64, where, minimum=1),
        sample_rate=_integer(raw, "sample_rate", 16_000, where, minimum=1),
        signal=signal,
        signal_file=signal_file,
        seed=_integer(raw, "seed", 0, where, minimum=0),
        state_shapes=_state_shapes(raw.get("state_shapes", {}), pairs, where),
        constants=_constants(raw.get("inputs", {}), where),
        outputs=tuple(_strings(raw.get("outputs", []), f"{where}: outputs")),
        threshold=None if threshold is None else float(threshold),
        one_shot=one_shot,
        tiers=tiers,
        decision_limits=decisions,
    )


def _tiers(raw: Any, where: str) -> tuple[dict[str, ToleranceLayer], dict[str, float]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table of tiers, got {raw!r}")
    tiers: dict[str, ToleranceLayer] = {}
    decisions: dict[str, float] = {}
    for tier, table in raw.items():
        tier_where = f"{where}.{tier}"
        if tier not in TIERS:
            raise ConfigError(f"{where}: unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
        check_keys(table, (*TOLERANCE_KEYS, DECISION_KEY), tier_where)
        limits = {key: value for key, value in table.items() if key != DECISION_KEY}
        try:
            tiers[tier] = validate_layer(limits, tier_where)
        except ToleranceError as error:
            raise ConfigError(str(error)) from None
        if DECISION_KEY in table:
            value = table[DECISION_KEY]
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{tier_where}: {DECISION_KEY} must be in [0, 1], got {value!r}")
            decisions[tier] = float(value)
    return tiers, decisions


def _state_shapes(raw: Any, pairs: Mapping[str, str], where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: state_shapes must be a table of INPUT = [dims], got {raw!r}")
    shapes = {}
    for name, dims in raw.items():
        if name not in pairs:
            raise ConfigError(
                f"{where}: state_shapes.{name} names no state input; state inputs: "
                f"{', '.join(pairs)}"
            )
        if not isinstance(dims, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims
        ):
            raise ConfigError(
                f"{where}: state_shapes.{name} must be a list of sizes >= 1, got {dims!r}"
            )
        shapes[name] = tuple(dims)
    return shapes


def _constants(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: inputs must be a table of INPUT = number, got {raw!r}")
    for name, value in raw.items():
        if not _is_number(value):
            raise ConfigError(f"{where}: inputs.{name} must be a number, got {value!r}")
    return dict(raw)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _string(raw: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _integer(raw: Mapping[str, Any], key: str, default: int, where: str, minimum: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _strings(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise ConfigError(f"{where} must be a list of output names, got {raw!r}")
    return list(raw)


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------

# Formant centres (Hz) of five vowels: /a/, /i/, /u/, /e/, /o/.
VOWEL_FORMANTS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
)
FORMANT_BANDWIDTHS = (80.0, 100.0, 120.0)


def make_signal(kind: str, samples: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A seeded mono float32 signal of ``samples`` samples in [-1, 1].

    ``speech-like``: voiced syllables (a harmonic source at 100-180 Hz with vibrato, shaped by
    the formants of a vowel, under a smooth envelope) separated by short gaps and now and then a
    pause long enough to end a speech segment, over faint noise; a VAD reads it as speech with
    pauses. ``noise``: white noise at 0.1. ``sine``: a 440 Hz tone at 0.5. ``silence``: zeros.
    """
    rng = np.random.default_rng(seed)
    if kind == "silence":
        return np.zeros(samples, np.float32)
    if kind == "noise":
        return (rng.standard_normal(samples) * 0.1).clip(-1, 1).astype(np.float32)
    if kind == "sine":
        times = np.arange(samples) / sample_rate
        return (0.5 * np.sin(2 * np.pi * 440.0 * times)).astype(np.float32)
    if kind != "speech-like":
        raise StreamingError(f"unknown signal kind {kind!r}; choose one of {SIGNAL_KINDS}")
    return _speech_like(samples, sample_rate, rng)


def _speech_like(samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    clip = np.zeros(samples)
    position = int(0.4 * sample_rate)
    nyquist = sample_rate / 2
    while position < samples - sample_rate // 8:
        length = min(int(rng.uniform(0.12, 0.3) * sample_rate), samples - position)
        times = np.arange(length) / sample_rate
        vibrato = 1 + 0.08 * np.sin(2 * np.pi * rng.uniform(2, 5) * times)
        f0 = rng.uniform(100, 180) * vibrato
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        formants = VOWEL_FORMANTS[int(rng.integers(len(VOWEL_FORMANTS)))]
        voice = np.zeros(length)
        for harmonic in range(1, 40):
            frequency = harmonic * f0
            gain = sum(
                bandwidth**2 / ((frequency - centre) ** 2 + bandwidth**2)
                for centre, bandwidth in zip(formants, FORMANT_BANDWIDTHS, strict=True)
            )
            # A glottal source falls off with frequency; harmonics near Nyquist are left out.
            voice += np.where(frequency < nyquist - 500, gain / harmonic, 0.0) * np.sin(
                harmonic * phase
            )
        envelope = np.hanning(length) ** 0.5
        peak = float(np.abs(voice).max()) or 1.0
        clip[position : position + length] += voice / peak * envelope * rng.uniform(0.3, 0.6)
        position += length + int(rng.uniform(0.02, 0.15) * sample_rate)
        if rng.random() < 0.15:
            position += int(0.6 * sample_rate)
    clip += rng.standard_normal(samples) * 0.003
    return clip.clip(-1, 1).astype(np.float32)


def load_signal(options: StreamingOptions) -> np.ndarray:
    """The stream's samples: ``signal_file`` (wav/flac resampled to ``sample_rate``, or a 1-D
    ``.npy``) cut or zero-padded to the stream's length, else :func:`make_signal`."""
    samples = options.chunks * options.chunk_size
    if options.signal_file is None:
        return make_signal(options.signal, samples, options.sample_rate, options.seed)
    path = options.signal_file
    if not path.is_file():
        raise StreamingError(f"signal_file {path}: no such file; give a wav, flac or npy file")
    if path.suffix == ".npy":
        audio = np.load(path, allow_pickle=False)
        if audio.ndim != 1 or audio.dtype.kind != "f":
            raise StreamingError(
                f"signal_file {path}: expected a 1-D float array, got {audio.dtype}"
                f"{list(audio.shape)}; save the mono samples with np.save"
            )
    else:
        from pytest_onnxparity.speech.clips import decode_audio, resample

        audio, rate = decode_audio(path, str(path))
        audio = resample(audio, rate, options.sample_rate)
    audio = np.asarray(audio, np.float32)[:samples]
    return np.pad(audio, (0, samples - len(audio)))


# --------------------------------------------------------------------------------------------
# Running a stream
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Comparing two streams
# --------------------------------------------------------------------------------------------


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
    step_max_abs: Mapping[str, float]
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
    step_max_abs = {}
    if step is not None:
        for name, expected in reference.outputs.items():
            difference = np.abs(
                np.asarray(step.outputs[name], np.float64) - np.asarray(expected, np.float64)
            )
            step_max_abs[name] = float(np.nanmax(difference)) if difference.size else 0.0
    return StreamComparison(
        parity=parity,
        decisions=tuple(decisions),
        decision_gates=tuple(gates),
        step_max_abs=step_max_abs,
        chunk_size=chunk_size,
        sample_rate=sample_rate,
    )
