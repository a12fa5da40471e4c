"""Audio clips for sequence gates: from a folder of wav/flac files or a ``datasets`` dataset.

Every loader returns :class:`Clip` records: float32 mono audio at the sample rate asked for, plus
the ground-truth transcript when the source has one. soundfile, scipy and datasets are imported
where they are used, so the plugin loads without the ``speech`` extra."""

from __future__ import annotations

import importlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac")


SPEECH_PACKAGES = {
    "jiwer": "jiwer",
    "soundfile": "soundfile",
    "scipy": "scipy",
    "datasets": "datasets",
}
"""Module -> the distribution to install (the ``speech`` extra: all four)."""


class ClipError(ValueError):
    """Clips could not be loaded; the message names the file or dataset and the fix."""


def require_speech_extra(module: str) -> ModuleType:
    """Import ``module`` (jiwer, soundfile, scipy, datasets) or fail naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{module} is needed for sequence and speech gates: pip install "
            f"{SPEECH_PACKAGES.get(module, module)} (all of them: pip install "
            f"{' '.join(SPEECH_PACKAGES.values())})"
        ) from None


@dataclass(frozen=True)
class Clip:
    """One input of a sequence pipeline: mono float32 audio and, if known, its transcript."""

    id: str
    audio: np.ndarray = field(compare=False, repr=False)
    sample_rate: int
    text: str | None = None

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        """Metadata only: the audio stays out of result files."""
        return {
            "id": self.id,
            "sample_rate": self.sample_rate,
            "duration_s": round(self.duration_s, 3),
            "text": self.text,
        }


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) to ``to_rate``; float32 out."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    signal = require_speech_extra("scipy.signal")
    common = math.gcd(from_rate, to_rate)
    resampled = signal.resample_poly(audio, to_rate // common, from_rate // common)
    return np.asarray(resampled, dtype=np.float32)


def decode_audio(source: str | Path | bytes, name: str) -> tuple[np.ndarray, int]:
    """Read wav/flac (anything libsndfile reads) from a path or bytes: mono float32 and its rate.

    ``name`` identifies the audio in errors (a file path, or a dataset row).
    """
    soundfile = require_speech_extra("soundfile")
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    try:
        samples, rate = soundfile.read(handle, dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError is a RuntimeError
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise ClipError(
            f"{name}: cannot read audio ({first_line}); re-encode it as PCM wav or flac"
        ) from None
    if samples.shape[0] == 0:
        raise ClipError(f"{name}: the audio has no samples; remove the file or re-record it")
    # Downmix: channels are averaged, as speech models take mono input.
    return samples.mean(axis=1).astype(np.float32), int(rate)


def make_clip(
    clip_id: str, audio: np.ndarray, rate: int, text: str | None, sample_rate: int | None
) -> Clip:
    if sample_rate is not None and rate != sample_rate:
        audio, rate = resample(audio, rate, sample_rate), sample_rate
    return Clip(id=clip_id, audio=audio, sample_rate=rate, text=text)


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


def load_audio_folder(
    folder: Path, sample_rate: int | None, limit: int | None = None
) -> list[Clip]:
    """Every ``.wav``/``.flac`` under ``folder`` (recursively, sorted by relative path).

    A file's transcript is the same-stem ``.txt`` beside it (stripped), or None without one.
    Clip ids are relative paths without the suffix (``speaker1/utt3``). Audio is downmixed to
    mono and resampled to ``sample_rate`` (None keeps each file's rate). ``limit`` keeps the
    first N files.
    """
    check_limit(limit)
    folder = Path(folder)
    clips = []
    for path in _audio_files(folder)[:limit]:
        audio, rate = decode_audio(path, str(path))
        transcript = path.with_suffix(".txt")
        try:
            text = transcript.read_text(encoding="utf-8").strip() if transcript.is_file() else None
        except UnicodeDecodeError:
            raise ClipError(f"{transcript}: not UTF-8 text; save the transcript as UTF-8") from None
        clips.append(make_clip(_folder_clip_id(folder, path), audio, rate, text, sample_rate))
    return clips


def audio_folder_ids(folder: Path, limit: int | None = None) -> list[str]:
    """The ids :func:`load_audio_folder` gives, from the file names alone (no audio read)."""
    check_limit(limit)
    folder = Path(folder)
    return [_folder_clip_id(folder, path) for path in _audio_files(folder)[:limit]]


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ClipError(
            f"{folder}: no such folder; point clips_dir at a folder of .wav/.flac files with "
            "same-stem .txt transcripts"
        )
    files = sorted(
        (path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES),
        key=lambda path: path.relative_to(folder).as_posix(),
    )
    if not files:
        raise ClipError(
            f"{folder}: no .wav or .flac files; add audio clips with same-stem .txt transcripts"
        )
    return files


def _folder_clip_id(folder: Path, path: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
