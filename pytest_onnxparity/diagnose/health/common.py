"""What every health check shares: the outcome it returns, reading a model's structure, and
listing offenders in a message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.onnxfile.graph import (
    load_structure,
)

PROTOBUF_LIMIT_BYTES = 2**31 - 1


# Offenders listed in a failure message and in ``details``, before "… N more".
MESSAGE_ITEMS = 20


DETAIL_ITEMS = 100


class Unreadable(Exception):
    """The model file cannot be read at all; the checker check says why."""


@dataclass(frozen=True)
class Outcome:
    """What one check found: failure lines (none when it passed), details and warnings."""

    problems: Sequence[str]
    details: Mapping[str, Any]
    warnings: Sequence[str] = ()


def load_model(path: Path) -> Any:
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise Unreadable(f"{path}: no such model file; check --onnx-dir and the file name")
    try:
        return load_structure(path)
    except DecodeError as error:
        raise Unreadable(
            f"{path}: not a readable ONNX protobuf ({error}); re-export it or re-download it "
            "(a Git LFS pointer file is a common cause)"
        ) from None


def listed(lines: Sequence[str], limit: int = MESSAGE_ITEMS) -> list[str]:
    shown = [f"  {line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"  … and {len(lines) - limit} more")
    return shown
