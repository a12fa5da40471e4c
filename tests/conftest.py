"""Shared fixtures: the bundled example export folder and copies of it to break."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.paths import EXAMPLE


@pytest.fixture(scope="session", autouse=True)
def _native_modules_imported_once() -> None:
    """pytester's in-process runs forget modules first imported during a run, and native
    extensions (onnx, onnxruntime, numpy.random, torch) abort or crash when imported a second
    time. Importing them once, through the model kit, before the first test keeps them loaded
    across runs. The plugin's own modules and hypothesis (whose pytest plugin imports it at every
    session's end) are imported once too: otherwise every in-process run imports them again,
    through pytest's assertion rewriting. A fixture, not module-level imports: the README's
    example run (``pytest --onnx-dir fixtures/example``) loads this file as an initial conftest
    of the ``testpaths`` and must not pay for torch."""
    import hypothesis  # noqa: F401
    import modelkit  # noqa: F401
    import numpy.random  # noqa: F401

    import pytest_onnxparity

    for module in pkgutil.walk_packages(pytest_onnxparity.__path__, "pytest_onnxparity."):
        if not module.name.endswith(".__main__"):  # importing it runs the command line
            importlib.import_module(module.name)


@pytest.fixture
def export_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled example (graphs only, no recorded data) to modify."""
    target = tmp_path / "export"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("reference", "*.toml"))
    return target


@pytest.fixture(params=[[], ["-n", "2"]], ids=["serial", "xdist2"])
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    """Run a pytester session serially and on two xdist workers."""
    return list(request.param)


RunPytest = Callable[..., pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester) -> RunPytest:
    """``run(*args)``: a pytest run in ``pytester.path``, without the cache provider, reporting
    every outcome (``-rA``). With ``-n`` it runs in a subprocess: xdist's workers cannot start
    in-process. A module that needs more common arguments overrides ``run`` with a fixture that
    calls this one.

    ``"--onnx-dir", DIR`` is passed as ``--onnx-dir=DIR`` (and so every path option): the export
    copies lie outside ``pytester.path``, and written with a space the folder would choose
    pytest's rootdir (the plugin stops such a run; tests/plugin/test_ordinary_install.py)."""

    def run_pytest(*args: str) -> pytest.RunResult:
        args = equals_form(args)
        common = ("-p", "no:cacheprovider", "-rA")
        if "-n" in args:
            return pytester.runpytest_subprocess(*common, *args)
        return pytester.runpytest(*common, *args)

    return run_pytest


def equals_form(args: tuple[str, ...]) -> tuple[str, ...]:
    """``("--onnx-dir", DIR, ...)`` as ``("--onnx-dir=DIR", ...)``, and so for every path option
    of the plugin (``plugin/rootdir.PATH_FLAGS``)."""
    from pytest_onnxparity.plugin.rootdir import PATH_FLAGS

    joined: list[str] = []
    for arg in args:
        if joined and joined[-1] in PATH_FLAGS:
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return tuple(joined)
