"""pytest glue for graph health and quantization coverage: one test per file × check.

For every file of a graph (its reference included) this adds ``health-<check>[<variant>]``
items, and for every variant stored narrower than its reference a ``coverage[<variant>]`` item.
They carry the ``parity`` marker, run through :class:`pytest_onnxparity.plugin.items.CheckItem`, and
share the engine's sessions and synthesized inputs with the parity tests. They are opt-in: a
``[health]`` config table or ``--parity-health-checks`` turns them on (see ``health_config``).

Only pytest and the standard library are imported here; the core modules (``health``,
``coverage``, ``health_config``) are imported where they are used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.diagnose.health.config import FileOptions, HealthConfig
    from pytest_onnxparity.export.folder import Graph, ModelFile
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.run.engine import ParityEngine

HEALTH_CONFIG: pytest.StashKey[HealthConfig] = pytest.StashKey()
"""The resolved ``[health]`` configuration of the run (with ``--parity-health-checks``)."""

_HEALTH_ITEM: pytest.StashKey[bool] = pytest.StashKey()

# Warnings listed in the terminal summary before "… N more".
_SUMMARY_WARNINGS = 10


# Resolved at the session start, still before collection, once every plugin is registered.
@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        return
    from pytest_onnxparity.config.tables import ConfigError
    from pytest_onnxparity.diagnose.health.config import parse_health_config

    parity_config = engine.settings.config
    folder = engine.folder
    try:
        health = parse_health_config(
            parity_config.section("health") if "health" in parity_config.sections else None,
            _where(parity_config.sources),
            config.option.parity_health_checks,
        )
        files = [model for graph in folder.graphs for model in graph.files]
        health.check_scopes(
            [graph.name for graph in folder.graphs],
            [model.variant for model in files],
            [model.tier for model in files],
        )
    except ConfigError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    config.stash[HEALTH_CONFIG] = health


def _where(sources: tuple[str, ...]) -> str:
    """The health table's name in each config file it may come from."""
    names = [
        source.replace("[tool.onnxparity]", "[tool.onnxparity.health]")
        if source.endswith("[tool.onnxparity]")
        else f"{source} [health]"
        for source in sources
    ]
    return " + ".join(names) or "[tool.onnxparity.health]"


def pytest_onnxparity_graph_items(
    parent: pytest.Collector, graph: Graph, engine: ParityEngine
) -> list[pytest.Item]:
    health = parent.config.stash.get(HEALTH_CONFIG, None)
    if health is None or not health.enabled:
        return []
    from pytest_onnxparity.diagnose.coverage import COVERAGE_CHECK
    from pytest_onnxparity.export.naming import TIERS_BY_PRECISION
    from pytest_onnxparity.plugin.items import CheckItem

    items: list[pytest.Item] = []

    def add(name: str, model: ModelFile, check: Callable[[], CheckResult]) -> None:
        item = CheckItem.from_parent(
            parent, name=name, check=check, graph=graph, model_path=model.path
        )
        item.stash[_HEALTH_ITEM] = True
        items.append(item)

    reference = graph.reference_file
    for model in graph.files:
        options = health.for_file(graph.name, model.variant, model.tier)
        for check in options.checks:
            if check != COVERAGE_CHECK:
                name = f"health-{check}[{model.variant}]"
                add(name, model, _health_check(engine, graph, model, check, options))
    for model in graph.files[1:]:
        options = health.for_file(graph.name, model.variant, model.tier)
        narrower = TIERS_BY_PRECISION.index(model.tier) > TIERS_BY_PRECISION.index(reference.tier)
        if COVERAGE_CHECK in options.checks and narrower:
            add(f"coverage[{model.variant}]", model, _coverage_check(graph, model, options))
    return items


def _health_check(
    engine: ParityEngine, graph: Graph, model: ModelFile, check: str, options: FileOptions
) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        from pytest_onnxparity.diagnose.health.run import run_health_check
        from pytest_onnxparity.run.cases import INPUT_PROBLEMS

        is_reference = model is graph.reference_file
        compares = check in ("initializers", "structure") and not is_reference
        problem = _problem(graph, model, compares)
        if problem is not None:
            return _failed(f"health:{check}", graph, model, problem)
        try:
            return run_health_check(
                check,
                model.path,
                graph=graph.name,
                variant=model.variant,
                reference_path=None if is_reference else graph.reference_file.path,
                options=options.health,
                run_outputs=lambda: _outputs(engine, graph, model),
            )
        except INPUT_PROBLEMS as error:
            return _failed(f"health:{check}", graph, model, str(error))

    return run


def _coverage_check(
    graph: Graph, model: ModelFile, options: FileOptions
) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        from pytest_onnxparity.diagnose.coverage import COVERAGE_CHECK, coverage_check

        problem = _problem(graph, model, compares=True)
        if problem is not None:
            return _failed(COVERAGE_CHECK, graph, model, problem)
        return coverage_check(
            graph.reference_file.path,
            model.path,
            graph=graph.name,
            variant=model.variant,
            options=options.coverage,
        )

    return run


def _problem(graph: Graph, model: ModelFile, compares: bool) -> str | None:
    """Why the check cannot run: the file's discovery problem, or its reference's."""
    if model.problem:
        return model.problem
    reference = graph.reference_file
    if compares and reference.problem:
        return (
            f"{model.relpath} cannot be compared with its reference {reference.relpath}: "
            f"{reference.problem}"
        )
    return None


def _failed(check: str, graph: Graph, model: ModelFile, message: str) -> CheckResult:
    from pytest_onnxparity.results.records import CheckResult

    return CheckResult(check, graph.name, model.variant, passed=False, message=message)


def _outputs(engine: ParityEngine, graph: Graph, model: ModelFile) -> dict[str, Any]:
    """The file's own outputs (the reference file's too, whatever the graph is compared with)
    on the graph's default input set, through the engine's cached session and inputs."""
    return engine.runner(model).run(engine.inputs(graph, {}).arrays)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Free the graph's sessions after its last health item, as the parity items do."""
    if not item.stash.get(_HEALTH_ITEM, False):
        return
    from pytest_onnxparity.plugin.items import CheckItem

    engine = item.config.stash.get(keys.ENGINE, None)
    last_of_graph = nextitem is None or nextitem.parent is not item.parent
    if isinstance(item, CheckItem) and engine is not None and last_of_graph:
        engine.release(item.graph)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The coverage table and the health warnings, read from the run's records."""
    collector = config.stash.get(keys.COLLECTOR, None)
    health = config.stash.get(HEALTH_CONFIG, None)
    if collector is None or health is None or not health.enabled:
        return
    from pytest_onnxparity.diagnose.coverage import summary_lines
    from pytest_onnxparity.diagnose.health.run import warning_lines

    records = collector.records
    lines = summary_lines(records)
    warnings = warning_lines(records, _SUMMARY_WARNINGS)
    if lines and warnings:
        lines.append("")
    lines.extend(warnings)
    if not lines:
        return
    terminalreporter.section("onnxparity health")
    for line in lines:
        terminalreporter.line(line)
