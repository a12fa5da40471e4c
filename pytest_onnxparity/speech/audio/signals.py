"""Signals to stream through a voice-activity detector: seeded synthetic ones (silence, noise,
speech-like vowels with pauses) or an audio file resampled to the graph's rate."""

from __future__ import annotations

import numpy as np

from pytest_onnxparity.speech.streaming.config import SIGNAL_KINDS, StreamingError, StreamingOptions

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
        from pytest_onnxparity.speech.audio.clips import decode_audio, resample

        audio, rate = decode_audio(path, str(path))
        audio = resample(audio, rate, options.sample_rate)
    audio = np.asarray(audio, np.float32)[:samples]
    return np.pad(audio, (0, samples - len(audio)))
