"""Path options written with a space (``--onnx-dir DIR``), and the rootdir pytest chose from them.

pytest finds its rootdir and config file before it loads plugins, so at that moment it does not
know ``--onnx-dir`` takes a value: ``pytest --onnx-dir /elsewhere/out`` reads ``/elsewhere/out`` as
a test path, and the rootdir (with its ``[tool.pytest]`` settings and the ``pyproject.toml`` whose
``[tool.onnxparity]`` the plugin reads) comes from the export folder instead of the project the
command runs in. ``--onnx-dir=/elsewhere/out`` does not have the problem. A plugin cannot redo
that choice, so a run whose rootdir such a value may have chosen stops with the fix. The same
holds for every option of the plugin whose value is a path that exists (a baseline, clips...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

PATH_FLAGS = (
    "--onnx-dir",
    "--parity-reference-dir",
    "--parity-baseline",
    "--parity-clips",
    "--parity-dataset",
    "--parity-suite",
    "--parity-json",
    "--parity-metadata",
    "--parity-markdown",
    "--parity-suggest",
    "--parity-localize-dir",
)
"""The plugin's options whose value may name a path (only one that exists misleads pytest)."""


def space_form_values(args: Sequence[str]) -> list[tuple[str, str]]:
    """``(flag, value)`` for each path flag whose kept value (argparse keeps the last one, of
    either form) was written with a space."""
    kept: dict[str, str | None] = {}
    for index, arg in enumerate(args):
        flag, equals, _ = arg.partition("=")
        if flag not in PATH_FLAGS:
            continue
        if equals:
            kept[flag] = None
        elif index + 1 < len(args):
            kept[flag] = args[index + 1]
    return [(flag, value) for flag, value in kept.items() if value is not None]


def rootdir_problem(config: pytest.Config) -> str | None:
    """Why this run's rootdir may have come from a path option written with a space, or None.

    With ``--onnx-dir=DIR`` pytest searches for its config from the working folder (and the
    command line's test paths). The space form adds ``DIR`` to that search; it changes nothing
    only when ``DIR`` lies inside one of those folders and the rootdir is that folder or above it
    (no config file between ``DIR`` and it). ``--rootdir`` and ``-c`` choose the rootdir on
    purpose.
    """
    if config.option.rootdir or config.option.inifilename:
        return None
    invocation = config.invocation_params.dir
    bases = [invocation, *_test_paths(config)]
    rootpath = config.rootpath
    rootdir_explained = any(_within(base, rootpath) for base in bases)
    for flag, value in space_form_values(list(config.invocation_params.args)):
        path = Path(os.path.abspath(invocation / value))
        if not path.exists():
            continue  # pytest skipped it too: it only looks at paths that exist
        if rootdir_explained and any(_within(path, base) for base in bases):
            continue
        ini = config.inipath if config.inipath is not None else "none"
        return (
            f"{flag} {value} is written with a space, so pytest read it as a test path when it "
            f"chose its rootdir ({rootpath}) and config file ({ini}), and the project's pytest "
            f"and [tool.onnxparity] settings in {invocation} may not apply: write "
            f"{flag}={value} (or choose with --rootdir)"
        )
    return None


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _test_paths(config: pytest.Config) -> list[Path]:
    """The command line's own test paths (node ids cut to their file), as absolute paths."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    base = config.invocation_params.dir
    return [Path(os.path.abspath(base / arg.split("::", 1)[0])) for arg in config.args]
