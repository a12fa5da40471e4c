"""Clips from a Hugging Face ``datasets`` dataset: a local audiofolder or a hub name, its split,
audio and text columns, streamed or not; the audio decoded with soundfile, not the dataset's
own decoder."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.speech.audio.clips import (
    Clip,
    ClipError,
    check_limit,
    decode_audio,
    first_line,
    make_clip,
    require_speech_extra,
)


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
            raise ClipError(f"{name_or_path}: {first_line(error)}; check split/config") from None
        except FileNotFoundError as error:
            raise ClipError(
                f"{name_or_path}: {first_line(error)}; give a local audiofolder directory or a "
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
    check_limit(limit)
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
            make_clip(clip_id, audio, rate, None if text is None else str(text), sample_rate)
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
    check_limit(limit)
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
