"""Audio clips for sequence gates: from a folder of wav/flac files or a ``datasets`` dataset.

Every loader returns :class:`Clip` records: float32 mono audio at the sample rate asked for, plus
the ground-truth transcript when the source has one. soundfile, scipy and datasets are imported
where they are used, so the plugin loads without the ``speech`` extra.
"""

from __future__ import annotations

import functools
import importlib
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pytest_onnxparity.config.project import ConfigError

AUDIO_SUFFIXES = (".wav", ".flac")
SOURCE_KEYS = (
    "clips_dir",
    "dataset",
    "dataset_config",
    "split",
    "audio_column",
    "text_column",
    "streaming",
    "limit",
    "sample_rate",
)
_DATASET_ONLY_KEYS = ("dataset_config", "split", "audio_column", "text_column", "streaming")
SPEECH_EXTRA = "pytest-onnxparity[speech]"


class ClipError(ValueError):
    """Clips could not be loaded; the message names the file or dataset and the fix."""


def require_speech_extra(module: str) -> ModuleType:
    """Import ``module`` (jiwer, soundfile, scipy, datasets) or fail naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{module} is needed for sequence and speech gates: pip install {SPEECH_EXTRA}"
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


def _make_clip(
    clip_id: str, audio: np.ndarray, rate: int, text: str | None, sample_rate: int | None
) -> Clip:
    if sample_rate is not None and rate != sample_rate:
        audio, rate = resample(audio, rate, sample_rate), sample_rate
    return Clip(id=clip_id, audio=audio, sample_rate=rate, text=text)


def _check_limit(limit: int | None) -> None:
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
    _check_limit(limit)
    folder = Path(folder)
    clips = []
    for path in _audio_files(folder)[:limit]:
        audio, rate = decode_audio(path, str(path))
        transcript = path.with_suffix(".txt")
        text = transcript.read_text(encoding="utf-8").strip() if transcript.is_file() else None
        clips.append(_make_clip(_folder_clip_id(folder, path), audio, rate, text, sample_rate))
    return clips


def audio_folder_ids(folder: Path, limit: int | None = None) -> list[str]:
    """The ids :func:`load_audio_folder` gives, from the file names alone (no audio read)."""
    _check_limit(limit)
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


@functools.cache
def _undecoded_audio_feature() -> Any:
    """An ``Audio`` feature that stores paths and bytes without torchcodec.

    datasets 5 imports torchcodec in ``Audio.encode_example`` even for a plain path, and calls
    it while preparing a local ``audiofolder`` and on every streamed row. torchcodec has no CPU
    wheel here, so this subclass encodes the path/bytes forms itself; it still serialises as
    ``Audio``, and decoding is ours (soundfile).
    """
    datasets = require_speech_extra("datasets")

    @dataclass
    class UndecodedAudio(datasets.Audio):  # type: ignore[name-defined]
        def encode_example(self, value: Any) -> dict[str, Any]:
            if isinstance(value, (str, os.PathLike)):
                return {"bytes": None, "path": os.fspath(value)}
            if isinstance(value, (bytes, bytearray)):
                return {"bytes": bytes(value), "path": None}
            if isinstance(value, dict) and "array" not in value:
                return {"bytes": value.get("bytes"), "path": value.get("path")}
            return dict(super().encode_example(value))

    return UndecodedAudio(decode=False)


def _open_dataset(
    name_or_path: str,
    *,
    split: str,
    config: str | None,
    streaming: bool,
    audio_column: str,
    cache_dir: Path | None,
) -> Any:
    datasets = require_speech_extra("datasets")
    local = Path(name_or_path).is_dir()
    arguments: dict[str, Any] = {
        "split": split,
        "cache_dir": None if cache_dir is None else str(cache_dir),
    }
    if local:
        path, arguments["data_dir"] = "audiofolder", str(Path(name_or_path))
    else:
        path, arguments["name"] = name_or_path, config

    def load(**extra: Any) -> Any:
        try:
            return datasets.load_dataset(path, **arguments, **extra)
        except ValueError as error:  # unknown split, bad config name
            raise ClipError(f"{name_or_path}: {_first_line(error)}; check split/config") from None
        except FileNotFoundError as error:
            raise ClipError(
                f"{name_or_path}: {_first_line(error)}; give a local audiofolder directory or a "
                "Hugging Face dataset name"
            ) from None

    undecoded = _undecoded_audio_feature()
    probe = load(streaming=True)
    features = probe.features
    if features is not None and audio_column not in features:
        raise ClipError(
            f"{name_or_path}: no audio column {audio_column!r} (columns: "
            f"{', '.join(features)}); set audio_column"
        )
    if streaming:
        return probe.cast_column(audio_column, undecoded)
    if features is not None:
        # Prepare with the torchcodec-free feature; the prepared column is plain Audio again.
        features = datasets.Features(
            {
                name: undecoded if isinstance(feature, datasets.Audio) else feature
                for name, feature in features.items()
            }
        )
    dataset = load(streaming=False, features=features)
    return dataset.cast_column(audio_column, datasets.Audio(decode=False))


def load_hf_dataset(
    name_or_path: str,
    *,
    split: str = "test",
    audio_column: str = "audio",
    text_column: str | None = "text",
    config: str | None = None,
    streaming: bool = False,
    sample_rate: int | None = None,
    limit: int | None = None,
    cache_dir: Path | None = None,
) -> list[Clip]:
    """Clips from a Hugging Face ``datasets`` dataset: an Audio column and a text column.

    ``name_or_path`` is a local ``audiofolder`` directory (audio files plus a ``metadata.jsonl``
    with ``file_name`` and transcript columns; split folders such as ``test/``) read with
    ``load_dataset("audiofolder", data_dir=...)`` (prefer jsonl: datasets 5.2 leaves a
    ``metadata.csv`` open, a ResourceWarning that ``filterwarnings = error`` turns into a
    failure), or a hub name
    (``openslr/librispeech_asr`` with ``config="clean"``). ``streaming`` reads rows lazily,
    which with ``limit`` fetches only the first N rows of a hub dataset. Audio is decoded here
    with soundfile from the column's bytes or path (no torchcodec), downmixed to mono and
    resampled to ``sample_rate``. ``text_column=None`` loads clips without ground truth.
    ``cache_dir`` is where datasets prepares a non-streamed dataset (its default cache if None).
    Either way the dataset is first opened streamed, to learn its columns.
    Clip ids are the audio file stems, or the row index when rows carry only bytes.
    """
    _check_limit(limit)
    text_column = text_column or None
    dataset = _open_dataset(
        name_or_path,
        split=split,
        config=config,
        streaming=streaming,
        audio_column=audio_column,
        cache_dir=cache_dir,
    )
    columns = dataset.column_names
    if text_column is not None and columns is not None and text_column not in columns:
        raise ClipError(
            f"{name_or_path}: no text column {text_column!r} (columns: {', '.join(columns)}); "
            'set text_column, or text_column = "" for clips without transcripts'
        )
    if limit is not None:
        dataset = (
            dataset.take(limit) if streaming else dataset.select(range(min(limit, len(dataset))))
        )
    clips = []
    seen: set[str] = set()
    for index, row in enumerate(dataset):
        value = row[audio_column]
        name = f"{name_or_path} [{split}] row {index}"
        audio, rate = decode_audio(_audio_payload(value, name), name)
        clip_id = _dataset_clip_id(value, index, seen)
        text = None if text_column is None else row[text_column]
        clips.append(
            _make_clip(clip_id, audio, rate, None if text is None else str(text), sample_rate)
        )
    if not clips:
        raise ClipError(f"{name_or_path}: split {split!r} has no rows; pick another split")
    return clips


def dataset_clip_ids(
    name_or_path: str,
    *,
    split: str = "test",
    audio_column: str = "audio",
    config: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """The ids :func:`load_hf_dataset` gives, read from the first ``limit`` rows of the
    streamed dataset without decoding audio (a hub dataset fetches only those rows)."""
    _check_limit(limit)
    dataset = _open_dataset(
        name_or_path,
        split=split,
        config=config,
        streaming=True,
        audio_column=audio_column,
        cache_dir=None,
    )
    if limit is not None:
        dataset = dataset.take(limit)
    seen: set[str] = set()
    ids = [_dataset_clip_id(row[audio_column], index, seen) for index, row in enumerate(dataset)]
    if not ids:
        raise ClipError(f"{name_or_path}: split {split!r} has no rows; pick another split")
    return ids


def _dataset_clip_id(value: Any, index: int, seen: set[str]) -> str:
    """The audio file's stem, or the row index when the row carries only bytes; a repeated
    stem gets its row index appended. Adds the id to ``seen``."""
    path = value.get("path") if isinstance(value, dict) else None
    clip_id = Path(str(path)).stem if path else f"{index:05d}"
    if clip_id in seen:
        clip_id = f"{clip_id}-{index:05d}"
    seen.add(clip_id)
    return clip_id


def _audio_payload(value: Any, name: str) -> str | bytes:
    if not isinstance(value, dict):
        raise ClipError(
            f"{name}: the audio column holds {type(value).__name__}, not audio; set audio_column"
        )
    if value.get("bytes"):
        return bytes(value["bytes"])
    path = value.get("path")
    if not path:
        raise ClipError(f"{name}: the audio cell has neither bytes nor a path; fix the dataset")
    if os.path.isfile(path):
        return str(path)
    # Hub rows streamed from archives carry fsspec URLs (zip://...::https://..., hf://...).
    fsspec = require_speech_extra("fsspec")
    with fsspec.open(path, "rb") as stream:
        return bytes(stream.read())


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@dataclass(frozen=True)
class ClipSource:
    """Where a ``[sequence]`` table's clips come from: ``clips_dir`` or ``dataset``.

    ``limit`` and ``sample_rate`` passed to :meth:`load` (``--parity-clips-limit``, the rate the
    adapter asks for) win over the configured ones.
    """

    clips_dir: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    split: str = "test"
    audio_column: str = "audio"
    text_column: str | None = "text"
    streaming: bool = False
    limit: int | None = None
    sample_rate: int | None = None

    def __post_init__(self) -> None:
        if (self.clips_dir is None) == (self.dataset is None):
            raise ValueError("a ClipSource needs exactly one of clips_dir and dataset")

    def load(
        self,
        *,
        base_dir: Path | None = None,
        limit: int | None = None,
        sample_rate: int | None = None,
        cache_dir: Path | None = None,
    ) -> list[Clip]:
        """Load the clips; a relative ``clips_dir`` or dataset folder is taken from ``base_dir``."""
        limit = self.limit if limit is None else limit
        sample_rate = self.sample_rate if sample_rate is None else sample_rate
        if self.clips_dir is not None:
            return load_audio_folder(self._resolve(self.clips_dir, base_dir), sample_rate, limit)
        assert self.dataset is not None
        local = self._resolve(self.dataset, base_dir)
        return load_hf_dataset(
            str(local) if local.is_dir() else self.dataset,
            split=self.split,
            audio_column=self.audio_column,
            text_column=self.text_column,
            config=self.dataset_config,
            streaming=self.streaming,
            sample_rate=sample_rate,
            limit=limit,
            cache_dir=cache_dir,
        )

    def clip_ids(self, *, base_dir: Path | None = None, limit: int | None = None) -> list[str]:
        """The ids :meth:`load` would give, cheaply: file names of a folder, or the first
        rows of the dataset opened streamed, audio left undecoded."""
        limit = self.limit if limit is None else limit
        if self.clips_dir is not None:
            return audio_folder_ids(self._resolve(self.clips_dir, base_dir), limit)
        assert self.dataset is not None
        local = self._resolve(self.dataset, base_dir)
        return dataset_clip_ids(
            str(local) if local.is_dir() else self.dataset,
            split=self.split,
            audio_column=self.audio_column,
            config=self.dataset_config,
            limit=limit,
        )

    def describe(self, base_dir: Path | None = None) -> str:
        """``clips_dir tests/data/clips`` or ``dataset openslr/librispeech_asr (clean, test,
        streamed)``, for headers and messages."""
        if self.clips_dir is not None:
            return f"clips_dir {self._resolve(self.clips_dir, base_dir)}"
        assert self.dataset is not None
        local = self._resolve(self.dataset, base_dir)
        name = str(local) if local.is_dir() else self.dataset
        parts = [p for p in (self.dataset_config, f"split {self.split}") if p]
        if self.streaming:
            parts.append("streamed")
        return f"dataset {name} ({', '.join(parts)})"

    @staticmethod
    def _resolve(path: str, base_dir: Path | None) -> Path:
        candidate = Path(path)
        if base_dir is not None and not candidate.is_absolute():
            return Path(base_dir) / candidate
        return candidate

    def to_json(self) -> dict[str, Any]:
        return {
            "clips_dir": self.clips_dir,
            "dataset": self.dataset,
            "dataset_config": self.dataset_config,
            "split": self.split,
            "audio_column": self.audio_column,
            "text_column": self.text_column,
            "streaming": self.streaming,
            "limit": self.limit,
            "sample_rate": self.sample_rate,
        }


def parse_clip_source(raw: Mapping[str, Any], where: str) -> ClipSource | None:
    """The clip source named by the :data:`SOURCE_KEYS` of a config table (None if it names
    none); ``where`` names the table in errors. ``text_column = ""`` means no transcripts."""
    if "clips_dir" in raw and "dataset" in raw:
        raise ConfigError(f"{where}: set either clips_dir or dataset, not both")
    if "clips_dir" not in raw and "dataset" not in raw:
        if raw:
            raise ConfigError(f"{where}: {', '.join(raw)} need clips_dir or dataset")
        return None
    if "clips_dir" in raw:
        dataset_only = [key for key in _DATASET_ONLY_KEYS if key in raw]
        if dataset_only:
            raise ConfigError(
                f"{where}: {', '.join(dataset_only)} apply to dataset, not clips_dir; remove them"
            )
    values: dict[str, Any] = {}
    for key in ("clips_dir", "dataset", "dataset_config", "split", "audio_column", "text_column"):
        if key in raw:
            if not isinstance(raw[key], str) or (not raw[key] and key != "text_column"):
                raise ConfigError(f"{where}: {key} must be a non-empty string, got {raw[key]!r}")
            values[key] = raw[key]
    if "text_column" in values:
        values["text_column"] = values["text_column"] or None
    if "streaming" in raw:
        if not isinstance(raw["streaming"], bool):
            raise ConfigError(f"{where}: streaming must be true or false, got {raw['streaming']!r}")
        values["streaming"] = raw["streaming"]
    for key in ("limit", "sample_rate"):
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
        values[key] = value
    return ClipSource(**values)
