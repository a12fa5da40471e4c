"""pytest glue of the speed and size gates: settings, generated items, pytest-benchmark, tables.

Registered by ``plugin.FEATURE_PLUGINS``; imports only pytest and the standard library at top
level. The measuring and the verdicts are in :mod:`~pytest_onnxparity.speed.measure`,
:mod:`~pytest_onnxparity.speed.verdict` and :mod:`~pytest_onnxparity.speed.sizes`.

* ``latency[<variant>]`` per graph file, when speed budgets are set or ``--parity-timing`` asks:
  a :class:`TimingItem`, a ``pytest.Function`` so that it can request pytest-benchmark's
  ``benchmark`` fixture. Its rounds go through ``benchmark.pedantic``, so ``--benchmark-json``,
  ``--benchmark-compare`` and ``--benchmark-compare-fail`` see them. Where pytest-benchmark is
  not installed, or disables itself (xdist workers, ``--benchmark-disable``), the same rounds
  are timed with ``time.perf_counter`` and the record says so.
* ``bundle[<variant>]`` under the export folder and ``size[<variant>]`` under a graph, when a
  size budget applies; the size tables are printed on every run with an export folder."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys
from pytest_onnxparity.plugin.speed_items import (
    TimingItem,
    bundle_items,
    latency_item,
)
from pytest_onnxparity.plugin.speed_settings import (
    NOT_ENFORCED,
    PIPELINE_GRAPH,
    TIMING_GROUP,
    speed_settings,
    xdist_layout,
)

if TYPE_CHECKING:
    from pytest_onnxparity.export.folder import Graph
    from pytest_onnxparity.run.engine import ParityEngine


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Resolved at the session start, still before collection, once every plugin is registered.
    config = session.config
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        return
    from pytest_onnxparity.speed.budgets import BudgetError
    from pytest_onnxparity.speed.verdict import check_scopes

    settings = speed_settings(config)
    folder = engine.folder
    names = {
        name
        for graph in folder.graphs
        for model in graph.files
        for name in (graph.name, model.variant, model.tier, f"{graph.name}/{model.variant}")
    }
    try:
        check_scopes(settings.size.budgets, names, str(folder.root))
        check_scopes(settings.speed.budgets, names | _pipeline_scopes(engine), str(folder.root))
    except BudgetError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None


def _pipeline_scopes(engine: ParityEngine) -> set[str]:
    """Speed budgets may also name the sequence gates' pipeline and its variant sets."""
    sets = engine.settings.config.section("sequence").get("variant_sets", {})
    names = set(sets) if isinstance(sets, dict) else set()
    # Without variant_sets the sequence gates make one set per tag, so every tag may be a set.
    names |= {model.variant for graph in engine.folder.graphs for model in graph.files}
    return {PIPELINE_GRAPH, *names, *(f"{PIPELINE_GRAPH}/{name}" for name in names)}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under --dist loadgroup, xdist's workers tag each grouped test's node id with "@<group>"
    # (in their own modifyitems hook, before this one) and the scheduler groups by that tag. On
    # pytest versions whose node ids cannot be re-tagged the grouping silently does nothing, so
    # the tag itself is the proof that the timing tests run serially on one worker.
    if keys.ENGINE not in config.stash:
        return  # no export folder, so no timing tests (and nothing to import)
    from pytest_onnxparity.speed.verdict import parallel_note

    workers, grouped = xdist_layout(config)
    timing = [item for item in items if isinstance(item, TimingItem)]
    tagged = all(item.nodeid.endswith(f"@{TIMING_GROUP}") for item in timing)
    config.stash[NOT_ENFORCED] = parallel_note(
        workers, grouped and tagged, group_requested=grouped and not tagged
    )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if keys.ENGINE not in config.stash:
        return None
    settings = speed_settings(config)
    lines = []
    speed = settings.speed
    if speed.active:
        budgets = ", ".join(b.text for b in speed.budgets) or "none (measure only)"
        timer = "pytest-benchmark" if settings.benchmark else "time.perf_counter"
        lines.append(
            f"onnxparity speed: budgets {budgets}; median of {speed.plan.repeats} after "
            f"{speed.plan.warmup} warm-up; timer {timer}"
        )
        if settings.not_enforced:
            lines.append(f"onnxparity speed: {settings.not_enforced}")
    if settings.size.active:
        lines.append(f"onnxparity size: budgets {', '.join(b.text for b in settings.size.budgets)}")
    return lines or None


def pytest_onnxparity_graph_items(
    parent: pytest.Collector, graph: Graph, engine: ParityEngine
) -> list[pytest.Item] | None:
    settings = speed_settings(parent.config)
    items: list[pytest.Item] = []
    if settings.speed.active:
        items.extend(latency_item(parent, graph, model, engine) for model in graph.files)
    if settings.size.active:
        from pytest_onnxparity.export.sizes import file_size
        from pytest_onnxparity.plugin.items import CheckItem
        from pytest_onnxparity.speed.sizes import evaluate_file, file_budgets

        for model in graph.files:
            size = file_size(engine.folder.root, graph, model)
            budgets = file_budgets(settings.size.budgets, size)
            if budgets:
                items.append(
                    CheckItem.from_parent(
                        parent,
                        name=f"size[{model.variant}]",
                        check=partial(evaluate_file, size, budgets),
                        graph=graph,
                        model_path=model.path,
                    )
                )
    return items


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    engine = collector.config.stash.get(keys.ENGINE, None)
    if engine is None or not report.passed or collector.path != engine.folder.root:
        return report
    from pytest_onnxparity.plugin.items import ExportDirNode

    if isinstance(collector, ExportDirNode):
        report.result = [*report.result, *bundle_items(collector, engine)]
    return report


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # The core frees a graph's sessions after its parity tests; timing tests open them again,
    # so they free them once the next test times something else.
    if isinstance(item, TimingItem) and item.release is not None:
        same = isinstance(nextitem, TimingItem) and nextitem.release_key == item.release_key
        if not same:
            item.release()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    config = terminalreporter.config
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None or config.option.collectonly:
        return
    from pytest_onnxparity.export.sizes import size_report
    from pytest_onnxparity.speed.report import speed_lines
    from pytest_onnxparity.speed.sizes import size_lines

    collector = config.stash.get(keys.COLLECTOR, None)
    records = collector.records if collector is not None else []
    lines = speed_lines(records)
    if lines:
        terminalreporter.section("onnxparity speed")
        for line in lines:
            terminalreporter.line(line)
    terminalreporter.section("onnxparity sizes")
    for line in size_lines(size_report(engine.folder)):
        terminalreporter.line(line)
