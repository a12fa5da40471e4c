"""The export folder is data: pytest imports no ``conftest.py`` (and no other ``.py``) from it.

A downloaded model folder must not run code on the machine that tests it, nor replace the
reference through a conftest hook. pytest imports a directory's ``conftest.py`` at two moments:

* when it collects a :class:`pytest.Directory` (inside ``pytest_make_collect_report``): the
  export folder's node is collected here instead, by the same public report types, without
  that import; its children are graphs, never Python modules;
* at startup, for the test paths given on the command line (or ``testpaths``, or the
  invocation folder and its ``test*`` subfolders): naming the export folder as a test path while
  it holds a ``conftest.py`` is refused before pytest imports anything from it.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_onnxparity.plugin import keys


@pytest.hookimpl(tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport | None:
    if keys.ENGINE not in collector.config.stash:
        return None  # no export folder: leave pytest alone (and numpy unimported)
    from pytest_onnxparity.plugin.items import ExportDirNode

    if not isinstance(collector, ExportDirNode):
        return None
    call = pytest.CallInfo.from_call(
        lambda: list(collector.collect()), "collect", reraise=(KeyboardInterrupt, SystemExit)
    )
    if call.excinfo is None:
        return pytest.CollectReport(collector.nodeid, "passed", None, call.result)
    return pytest.CollectReport(
        collector.nodeid, "failed", collector.repr_failure(call.excinfo), None
    )


def refuse_initial_conftests(early_config: pytest.Config) -> None:
    """Raise a usage error when pytest is about to import a ``conftest.py`` of the export
    folder because a test path it starts from lies inside that folder."""
    namespace = early_config.known_args_namespace
    if getattr(namespace, "noconftest", False):
        return
    root = _export_root(early_config)
    if root is None or not root.is_dir():
        return
    for anchor in _anchors(early_config):
        if anchor != root and root not in anchor.parents:
            continue
        for folder in (anchor, *anchor.parents):
            conftest = folder / "conftest.py"
            if conftest.is_file():
                raise pytest.UsageError(
                    f"onnxparity: {conftest}: the export folder is data and its conftest.py is "
                    f"never imported, but {anchor} is also given as a test path, which would "
                    "make pytest import it; pass the folder only as --onnx-dir (or delete the "
                    "file if it is yours)"
                )
            if folder == root:
                break


def _export_root(early_config: pytest.Config) -> Path | None:
    cli = getattr(early_config.known_args_namespace, "onnx_dir", None)
    if cli:
        return Path(cli).resolve()
    try:
        ini = early_config.getini("parity_onnx_dir")
    except ValueError:
        return None
    return (early_config.rootpath / str(ini)).resolve() if ini else None


def _anchors(early_config: pytest.Config) -> Iterator[Path]:
    """The folders pytest loads initial conftests for, as its own startup picks them."""
    invocation = early_config.invocation_params.dir
    args = [str(arg).split("::")[0] for arg in early_config.known_args_namespace.file_or_dir]
    if not args and invocation == early_config.rootpath:
        for pattern in early_config.getini("testpaths"):
            args.extend(glob.glob(str(invocation / pattern), recursive=True))
    paths = [(invocation / arg).resolve() for arg in args]
    paths = [path for path in paths if path.exists()] or [invocation.resolve()]
    for path in paths:
        yield path
        if path.is_dir():
            yield from (child.resolve() for child in path.glob("test*") if child.is_dir())
