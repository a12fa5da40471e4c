"""Atomic writes: a file or folder appears whole under its name, or the old one stays.

Everything is written under a hidden temporary name beside its target (``.<name>.<random>.tmp``),
flushed to disk, then moved into place with ``os.replace``; an interrupted run (Ctrl-C, a killed
CI job) leaves the old file or none, never a torn one. Temporary files are created with mode
0o666 and folders with 0o777, so the kernel applies the process umask exactly as a plain
``open()`` or ``mkdir`` would: nothing here reads or changes the umask. A file that replaces
another keeps the old one's mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"


def temp_name(target: Path) -> Path:
    """A hidden, unused name beside ``target`` for what will replace it."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file beside ``path``, moved over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temp_name(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as indented JSON; NaN and infinities are refused, not written."""
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def staging_directory(target: Path) -> Path:
    """A new, empty, hidden folder beside ``target`` to build its replacement in."""
    staging = temp_name(target)
    os.mkdir(staging, 0o777)
    return staging


def replace_directory(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``; rename(2) cannot replace a non-empty folder, so an old
    ``target`` is first moved aside, then deleted."""
    if not target.exists():
        os.replace(staging, target)
        return
    retired = staging_directory(target)
    os.replace(target, retired / target.name)
    os.replace(staging, target)
    shutil.rmtree(retired)


def write_files_atomic(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write several files as one step, as far as renames allow: each is written and flushed
    under its temporary name first (a failure there leaves every old file in place), then all
    are moved into place back to back, in the order given. Readers that must know the files
    belong together put a hash of the others in the last one (the results document names the
    SHA-256 of its metadata block); an interruption between two renames leaves a last file
    whose hash does not match, never a torn file."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = temp_name(path)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            staged.append((temporary, path))
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if path.exists():
                os.chmod(temporary, path.stat().st_mode & 0o777)
        while staged:
            temporary, path = staged[0]
            os.replace(temporary, path)
            staged.pop(0)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
