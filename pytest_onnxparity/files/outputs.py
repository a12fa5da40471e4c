"""The output paths a run was given, checked before any test runs.

Every file the run writes is one the user named (``--parity-json``, ``--parity-metadata``…).
Each is checked at start, so a mistake costs nothing: it must be writable (its folder exists or
can be made, and the process may write there), must not be one of the run's inputs (a model, a
sidecar, the baseline, a config file, recorded data), must not be the path of another output,
and must not be a file the run did not write before (``marker`` is the first line of the
files an output kind writes, so a hand-written ``parity.toml`` is never overwritten by
``--parity-suggest``). Temporary files that an interrupted earlier run left beside an output
(``.<name>.<hex>.tmp``, see :mod:`pytest_onnxparity.files.atomic`) are removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_onnxparity.files.atomic import TEMP_SUFFIX, temp_name


class OutputPathError(ValueError):
    """An output path cannot be used; the message names the flag, the path and the fix."""


@dataclass(frozen=True)
class NamedOutput:
    """One output the user named: the flag (or ini key) that named it and the path."""

    flag: str
    path: Path
    folder: bool = False
    """The output is a folder the run writes files into (plots)."""
    marker: str | None = None
    """The first line of what this output writes; an existing file without it is refused."""
    force_flag: str | None = None
    """The flag that lets this output replace a file it did not write, named in the refusal."""


def check_outputs(
    outputs: Sequence[NamedOutput],
    input_files: Iterable[Path] = (),
    input_folders: Iterable[Path] = (),
) -> None:
    """Raise :class:`OutputPathError` for the first output that cannot be written safely.

    ``input_files`` are files the run reads; ``input_folders`` are folders whose every file is
    an input (an export folder's recordings, ``--parity-reference-dir``)."""
    inputs = {_key(path): path for path in input_files}
    folders = [_key(path) for path in input_folders]
    seen: dict[str, NamedOutput] = {}
    for output in outputs:
        key = _key(output.path)
        if key in seen:
            raise OutputPathError(
                f"{output.flag} {output.path}: is also the path of {seen[key].flag}; give each "
                "output its own path"
            )
        seen[key] = output
        if key in inputs or any(key == f or key.startswith(f + os.sep) for f in folders):
            raise OutputPathError(
                f"{output.flag} {output.path}: is an input of this run and would be "
                "overwritten; write the output somewhere else"
            )
        _check_writable(output)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files an interrupted write of ``path`` left beside it."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[0-9a-f]{{8}}{re.escape(TEMP_SUFFIX)}$")
    removed: list[Path] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if pattern.match(entry.name) and entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
            except OSError:
                continue
            removed.append(entry)
    return removed


def _key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _check_writable(output: NamedOutput) -> None:
    path = output.path
    if output.folder:
        if path.exists() and not path.is_dir():
            raise OutputPathError(f"{output.flag} {path}: is a file, not a folder; name a folder")
    elif path.is_dir():
        raise OutputPathError(f"{output.flag} {path}: is a folder; name a file in it")
    elif path.exists() and output.marker is not None and not written_by(path, output.marker):
        raise OutputPathError(foreign_file_message(output))
    existing = path if path.exists() else _nearest_existing(path.parent)
    if existing is None or (existing != path and not existing.is_dir()):
        raise OutputPathError(
            f"{output.flag} {path}: its folder cannot be created ({existing} is a file); fix "
            "the path"
        )
    _probe(output)


def _probe(output: NamedOutput) -> None:
    """Create the output's folder and a temporary file in it, as the final write will: the only
    check that holds for every file system, mount option and privilege."""
    folder = output.path if output.folder else output.path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_name(output.path if not output.folder else folder / "probe")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        probe.unlink()
        if output.path.is_file() and not os.access(output.path, os.W_OK):
            raise PermissionError(13, "Permission denied", str(output.path))
    except OSError as error:
        raise OutputPathError(
            f"{output.flag} {output.path}: cannot be written "
            f"({error.strerror or type(error).__name__}: {error.filename or folder}); fix the "
            "path or its permissions"
        ) from None


def _nearest_existing(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def foreign_file_message(output: NamedOutput) -> str:
    """Why ``output`` may not replace the file at its path: it was not written by this option."""
    force = f", or add {output.force_flag} to replace it" if output.force_flag else ""
    return (
        f"{output.flag} {output.path}: exists and was not written by this option (a "
        f"hand-written file?); name a new file, or delete it first if it may go{force}"
    )


def written_by(path: Path, marker: str) -> bool:
    """Whether the file at ``path`` starts with ``marker``, the first line its option writes."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(marker.encode("utf-8")))
    except OSError:
        return False
    return head == marker.encode("utf-8")
