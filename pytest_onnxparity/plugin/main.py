"""pytest entry point (``pytest11``): options, the marker, and hooks that wire the core together.

Loading this module imports only pytest and the standard library; numpy, onnx and onnxruntime
are imported when ``--onnx-dir`` (or a parity fixture) asks for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from pytest_onnxparity.plugin import keys
from pytest_onnxparity.plugin.options import add_options

# Glue modules of optional features, each a plugin object module registered at configure time.
# They import only pytest and the standard library at top level.
FEATURE_PLUGINS: tuple[str, ...] = (
    "localize",
    "results",
    "health",
    "weights",
    "suites",
    "speed",
    "references",
    "sequence",
    "data_folder",
)

MARKER_DOC = (
    "parity(graph=None, variant=None, tier=None, max_abs=None, mean_abs=None, p99_abs=None, "
    "rel_l2=None, min_cosine=None, min_argmax_agreement=None, min_topk_overlap=None, "
    "argmax_axis=-1, topk=5): an ONNX parity test; the keywords select graph/variant cases "
    "and override tolerances for this test"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before pytest imports the conftest.py files of the test paths: the export folder is data.
    from pytest_onnxparity.plugin.data_folder import refuse_initial_conftests

    refuse_initial_conftests(early_config)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    # Like --markers: explain and exit before a session starts (feature plugins are registered
    # later, at configure time, so this hook has to live here).
    if config.getoption("parity_suites"):
        from pytest_onnxparity.plugin.suites import show_suites

        return show_suites(config)
    return None


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_onnxparity.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    from pytest_onnxparity.plugin.rootdir import rootdir_problem

    problem = rootdir_problem(config)
    if problem:
        raise pytest.UsageError(f"onnxparity: {problem}")
    from pytest_onnxparity.plugin import fixtures

    config.pluginmanager.register(fixtures, "onnxparity-fixtures")
    onnx_dir, from_command_line = _onnx_dir(config)
    if onnx_dir is not None:
        from pytest_onnxparity.plugin.run import start_run

        # Before the feature plugins register, so their pytest_configure finds the run's
        # settings and engine in the stash instead of reading the config files again.
        start_run(config, onnx_dir, from_command_line=from_command_line)
    for name in FEATURE_PLUGINS:
        module = importlib.import_module(f"pytest_onnxparity.plugin.{name}")
        config.pluginmanager.register(module, f"onnxparity-{name}_plugin")
    if not hasattr(config, "workerinput"):
        from pytest_onnxparity.plugin.reporter import ParityReporter

        reporter = ParityReporter(config)
        config.stash[keys.COLLECTOR] = reporter.collector
        config.pluginmanager.register(reporter, "onnxparity-reporter")


def _onnx_dir(config: pytest.Config) -> tuple[Path | None, bool]:
    """The export folder and whether the command line named it. ``--onnx-dir`` is relative to
    the working directory; the ini key to the rootdir."""
    cli = config.getoption("onnx_dir")
    if cli:
        return Path(cli).resolve(), True
    ini = config.getini("parity_onnx_dir")
    return ((config.rootpath / str(ini)).resolve() if ini else None), False


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if keys.ENGINE not in config.stash:
        return None
    from pytest_onnxparity.plugin.run import header_lines

    return header_lines(config)


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if keys.ENGINE not in parent.config.stash:
        return None
    from pytest_onnxparity.plugin.items import collect_export_dir

    return collect_export_dir(path, parent)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "parity_case" in metafunc.fixturenames:
        from pytest_onnxparity.plugin.fixtures import parametrize_cases

        parametrize_cases(metafunc)


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("parity")
    if marker is not None and (marker.args or marker.kwargs):
        from pytest_onnxparity.plugin.run import marker_problem

        problem = marker_problem(marker.args, marker.kwargs)
        if problem:
            pytest.fail(f"{item.nodeid}: {problem}", pytrace=False)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if keys.ENGINE in item.config.stash:
        from pytest_onnxparity.plugin.items import release_finished_graph

        release_finished_graph(item.config.stash[keys.ENGINE], item, nextitem)
