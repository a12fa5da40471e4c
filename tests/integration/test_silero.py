"""silero-vad, a real third-party artifact: its ONNX files gated against its TorchScript model.

silero_vad.jit's public ``forward(x, sr)`` keeps the LSTM state and a 64-sample context inside
the module between calls. The graph it runs on each call is its ``_model`` submodule,
``_model(input, state) -> (output, stateN)`` with ``input`` = context + 512 new samples: the
same signature as the ONNX files (which also take ``sr``). So the reference is the TorchScript
``_model`` (mapped by name), and both sides are driven over a clip chunk by chunk, carrying
context and state exactly as silero's own wrappers do.

Two comparisons per ONNX file:
* per chunk, on the reference's own stream of inputs and states (error of one step);
* free-running, each side carrying its own state (error as the product sees it: speech
  probabilities over the clip).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pytest_onnxparity.compare.parity import ParityResult, compare
from pytest_onnxparity.config.tolerances import Tolerance, tier_default
from pytest_onnxparity.references.base import Reference
from pytest_onnxparity.references.config import InputMapping
from pytest_onnxparity.references.onnx import OnnxReference
from pytest_onnxparity.references.recorded import RecordedSet, write_npz
from pytest_onnxparity.references.torch_files import load_torchscript
from pytest_onnxparity.runtime.inputs import InputSet
from pytest_onnxparity.runtime.sessions import SessionSettings, open_session

silero_vad = pytest.importorskip("silero_vad")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

DATA = Path(silero_vad.__file__).parent / "data"
SAMPLE_RATE = 16_000
CHUNK = 512
CONTEXT = 64
STATE_SHAPE = (2, 1, 128)
# A VAD decision is a threshold on this probability; 1e-4 keeps every decision identical.
PROBABILITY_TOLERANCE = Tolerance(max_abs=1e-4)
EXACT_VARIANTS = ("silero_vad.onnx", "silero_vad_16k_op15.onnx", "silero_vad_op18_ifless.onnx")
# Not a half-precision copy: its weights differ from the TorchScript model's by up to ~55 (they
# are not fp16-rounded fp32 weights), so parity with silero_vad.jit must fail.
DIFFERENT_WEIGHTS = "silero_vad_half.onnx"

Step = Callable[[InputSet], dict[str, np.ndarray]]


def speech_like_clip(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """Syllables of voiced vowels over coloured background noise, at 16 kHz.

    Each syllable is a harmonic source (f0 100-180 Hz with vibrato) through three formant
    resonators of a real vowel (/a/, /i/, /u/, /e/, /o/), under a smooth envelope; syllables
    are separated by short gaps and, now and then, by pauses long enough to end a segment.
    """
    from scipy import signal

    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    clip = np.zeros(total)
    formants = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]
    formants.append((570, 840, 2410))
    position, syllable = int(0.6 * SAMPLE_RATE), 0
    while position < total - SAMPLE_RATE // 2:
        length = int(rng.uniform(0.12, 0.3) * SAMPLE_RATE)
        times = np.arange(length) / SAMPLE_RATE
        f0 = rng.uniform(100, 180) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(2, 5) * times))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        voice = sum(np.sin(k * phase) / k * (k * f0 < SAMPLE_RATE / 2 - 500) for k in range(1, 40))
        for centre, bandwidth in zip(formants[syllable % 5], (80, 100, 120), strict=True):
            radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
            angle = 2 * np.pi * centre / SAMPLE_RATE
            voice = signal.lfilter([1 - radius], [1, -2 * radius * np.cos(angle), radius**2], voice)
        envelope = np.hanning(length) ** 0.5
        clip[position : position + length] += (
            voice / np.abs(voice).max() * envelope * rng.uniform(0.3, 0.6)
        )
        syllable += 1
        position += length + int(rng.uniform(0.02, 0.15) * SAMPLE_RATE)
        if rng.random() < 0.15:
            position += int(0.6 * SAMPLE_RATE)
    noise = signal.lfilter([1], [1, -0.9], rng.standard_normal(total))
    clip += noise / noise.std() * 0.01
    return clip.astype(np.float32)


def chunks_of(clip: np.ndarray) -> np.ndarray:
    return clip[: len(clip) // CHUNK * CHUNK].reshape(-1, 1, CHUNK)


def stream(step: Step, chunks: np.ndarray) -> tuple[np.ndarray, list[InputSet]]:
    """Run ``step`` over the chunks as silero's wrappers do: each call sees the last 64 samples
    of the previous call's input before the new chunk, and the state the previous call
    returned. Returns the speech probability per chunk and the input set of each call."""
    state = np.zeros(STATE_SHAPE, np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    probabilities, sets = [], []
    for index, chunk in enumerate(chunks):
        window = np.concatenate([context, chunk], axis=1)
        arrays = {"input": window, "state": state, "sr": np.array(SAMPLE_RATE, np.int64)}
        inputs = InputSet(f"chunk{index:03d}", "speech-like clip", 0, {}, arrays)
        outputs = step(inputs)
        probabilities.append(float(outputs["output"][0, 0]))
        state, context = outputs["stateN"], window[:, -CONTEXT:]
        sets.append(inputs)
    return np.array(probabilities, np.float32), sets


@pytest.fixture(scope="module")
def chunks() -> np.ndarray:
    return chunks_of(speech_like_clip())


@pytest.fixture(scope="module")
def jit_reference() -> Reference:
    """The TorchScript graph silero's forward runs per chunk, mapped to the ONNX names."""
    return load_torchscript(
        DATA / "silero_vad.jit",
        submodule="_model",
        mapping=InputMapping(arguments=("input", "state"), outputs=("output", "stateN")),
        graph_inputs=("input", "state", "sr"),
        graph_outputs=("output", "stateN"),
    )


@pytest.fixture(scope="module")
def reference_stream(
    jit_reference: Reference, chunks: np.ndarray
) -> tuple[np.ndarray, list[InputSet]]:
    return stream(jit_reference.outputs, chunks)


def variant(name: str) -> OnnxReference:
    return OnnxReference(open_session(DATA / name, SessionSettings()), label="onnx")


def per_chunk_results(
    reference: Reference, onnx: OnnxReference, sets: list[InputSet]
) -> list[ParityResult]:
    return [
        compare(reference.outputs(inputs), onnx.outputs(inputs), lambda _: tier_default("fp32"))
        for inputs in sets
    ]


def probability_parity(reference: np.ndarray, onnx: np.ndarray) -> ParityResult:
    return compare(
        {"speech_prob": reference}, {"speech_prob": onnx}, lambda _: PROBABILITY_TOLERANCE
    )


def test_the_jit_submodule_stream_matches_silero_public_streaming_api(
    reference_stream: tuple[np.ndarray, list[InputSet]], chunks: np.ndarray
) -> None:
    model = torch.jit.load(str(DATA / "silero_vad.jit"), map_location="cpu")
    model.reset_states()
    with torch.inference_mode():
        public = [float(model(torch.from_numpy(chunk.copy()), SAMPLE_RATE)) for chunk in chunks]
    probabilities, _ = reference_stream
    np.testing.assert_allclose(probabilities, np.array(public, np.float32), rtol=1e-6, atol=1e-7)


def test_the_clip_reads_as_speech_with_pauses(
    reference_stream: tuple[np.ndarray, list[InputSet]],
) -> None:
    probabilities, _ = reference_stream
    assert (probabilities > 0.5).mean() > 0.3
    assert (probabilities < 0.1).mean() > 0.2


@pytest.mark.parametrize("name", EXACT_VARIANTS)
def test_onnx_export_matches_the_torchscript_model_chunk_by_chunk_and_over_the_clip(
    name: str,
    jit_reference: Reference,
    reference_stream: tuple[np.ndarray, list[InputSet]],
    chunks: np.ndarray,
) -> None:
    onnx = variant(name)
    reference_probabilities, sets = reference_stream
    results = per_chunk_results(jit_reference, onnx, sets)
    failing = [
        (inputs.name, r.worst_gate())
        for inputs, r in zip(sets, results, strict=True)
        if not r.passed
    ]
    assert not failing, failing[:3]
    onnx_probabilities, _ = stream(onnx.outputs, chunks)
    verdict = probability_parity(reference_probabilities, onnx_probabilities)
    assert verdict.passed, verdict.worst_gate()


def test_the_half_file_is_a_different_model_and_fails_the_gate(
    jit_reference: Reference,
    reference_stream: tuple[np.ndarray, list[InputSet]],
    chunks: np.ndarray,
) -> None:
    onnx = variant(DIFFERENT_WEIGHTS)
    reference_probabilities, sets = reference_stream
    assert not any(r.passed for r in per_chunk_results(jit_reference, onnx, sets[:5]))
    onnx_probabilities, _ = stream(onnx.outputs, chunks)
    verdict = probability_parity(reference_probabilities, onnx_probabilities)
    assert not verdict.passed
    (stats,) = verdict.stats
    assert stats.max_abs > 0.05


SILERO_PARITY_TOML = """
[files."silero_vad_16k_op15.onnx"]
graph = "silero_vad"
variant = "16k_op15"
tier = "fp32"

[files."silero_vad_op18_ifless.onnx"]
graph = "silero_vad"
variant = "op18_ifless"
tier = "fp32"

[references.silero_vad]
kind = "torchscript"
path = "{jit}"
submodule = "_model"
inputs = ["input", "state"]
outputs = ["output", "stateN"]
synthesize = false
input_data = ["../clip.npz"]
"""


def test_the_plugin_gates_silero_onnx_files_against_the_torchscript_model_on_a_clip(
    pytester: pytest.Pytester, reference_stream: tuple[np.ndarray, list[InputSet]]
) -> None:
    """End to end through ``--onnx-dir``: every chunk of the clip in one batched input set,
    each row with the context and state the TorchScript model carried into that chunk."""
    _, sets = reference_stream
    export = pytester.mkdir("silero")
    for name in (*EXACT_VARIANTS, DIFFERENT_WEIGHTS):
        shutil.copy(DATA / name, export / name)
    arrays = {
        "input": np.concatenate([inputs.arrays["input"] for inputs in sets]),
        "state": np.concatenate([inputs.arrays["state"] for inputs in sets], axis=1),
        "sr": np.array(SAMPLE_RATE, np.int64),
    }
    write_npz(pytester.path / "clip.npz", [RecordedSet(InputSet("default", "", 0, {}, arrays), {})])
    (export / "parity.toml").write_text(SILERO_PARITY_TOML.format(jit=DATA / "silero_vad.jit"))
    out = pytester.path / "silero.json"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-rA", f"--onnx-dir={export}", "--parity-json", str(out)
    )
    # Weight space, against silero_vad.onnx: the half file is another model, and
    # silero_vad_op18_ifless.onnx ships other 8 kHz weights than silero_vad.onnx's 8 kHz branch.
    result.assert_outcomes(passed=4, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*silero_vad[[]half[]] vs torchscript silero_vad.jit::_model on inputs clip: "
            "*silero_vad_half.onnx: inputs [[]'input', 'state'[]] differ from the reference's "
            "[[]'input', 'sr', 'state'[]]*",
            "PASSED *silero_vad::parity?fp32-clip?",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*silero_vad_half.onnx: 8 of 9 weights differ from the reference silero_vad.onnx *",
            "*silero_vad_op18_ifless.onnx: 13 of 28 weights differ from the reference "
            "silero_vad.onnx *",
            "  If_0_else_branch__Inline_0__encoder.0.reparam_conv.weight as "
            "model_8k.encoder.0.reparam_conv.weight (float, float32, tier fp32) read by * (Conv): "
            "differs — rel_l2 0.1* > 1e-05*",
            "PASSED *silero_vad::weights?16k_op15?",
        ]
    )
    records = {
        r["variant"]: r for r in json.loads(out.read_text())["records"] if r["kind"] == "parity"
    }
    assert set(records) == {"fp32", "16k_op15", "op18_ifless", "half"}
    for variant in ("fp32", "16k_op15", "op18_ifless"):
        record = records[variant]
        assert record["reference"] == "torchscript silero_vad.jit::_model"
        assert record["input_set"]["shapes"]["input"] == [len(sets), CHUNK + CONTEXT]
        for output in record["parity"]["outputs"]:
            assert output["max_abs"] < 1e-5, (variant, output)


SUITE_WITH_JIT = """
[references.silero_vad]
kind = "torchscript"
path = "{jit}"
submodule = "_model"
inputs = ["input", "state"]
outputs = ["output", "stateN"]
"""


def test_the_streaming_suite_gates_silero_vad_onnx_itself_against_silero_vad_jit(
    pytester: pytest.Pytester,
) -> None:
    """With the TorchScript model as the reference, the graph's own fp32 file is a variant of
    it, and the suite streams it too (streaming[fp32]), not only the other files."""
    export = pytester.mkdir("silero")
    for name in ("silero_vad.onnx", "silero_vad_half.onnx"):
        shutil.copy(DATA / name, export / name)
    (export / "parity.toml").write_text(SUITE_WITH_JIT.format(jit=DATA / "silero_vad.jit"))

    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-rA", "--onnx-dir", str(export), "--parity-suite",
        "streaming-vad", "-v",
    )  # fmt: skip

    result.stdout.fnmatch_lines(
        [
            "onnxparity references: silero_vad vs torchscript data/silero_vad.jit::_model",
            "*PASSED*silero_vad::streaming?fp32?",
        ]
    )
    result.stdout.fnmatch_lines(["*FAILED*silero_vad::streaming?half?*"])
