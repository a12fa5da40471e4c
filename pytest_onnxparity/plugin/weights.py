"""pytest glue for weight-space parity: one ``weights[<variant>]`` test per variant file.

On by default whenever a graph has variants: each variant's weights are compared with its
reference's (see :mod:`pytest_onnxparity.compare.weight_space`) in a
:class:`~pytest_onnxparity.plugin.items.CheckItem` that runs before the graph's inference
tests, needs no inputs and no onnxruntime, and records through the run's collector like the
other checks. ``--parity-weights off`` (or ini ``parity_weights``, or ``enabled = false`` in the
``[weights]`` table) turns it off; the table tunes the limits per tier.

Only pytest and the standard library are imported here; the core is imported where it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.compare.weight_space import WeightSettings
    from pytest_onnxparity.export.folder import Graph, ModelFile
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.run.engine import ParityEngine

WEIGHT_SETTINGS: pytest.StashKey[WeightSettings] = pytest.StashKey()
"""The resolved ``[weights]`` table of the run (with ``--parity-weights``)."""

_WEIGHTS_ITEM: pytest.StashKey[bool] = pytest.StashKey()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Resolve ``--parity-weights`` > ini ``parity_weights`` > ``[weights]`` > on, once."""
    config = session.config
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        return
    from pytest_onnxparity.compare.weight_space import parse_weights_settings
    from pytest_onnxparity.compare.weight_space.limits import parse_switch
    from pytest_onnxparity.config.tables import ConfigError, section_where

    parity_config = engine.settings.config
    override = config.option.parity_weights
    try:
        if override is None and config.getini("parity_weights"):
            try:
                override = parse_switch(str(config.getini("parity_weights")))
            except ValueError as error:
                raise ConfigError(f"ini parity_weights: {error}") from None
        where = section_where(parity_config.sources, "weights")
        settings = parse_weights_settings(
            parity_config.section("weights") if "weights" in parity_config.sections else None,
            where,
            override,
        )
        files = [model for graph in engine.folder.graphs for model in graph.files]
        settings.check_variants(
            list(dict.fromkeys([m.variant for m in files] + [m.tier for m in files])), where
        )
    except ConfigError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    config.stash[WEIGHT_SETTINGS] = settings


def pytest_onnxparity_graph_items(
    parent: pytest.Collector, graph: Graph, engine: ParityEngine
) -> list[pytest.Item]:
    settings = parent.config.stash.get(WEIGHT_SETTINGS, None)
    if settings is None:
        return []
    from pytest_onnxparity.plugin.items import CheckItem

    items: list[pytest.Item] = []
    for model in graph.files[1:]:
        if not settings.checks(model.variant, model.tier):
            continue
        item = CheckItem.from_parent(
            parent,
            name=f"weights[{model.variant}]",
            check=_weights_check(graph, model, settings),
            graph=graph,
            model_path=model.path,
        )
        item.stash[_WEIGHTS_ITEM] = True
        items.append(item)
    return items


def _weights_check(
    graph: Graph, model: ModelFile, settings: WeightSettings
) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        from pytest_onnxparity.diagnose.weights import WEIGHTS_CHECK, weights_check
        from pytest_onnxparity.results.records import CheckResult

        reference = graph.reference_file
        problem = model.problem or (
            reference.problem
            and f"{model.relpath} cannot be compared with its reference {reference.relpath}: "
            f"{reference.problem}"
        )
        if problem:
            return CheckResult(WEIGHTS_CHECK, graph.name, model.variant, False, message=problem)
        return weights_check(
            reference.path,
            model.path,
            graph=graph.name,
            variant=model.variant,
            tier=model.tier,
            settings=settings,
        )

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each graph's weights tests first: they need no inference, so a broken weight is named
    before the parity tests spend time running the variant."""
    groups: dict[int, list[pytest.Item]] = {}
    for item in items:
        if item.stash.get(_WEIGHTS_ITEM, False):
            groups.setdefault(id(item.parent), []).append(item)
    if not groups:
        return
    ordered: list[pytest.Item] = []
    for item in items:
        group = groups.pop(id(item.parent), None)
        if group is not None:
            ordered.extend(group)
        if not item.stash.get(_WEIGHTS_ITEM, False):
            ordered.append(item)
    items[:] = ordered


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """A row per variant: weights compared and failed, the unmatched share, the worst one."""
    collector = config.stash.get(keys.COLLECTOR, None)
    if collector is None or WEIGHT_SETTINGS not in config.stash:
        return
    from pytest_onnxparity.diagnose.weights import summary_lines

    lines = summary_lines(collector.records)
    if not lines:
        return
    terminalreporter.section("onnxparity weights")
    for line in lines:
        terminalreporter.line(line)
