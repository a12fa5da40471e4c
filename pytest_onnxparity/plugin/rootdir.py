"""Path options written with a space (``--onnx-dir DIR``), and the rootdir pytest chose from them.

pytest finds its rootdir and config file before it loads plugins, so at that moment it does not
know ``--onnx-dir`` takes a value: ``pytest --onnx-dir /elsewhere/out`` reads ``/elsewhere/out`` as
a test path, and the rootdir (with its ``[tool.pytest]`` settings and the ``pyproject.toml`` whose
``[tool.onnxparity]`` the plugin reads) comes from the export folder instead of the project the
command runs in. ``--onnx-dir=/elsewhere/out`` does not have the problem. A plugin cannot redo
that choice, so a run whose config file differs from the one pytest finds without those values
(its own search, redone here) stops with the fix. The same holds for every option of the plugin
whose value is a path that exists (a baseline, clips...).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

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
    "--parity-model-index",
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
    """Why this run's rootdir or config file is not the project's, when a path option written
    with a space can have made it so; else None.

    The project's config file is the one pytest finds from the working folder (or the command
    line's test paths) without the space-form values, as ``--onnx-dir=DIR`` would have it.
    ``--rootdir`` and ``-c`` choose on purpose.
    """
    if config.option.rootdir or config.option.inifilename:
        return None
    invocation = config.invocation_params.dir
    values = [
        (flag, value)
        for flag, value in space_form_values(list(config.invocation_params.args))
        if Path(invocation, value).exists()  # pytest only looks at paths that exist
    ]
    if not values:
        return None
    start = _search_start(config)
    expected = project_config(start)
    inipath = None if config.inipath is None else Path(os.path.abspath(config.inipath))
    if expected is not None and inipath == expected:
        return None
    if expected is None and inipath is None and _within(start, config.rootpath):
        return None
    flag, value = values[0]
    chosen = inipath if inipath is not None else "no config file"
    project = expected if expected is not None else f"no config file, rootdir {start}"
    return (
        f"{flag} {value} is written with a space, so pytest took it for a test path and chose "
        f"rootdir {config.rootpath} ({chosen}) instead of the project's ({project}), whose "
        f"pytest and [tool.onnxparity] settings would not apply; write {flag}={value} (or "
        "choose with --rootdir)"
    )


CONFIG_FILES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)
"""The files pytest takes its configuration from, in the order it looks for them."""


def project_config(start: Path) -> Path | None:
    """The config file pytest finds from ``start`` upward: the first that holds pytest settings
    (a ``pytest.*`` file always does), else the first ``pyproject.toml`` on the way."""
    first_pyproject = None
    for folder in (start, *start.parents):
        for name in CONFIG_FILES:
            path = folder / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and first_pyproject is None:
                first_pyproject = path
            if _holds_pytest_settings(path):
                return path
    return first_pyproject


def _holds_pytest_settings(path: Path) -> bool:
    if path.name.startswith(("pytest.", ".pytest.")):
        return True
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if path.name == "pyproject.toml":
        try:
            tool = tomllib.loads(text).get("tool", {})
        except tomllib.TOMLDecodeError:
            return False
        return isinstance(tool, dict) and "pytest" in tool
    section = "tool:pytest" if path.name == "setup.cfg" else "pytest"
    return re.search(rf"^\[{re.escape(section)}\]\s*$", text, re.M) is not None


def _search_start(config: pytest.Config) -> Path:
    """Where pytest starts looking for its config without the space-form values: the common
    folder of the command line's test paths, else the working folder."""
    folders = [path if path.is_dir() else path.parent for path in _test_paths(config)]
    folders = [folder for folder in folders if folder.exists()]
    if not folders:
        return Path(os.path.abspath(config.invocation_params.dir))
    return Path(os.path.commonpath([str(folder) for folder in folders]))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _test_paths(config: pytest.Config) -> list[Path]:
    """The command line's own test paths (node ids cut to their file), as absolute paths."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    base = config.invocation_params.dir
    return [Path(os.path.abspath(base / arg.split("::", 1)[0])) for arg in config.args]
