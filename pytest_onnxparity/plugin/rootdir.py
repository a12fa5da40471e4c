"""``--onnx-dir DIR`` written with a space, and the rootdir pytest chose from it.

pytest finds its rootdir and config file before it loads plugins, so at that moment it does not
know ``--onnx-dir`` takes a value: ``pytest --onnx-dir /elsewhere/out`` reads ``/elsewhere/out`` as
a test path, and the rootdir (with its ``[tool.pytest]`` settings and the ``pyproject.toml`` whose
``[tool.onnxparity]`` the plugin reads) comes from the export folder instead of the project the
command runs in. ``--onnx-dir=/elsewhere/out`` does not have the problem. A plugin cannot redo
that choice, so a run whose rootdir the export folder may have chosen stops with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

FLAG = "--onnx-dir"


def space_form_value(args: Sequence[str]) -> str | None:
    """The value of ``--onnx-dir VALUE`` (space form) in ``args`` when it is the one argparse
    keeps (the last ``--onnx-dir`` of either form), else None."""
    value = None
    for index, arg in enumerate(args):
        if arg == FLAG and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(f"{FLAG}="):
            value = None
    return value


def rootdir_problem(config: pytest.Config) -> str | None:
    """Why this run's rootdir may have come from a space-form ``--onnx-dir`` value, or None.

    With ``--onnx-dir=DIR`` pytest searches for its config from the working folder (and the
    command line's test paths). The space form adds ``DIR`` to that search; it changes nothing
    only when ``DIR`` lies inside one of those folders and the rootdir is that folder or above it
    (no config file between ``DIR`` and it). ``--rootdir`` and ``-c`` choose the rootdir on
    purpose.
    """
    value = space_form_value(list(config.invocation_params.args))
    if value is None or config.option.rootdir or config.option.inifilename:
        return None
    invocation = config.invocation_params.dir
    folder = Path(os.path.abspath(invocation / value))
    if not folder.exists():
        return None  # pytest skipped it too: it only looks at paths that exist
    bases = [invocation, *_test_paths(config)]
    rootpath = config.rootpath
    if any(_within(folder, base) for base in bases) and any(
        _within(base, rootpath) for base in bases
    ):
        return None
    ini = config.inipath if config.inipath is not None else "none"
    return (
        f"{FLAG} {value} is written with a space, so pytest read the folder as a test path when "
        f"it chose its rootdir ({rootpath}) and config file ({ini}), and the project's pytest "
        f"and [tool.onnxparity] settings in {invocation} may not apply: write {FLAG}={value} "
        "(or choose with --rootdir)"
    )


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _test_paths(config: pytest.Config) -> list[Path]:
    """The command line's own test paths (node ids cut to their file), as absolute paths."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    base = config.invocation_params.dir
    return [Path(os.path.abspath(base / arg.split("::", 1)[0])) for arg in config.args]
