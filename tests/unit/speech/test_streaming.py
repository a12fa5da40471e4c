"""Streaming core: the [suite.streaming] table, signals, running a stateful graph chunk by chunk,
and comparing two streams. The graphs here are numpy functions; silero-vad runs in
test_suites_plugin.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import Tolerance
from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.speech.audio.signals import load_signal, make_signal
from pytest_onnxparity.speech.streaming.config import (
    SIGNAL_KINDS,
    StreamingError,
    StreamingOptions,
    parse_streaming_options,
)
from pytest_onnxparity.speech.streaming.stream import (
    check_streamable,
    compare_streams,
    initial_state,
    run_stream,
)

WHERE = "suite.toml [suite] streaming"
INPUTS = (
    TensorSpec("input", "float32", ("batch", "samples")),
    TensorSpec("state", "float32", (2, "batch", 4)),
    TensorSpec("sr", "int64", ()),
)
OUTPUTS = (
    TensorSpec("output", "float32", ("batch", 1)),
    TensorSpec("stateN", "float32", (2, "batch", 4)),
)


def options(**changes: object) -> StreamingOptions:
    values: dict[str, object] = {
        "state_pairs": {"state": "stateN"},
        "chunk_size": 8,
        "context": 2,
        "chunks": 6,
        "constants": {"sr": 16_000},
        "tiers": {"fp32": {"max_abs": 1e-6}},
        "decision_limits": {"fp32": 1.0},
    }
    values.update(changes)
    return StreamingOptions(**values)  # type: ignore[arg-type]


class Accumulator:
    """A stateful toy VAD: the state leaks (x0.9) and adds each window's mean; the output
    squashes it. ``state_bias`` is a small error that builds up in the state, ``step_error`` one
    that each output has on its own. Records what it was fed."""

    def __init__(self, state_bias: float = 0.0, step_error: float = 0.0) -> None:
        self.state_bias = state_bias
        self.step_error = step_error
        self.calls: list[dict[str, np.ndarray]] = []

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append({name: np.array(value) for name, value in arrays.items()})
        state = arrays["state"] * 0.9 + float(np.mean(arrays["input"])) + self.state_bias
        probability = 1 / (1 + np.exp(-4 * state[0, :, :1])) + self.step_error
        return {"output": probability.astype(np.float32), "stateN": state.astype(np.float32)}


def test_a_table_without_state_pairs_is_an_error_with_an_example() -> None:
    with pytest.raises(ConfigError, match=re.escape('e.g. state_pairs = { state = "stateN" }')):
        parse_streaming_options({"chunk_size": 512}, WHERE)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"chunk": 3}, "unknown key 'chunk'; allowed keys: chunk_input, chunk_size"),
        ({"signal": "music"}, "signal 'music' is not one of speech-like, noise, sine, silence"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1, got 0"),
        ({"context": -1}, "context must be an integer >= 0, got -1"),
        ({"threshold": "high"}, "threshold must be a number, got 'high'"),
        ({"one_shot": 1}, "one_shot must be true or false, got 1"),
        ({"inputs": {"sr": "16k"}}, "inputs.sr must be a number, got '16k'"),
        ({"state_shapes": {"h": [1, 2]}}, "state_shapes.h names no state input"),
        ({"state_shapes": {"state": [2, 0]}}, "state_shapes.state must be a list of sizes >= 1"),
        ({"tiers": {"int3": {}}}, "unknown tier 'int3'; allowed: fp32, fp16, bf16, int8, int4"),
        ({"tiers": {"int8": {"max_err": 1}}}, "tiers.int8: unknown key 'max_err'"),
        (
            {"tiers": {"int8": {"min_decision_agreement": 2}}},
            "tiers.int8: min_decision_agreement must be in [0, 1], got 2",
        ),
    ],
)
def test_invalid_streaming_keys_are_errors_naming_the_table_and_key(
    raw: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_streaming_options({"state_pairs": {"state": "stateN"}, **raw}, WHERE)


def test_the_streaming_table_is_read_with_tiers_decisions_and_a_signal_file(
    tmp_path: Path,
) -> None:
    parsed = parse_streaming_options(
        {
            "state_pairs": {"state": "stateN"},
            "context": 64,
            "signal_file": "clip.wav",
            "inputs": {"sr": 16_000},
            "tiers": {"int8": {"max_abs": 0.05, "min_decision_agreement": 0.98}},
        },
        WHERE,
        base_dir=tmp_path,
    )

    assert parsed.signal_file == tmp_path / "clip.wav"
    assert parsed.window == 64 + 512
    assert parsed.tolerance("int8").limits() == {"max_abs": 0.05}
    assert parsed.tolerance("fp16").limits() == {}
    assert parsed.decision_limits == {"int8": 0.98}
    assert parsed.to_json()["inputs"] == {"sr": 16_000}


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_signals_are_seeded_and_within_full_scale(kind: str) -> None:
    first = make_signal(kind, 16_000, 16_000, seed=3)
    again = make_signal(kind, 16_000, 16_000, seed=3)

    assert first.dtype == np.float32 and first.shape == (16_000,)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first).max() <= 1.0


def test_the_speech_like_signal_has_syllables_and_pauses() -> None:
    signal = make_signal("speech-like", 4 * 16_000, 16_000, seed=0)
    energy = (signal.reshape(-1, 160) ** 2).mean(axis=1)  # 10 ms frames

    assert (energy > 1e-2).mean() > 0.3  # voiced
    assert (energy < 1e-4).mean() > 0.1  # near-silent gaps and pauses


def test_a_npy_signal_file_is_cut_or_padded_to_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "clip.npy"
    np.save(path, np.ones(20, np.float32))

    signal = load_signal(options(signal_file=path))

    assert signal.shape == (6 * 8,)
    assert signal[:20].sum() == 20 and not signal[20:].any()


def test_a_missing_or_malformed_signal_file_is_a_streaming_error(tmp_path: Path) -> None:
    with pytest.raises(StreamingError, match="no such file"):
        load_signal(options(signal_file=tmp_path / "none.wav"))
    np.save(tmp_path / "stereo.npy", np.ones((2, 4), np.float32))
    with pytest.raises(StreamingError, match="expected a 1-D float array"):
        load_signal(options(signal_file=tmp_path / "stereo.npy"))


def test_each_call_sees_the_context_then_the_chunk_and_the_previous_state() -> None:
    graph = Accumulator()
    signal = np.arange(48, dtype=np.float32)

    run = run_stream(graph, INPUTS, OUTPUTS, options(), signal)

    first, second = graph.calls[0], graph.calls[1]
    np.testing.assert_array_equal(first["input"], [[0, 0, *range(8)]])
    np.testing.assert_array_equal(second["input"], [[6, 7, *range(8, 16)]])
    assert first["state"].shape == (2, 1, 4) and not first["state"].any()
    np.testing.assert_array_equal(second["state"], graph(first)["stateN"])
    assert first["sr"].dtype == np.int64 and int(first["sr"]) == 16_000
    assert run.outputs["output"].shape == (6, 1, 1)
    assert set(run.outputs) == {"output"}  # states are carried, not compared
    assert len(run.states) == 6


def test_a_constant_the_graph_does_not_take_is_not_fed() -> None:
    graph = Accumulator()

    run_stream(graph, INPUTS[:2], OUTPUTS, options(), np.zeros(48, np.float32))

    assert "sr" not in graph.calls[0]


def test_forced_states_replace_the_carried_ones() -> None:
    reference = run_stream(Accumulator(), INPUTS, OUTPUTS, options(), np.ones(48, np.float32))
    graph = Accumulator(state_bias=1.0)

    run_stream(graph, INPUTS, OUTPUTS, options(), np.ones(48, np.float32), reference.states)

    for call, state in zip(graph.calls, reference.states, strict=True):
        np.testing.assert_array_equal(call["state"], state["state"])


def test_state_shapes_override_the_graph_declared_shape() -> None:
    state = initial_state("state", INPUTS, options(state_shapes={"state": [2, 3, 4]}))

    assert state.shape == (2, 3, 4)
    assert initial_state("state", INPUTS, options()).shape == (2, 1, 4)


@pytest.mark.parametrize(
    ("inputs", "outputs", "problem"),
    [
        (INPUTS[1:], OUTPUTS, "no chunk input 'input'"),
        (INPUTS, OUTPUTS[:1], "does not carry state 'state' -> 'stateN'"),
        (
            (*INPUTS, TensorSpec("h", "float32", (1,))),
            OUTPUTS,
            "graph input 'h' is neither the chunk input, a state input nor a constant",
        ),
    ],
)
def test_a_graph_that_cannot_be_streamed_is_explained(
    inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], problem: str
) -> None:
    with pytest.raises(StreamingError, match=re.escape(problem)):
        check_streamable(inputs, outputs, options())


def test_streams_detects_graphs_that_fit_the_table() -> None:
    assert options().streams(INPUTS, OUTPUTS)
    assert not options(chunk_input="audio").streams(INPUTS, OUTPUTS)


def _compare(variant: Accumulator, decision_limit: float | None = 1.0) -> object:
    opts = options(chunks=20)
    signal = (0.3 * np.sin(2 * np.pi * np.arange(160) / 80)).astype(np.float32)
    reference = run_stream(Accumulator(), INPUTS, OUTPUTS, opts, signal)
    free = run_stream(variant, INPUTS, OUTPUTS, opts, signal)
    step = run_stream(variant, INPUTS, OUTPUTS, opts, signal, reference.states)
    return compare_streams(
        reference,
        free,
        lambda _: Tolerance(max_abs=1e-6),
        threshold=0.5,
        decision_limit=decision_limit,
        step=step,
        chunk_size=8,
        sample_rate=16,
    )


def test_an_identical_stream_passes_every_gate() -> None:
    comparison = _compare(Accumulator())

    assert comparison.passed  # type: ignore[attr-defined]
    assert comparison.to_json()["decisions"][0]["agreement"] == 1.0  # type: ignore[attr-defined]


def test_an_error_that_builds_up_in_the_state_is_told_apart_from_a_step_error() -> None:
    drifting = _compare(Accumulator(state_bias=0.01))
    stepping = _compare(Accumulator(step_error=0.01))

    assert not drifting.passed and not stepping.passed  # type: ignore[attr-defined]
    drift_text = drifting.failure_text("vad[int8] vs fp32", "raise it")  # type: ignore[attr-defined]
    step_text = stepping.failure_text("vad[int8] vs fp32", "raise it")  # type: ignore[attr-defined]
    pytest.LineMatcher(drift_text.splitlines()).fnmatch_lines(
        [
            "vad[[]int8[]] vs fp32: * gate(s) failed",
            "  output 'output': max_abs=* violates <= 1e-06 *",
            "  worst chunk of 'output': #* (from * s): reference=* variant=*; fed the "
            "reference's state every chunk, its largest error is * (the error builds up in "
            "the carried state)",
            "  worst element of 'output' at *",
            "  next step: raise it",
        ]
    )
    assert "(each step differs, not only the carried state)" in step_text


def test_decisions_that_flip_fail_their_gate_and_name_the_chunks() -> None:
    comparison = _compare(Accumulator(step_error=-0.1))

    (gate,) = comparison.decision_gates  # type: ignore[attr-defined]
    assert not gate.passed and gate.value < 1.0
    text = comparison.failure_text("vad[int8]", "hint")  # type: ignore[attr-defined]
    assert re.search(r"decisions \(> 0\.5\) agree on [0-9.]+ of chunks, limit >= 1 \(chunks ", text)


def test_without_a_decision_limit_decisions_are_measured_but_not_gated() -> None:
    comparison = _compare(Accumulator(step_error=-0.1), decision_limit=None)

    assert comparison.decision_gates == ()  # type: ignore[attr-defined]
    assert comparison.decisions[0].agreement < 1.0  # type: ignore[attr-defined]
