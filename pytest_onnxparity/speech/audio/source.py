"""Where a run's clips come from: the ``[sequence]`` table's ``clips_dir`` or ``dataset`` keys,
validated once into a :class:`ClipSource` that loads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.speech.audio.clips import Clip, audio_folder_ids, load_audio_folder
from pytest_onnxparity.speech.audio.hf_datasets import dataset_clip_ids, load_hf_dataset

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

    def dataset_card(self, base_dir: Path | None = None) -> dict[str, Any]:
        """The dataset as a model card's evaluation results name it: ``type`` (the hub id, or
        ``audiofolder`` for local files), ``name``, ``config``, ``split``."""
        if self.dataset is not None and not self._resolve(self.dataset, base_dir).is_dir():
            return {
                "type": self.dataset,
                "name": self.dataset,
                "config": self.dataset_config,
                "split": self.split,
            }
        local = self._resolve(self.clips_dir or self.dataset or ".", base_dir)
        split = self.split if self.dataset is not None else None
        return {"type": "audiofolder", "name": local.name, "config": None, "split": split}

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
