"""The ``[suite.streaming]`` table: how a stateful graph is driven over chunks (chunk size,
context, state inputs and outputs, constants, the signal) and the limits per tier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.tables import ConfigError, check_keys
from pytest_onnxparity.config.tolerances import (
    TIERS,
    TOLERANCE_KEYS,
    Tolerance,
    ToleranceError,
    ToleranceLayer,
    validate_layer,
)
from pytest_onnxparity.onnxfile.signature import TensorSpec

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


SIGNAL_KINDS = ("speech-like", "noise", "sine", "silence")


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
