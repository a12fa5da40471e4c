"""pytest glue for ready-made suites: ``--parity-suite NAME|PATH`` and ``--parity-suites``.

The selected suite is read once at configure time and handed to the core as the weakest layer
of the run's config (:func:`suite_base`, used by ``glue.start_run``); after discovery its
``[suite]`` section, extended by the user's config, is fitted to the folder's graphs
(:func:`fit_run_config`: input rules by name, batch size) and its extra checks become one test
per graph variant: ``pooled[<variant>]`` and ``streaming[<variant>]``. Streamed graphs skip
their synthesized one-shot parity tests (random one-shot inputs rarely fit a stateful graph)
unless ``one_shot = true``.

Only pytest and the standard library are imported here at load time.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin.options import INI_SUITE

if TYPE_CHECKING:
    from pytest_onnxparity.config.project import ParityConfig
    from pytest_onnxparity.export.folder import ExportFolder, Graph
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.suites.checks import StreamCache
    from pytest_onnxparity.suites.loading import Suite, SuiteOptions


@dataclass(frozen=True)
class SelectedSuite:
    """What ``--parity-suite`` (or the ``parity_suite`` ini key) chose; ``suite`` is None when
    neither is set."""

    suite: Suite | None


@dataclass(frozen=True)
class SuiteState:
    """The run's ``[suite]`` section fitted to the export folder.

    ``pooled`` / ``streamed``: the graphs that get pooled / streaming checks (every graph with
    variants when none fits, so that a suite that does not fit the export fails loudly).
    """

    options: SuiteOptions
    pooled: frozenset[str] = frozenset()
    streamed: frozenset[str] = frozenset()
    fitting_streams: frozenset[str] = frozenset()


SELECTED: pytest.StashKey[SelectedSuite] = pytest.StashKey()
STATE: pytest.StashKey[SuiteState] = pytest.StashKey()
STREAMS: pytest.StashKey[StreamCache] = pytest.StashKey()


def selected_suite(config: pytest.Config) -> Suite | None:
    """The suite of this run, read once: ``--parity-suite`` (relative to the working directory)
    > ini ``parity_suite`` (relative to the rootdir); an unknown one is a usage error."""
    if SELECTED not in config.stash:
        from pytest_onnxparity.suites.loading import SuiteError, find_suite

        cli = config.getoption("parity_suite", None)
        ini = config.getini(INI_SUITE)
        choice, base = (cli, Path.cwd()) if cli else (str(ini or ""), config.rootpath)
        suite = None
        if choice:
            try:
                suite = find_suite(choice, base)
            except SuiteError as error:
                raise pytest.UsageError(f"onnxparity: --parity-suite: {error}") from None
        config.stash[SELECTED] = SelectedSuite(suite)
    return config.stash[SELECTED].suite


def suite_base(config: pytest.Config) -> tuple[Mapping[str, Any] | None, str]:
    """The suite's table and its label, for ``config.load_config(base=..., base_source=...)``."""
    suite = selected_suite(config)
    return (None, "<no suite>") if suite is None else (suite.table, suite.label)


def fit_run_config(
    config: pytest.Config, parity_config: ParityConfig, folder: ExportFolder
) -> ParityConfig:
    """Validate the merged ``[suite]`` section and fit it to the discovered graphs (raises
    ``ConfigError``; ``glue.start_run`` turns it into a usage error)."""
    from pytest_onnxparity.onnxfile.signature import read_signature
    from pytest_onnxparity.suites.loading import (
        SUITE_SECTION,
        fit_to_graphs,
        parse_suite_options,
        with_sequence_defaults,
    )

    section = parity_config.section(SUITE_SECTION)
    if not section:
        return parity_config
    where = f"{' + '.join(parity_config.sources) or '<defaults>'} [suite]"
    options = parse_suite_options(section, where, base_dir=config.rootpath)
    signatures = {}
    pooled, streamed = set(), set()
    with_variants = {graph.name for graph in folder.graphs if graph.variants}
    for graph in folder.graphs:
        if graph.reference_file.problem:
            continue
        inputs, outputs = read_signature(str(graph.reference_file.path))
        signatures[graph.name] = inputs
        if options.pooled is not None and options.pooled.output in {o.name for o in outputs}:
            pooled.add(graph.name)
        if options.streaming is not None and options.streaming.streams(inputs, outputs):
            streamed.add(graph.name)
    config.stash[STATE] = SuiteState(
        options=options,
        pooled=frozenset(pooled or (with_variants if options.pooled else ())),
        streamed=frozenset(streamed or (with_variants if options.streaming else ())),
        fitting_streams=frozenset(streamed),
    )
    clips_given = any(
        config.getoption(name, None) is not None for name in ("parity_clips", "parity_dataset")
    )
    fitted = fit_to_graphs(parity_config, options, signatures)
    return with_sequence_defaults(fitted, options, clips_given)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE, None)
    suite = config.stash[SELECTED].suite if SELECTED in config.stash else None
    if state is None and suite is None:
        return None
    name = f"{suite.name} ({suite.source})" if suite is not None else "[suite] of the config"
    lines = [f"onnxparity suite: {name}"]
    if state is not None:
        options = state.options
        if options.pooled is not None:
            lines.append(f"  pooled: {options.pooled.describe()} on {_graph_list(state.pooled)}")
        if options.streaming is not None:
            lines.append(
                f"  streaming: {options.streaming.describe()} on "
                f"{_graph_list(state.fitting_streams)}"
            )
            if state.fitting_streams and not options.streaming.one_shot:
                lines.append(
                    "  their one-shot parity tests on synthesized inputs are deselected "
                    "(one_shot = true in [suite.streaming] keeps them)"
                )
    return lines


def _graph_list(graphs: frozenset[str]) -> str:
    return ", ".join(sorted(graphs)) or "no graph"


def pytest_onnxparity_graph_items(
    parent: pytest.Collector, graph: Graph, engine: ParityEngine
) -> list[pytest.Item] | None:
    state = parent.config.stash.get(STATE, None)
    if state is None:
        return None
    # The variants gated against the reference, and the graph's own fp32 file too when the
    # reference is something else (a torch module, TorchScript, a recording).
    tested = engine.tested_variants(graph)
    if not tested:
        return None
    from pytest_onnxparity.plugin.items import CheckItem
    from pytest_onnxparity.suites.checks import pooled_check, streaming_check

    options = state.options
    items: list[pytest.Item] = []
    for tag in tested:
        checks = []
        if options.pooled is not None and graph.name in state.pooled:
            checks.append(("pooled", partial(pooled_check, engine, graph, tag, options.pooled)))
        if options.streaming is not None and graph.name in state.streamed:
            cache = _stream_cache(parent.config)
            check = partial(streaming_check, engine, graph, tag, options.streaming, cache)
            checks.append(("streaming", check))
        for kind, check in checks:
            items.append(
                CheckItem.from_parent(
                    parent,
                    name=f"{kind}[{tag}]",
                    check=check,
                    graph=graph,
                    model_path=graph.file(tag).path,
                )
            )
    return items


def _stream_cache(config: pytest.Config) -> StreamCache:
    if STREAMS not in config.stash:
        from pytest_onnxparity.suites.checks import StreamCache

        config.stash[STREAMS] = StreamCache()
    return config.stash[STREAMS]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the synthesized one-shot parity tests of streamed graphs (their streaming test
    gates them; the header says so), unless ``one_shot = true``."""
    state = config.stash.get(STATE, None)
    if state is None or state.options.streaming is None or state.options.streaming.one_shot:
        return
    from pytest_onnxparity.plugin.items import ParityItem

    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        one_shot = (
            isinstance(item, ParityItem)
            and item.case.graph.name in state.fitting_streams
            and item.case.synthesized
        )
        (deselected if one_shot else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def show_suites(config: pytest.Config) -> int:
    """``--parity-suites``: explain the selected suite, or every shipped one; exit status 0.

    Runs from ``pytest_cmdline_main``, before configure, when no terminal reporter exists yet;
    like pytest's own ``--version``, it writes to standard output.
    """
    from pytest_onnxparity.suites.loading import describe_suite, find_suite, shipped_suites

    suite = selected_suite(config)
    suites = [suite] if suite is not None else [find_suite(n, Path.cwd()) for n in shipped_suites()]
    lines = [
        "onnxparity suites: pytest --onnx-dir DIR --parity-suite NAME -m parity",
        "(your [tool.onnxparity] and parity.toml extend and override a suite key by key)",
    ]
    for each in suites:
        lines += ["", *describe_suite(each)]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0
