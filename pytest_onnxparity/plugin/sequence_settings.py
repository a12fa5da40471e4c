"""The sequence gates' settings, resolved once per run, and the stash keys the hooks and items
share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_onnxparity.speech.audio.source import ClipSource
    from pytest_onnxparity.speech.sequence.config import SequenceOptions
    from pytest_onnxparity.speech.sequence.run import SequenceCache


ADAPTER_HOOK = "pytest_onnxparity_pipeline_adapter"


GROUP_PREFIX = "onnxparity-sequence-"


DOCS = "docs/sequence.md"


@dataclass(frozen=True)
class SequenceSettings:
    """The run's sequence settings, resolved once at session start (:data:`SEQUENCE`).

    ``source`` is the clip source after ``--parity-clips`` / ``--parity-dataset``; relative
    paths in it are taken from ``base_dir`` (the rootdir, or the export folder for a
    ``parity.toml`` table). ``limit`` is ``--parity-clips-limit`` (None: the table's ``limit``);
    ``selected`` the ``--parity-variant-set`` names (empty: every set).
    """

    options: SequenceOptions
    source: ClipSource
    base_dir: Path
    where: str
    limit: int | None = None
    selected: tuple[str, ...] = ()

    @property
    def clip_limit(self) -> int | None:
        return self.source.limit if self.limit is None else self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            **self.options.to_json(),
            "source": self.source.to_json(),
            "base_dir": str(self.base_dir),
            "limit": self.clip_limit,
            "selected": list(self.selected),
        }


SEQUENCE: pytest.StashKey[SequenceSettings] = pytest.StashKey()


CACHE: pytest.StashKey[SequenceCache] = pytest.StashKey()
"""This process's clips, reference decodes and comparisons (made at collection, filled lazily)."""
