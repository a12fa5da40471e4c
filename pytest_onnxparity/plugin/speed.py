"""pytest glue of the speed and size gates: settings, generated items, pytest-benchmark, tables.

Registered by ``plugin.FEATURE_PLUGINS``; imports only pytest and the standard library at top
level. The measuring and the verdicts are in :mod:`~pytest_onnxparity.speed.timing` and
:mod:`~pytest_onnxparity.speed.sizes`.

* ``latency[<variant>]`` per graph file, when speed budgets are set or ``--parity-timing`` asks:
  a :class:`TimingItem`, a ``pytest.Function`` so that it can request pytest-benchmark's
  ``benchmark`` fixture. Its rounds go through ``benchmark.pedantic``, so ``--benchmark-json``,
  ``--benchmark-compare`` and ``--benchmark-compare-fail`` see them. Where pytest-benchmark is
  not installed, or disables itself (xdist workers, ``--benchmark-disable``), the same rounds
  are timed with ``time.perf_counter`` and the record says so.
* ``bundle[<variant>]`` under the export folder and ``size[<variant>]`` under a graph, when a
  size budget applies; the size tables are printed on every run with an export folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.export.discovery import Graph, ModelFile
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.speed.measure import (
        MeasurementContext,
        RoundRunner,
        SpeedMeasurement,
        TimingPlan,
    )
    from pytest_onnxparity.speed.sizes import SizeOptions
    from pytest_onnxparity.speed.verdict import SpeedOptions, SpeedSubject

TIMING_GROUP = "onnxparity-timing"
"""The ``xdist_group`` of every timing test: one worker runs them all under --dist loadgroup."""
BENCHMARK_PLUGIN = "benchmark"
PIPELINE_GRAPH = "pipeline"
"""The ``graph`` of the sequence gates' RTF subjects (``sequence.PIPELINE_GRAPH``): a scope."""

Measure = Callable[["RoundRunner", "TimingPlan"], "SpeedMeasurement"]


@dataclass(frozen=True)
class SpeedSettings:
    """The speed and size settings of this run, resolved once; under :data:`SPEED_SETTINGS`."""

    speed: SpeedOptions
    size: SizeOptions
    not_enforced: str | None
    """Why timing budgets are not enforced in this process (a parallel run), or None; after
    collection, :data:`NOT_ENFORCED` also knows whether --dist loadgroup took effect."""
    benchmark: bool
    """pytest-benchmark is loaded: timing tests request its fixture."""

    def to_json(self) -> dict[str, Any]:
        return {
            "speed": self.speed.to_json(),
            "size": self.size.to_json(),
            "not_enforced": self.not_enforced,
            "benchmark": self.benchmark,
        }


SPEED_SETTINGS: pytest.StashKey[SpeedSettings] = pytest.StashKey()
NOT_ENFORCED: pytest.StashKey[str | None] = pytest.StashKey()
"""Per process, after collection: why timing budgets are not enforced here, or None."""
REFERENCE_TIMINGS: pytest.StashKey[dict[tuple[str, str], SpeedMeasurement]] = pytest.StashKey()
"""Per process: the reference's figure per (graph or pipeline, metric), for relative budgets."""


def speed_settings(config: pytest.Config) -> SpeedSettings:
    """The run's speed and size settings; a bad budget or config key is a usage error."""
    if SPEED_SETTINGS not in config.stash:
        config.stash[SPEED_SETTINGS] = _resolve(config)
    return config.stash[SPEED_SETTINGS]


def _resolve(config: pytest.Config) -> SpeedSettings:
    from pytest_onnxparity.plugin.run import ensure_settings
    from pytest_onnxparity.speed.budgets import BudgetError
    from pytest_onnxparity.speed.sizes import resolve_size_options
    from pytest_onnxparity.speed.verdict import parallel_note, resolve_speed_options

    parity = ensure_settings(config)
    where = " + ".join(parity.config.sources) or "config"
    option = config.option
    try:
        speed = resolve_speed_options(
            parity.config.section("speed"),
            where,
            cli_budgets=option.parity_speed_budget,
            ini_budgets=config.getini("parity_speed_budgets"),
            repeats=option.parity_timing_repeats,
            ini_repeats=config.getini("parity_timing_repeats"),
            warmup=option.parity_timing_warmup,
            ini_warmup=config.getini("parity_timing_warmup"),
            measure=option.parity_timing,
            ini_measure=config.getini("parity_timing"),
        )
        size = resolve_size_options(
            parity.config.section("size"),
            where,
            cli_budgets=option.parity_size_budget,
            ini_budgets=config.getini("parity_size_budgets"),
        )
    except BudgetError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    workers, grouped = _xdist_layout(config)
    return SpeedSettings(
        speed=speed,
        size=size,
        not_enforced=parallel_note(workers, grouped),
        # pytest-benchmark disables itself on xdist workers (and warns for each run that asks
        # for its fixture there), so worker processes time with the plain serial runner.
        benchmark=config.pluginmanager.hasplugin(BENCHMARK_PLUGIN)
        and not hasattr(config, "workerinput"),
    )


def _xdist_layout(config: pytest.Config) -> tuple[int | None, bool]:
    """(number of xdist workers or None, whether tests are grouped by ``xdist_group``)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # xdist sets ``loadgroup`` on the workers of a --dist loadgroup run.
        return int(workerinput["workercount"]), bool(getattr(config.option, "loadgroup", False))
    dist = getattr(config.option, "dist", "no")
    workers = getattr(config.option, "numprocesses", None)
    if dist == "no" or not isinstance(workers, int):
        return None, False
    return workers, dist == "loadgroup"


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


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

    workers, grouped = _xdist_layout(config)
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


def bundle_items(parent: pytest.Collector, engine: ParityEngine) -> list[pytest.Item]:
    """``bundle[<variant>]`` for every variant bundle a size budget applies to."""
    settings = speed_settings(parent.config)
    if not settings.size.active:
        return []
    from pytest_onnxparity.export.sizes import size_report
    from pytest_onnxparity.speed.sizes import bundle_budgets, evaluate_bundle

    items: list[pytest.Item] = []
    for bundle in size_report(engine.folder).bundles:
        budgets = bundle_budgets(settings.size.budgets, bundle)
        if budgets:
            items.append(
                BundleItem.from_parent(
                    parent,
                    name=f"bundle[{bundle.variant}]",
                    check=partial(evaluate_bundle, bundle, budgets),
                    root=engine.folder.root,
                )
            )
    return items


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
    from pytest_onnxparity.speed.sizes import size_lines
    from pytest_onnxparity.speed.verdict import speed_lines

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


# --------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------


class BundleItem(pytest.Item):
    """A size gate of one variant bundle (every graph's file of one tag), under the folder."""

    def __init__(self, *, check: Callable[[], CheckResult], root: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.root = root
        self.add_marker("parity")

    def runtest(self) -> None:
        from pytest_onnxparity.plugin.items import record_and_gate

        record_and_gate(self, self.check())

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.root, None, self.name


def _timed_with_benchmark(benchmark: Any) -> None:
    """Stands for a timing test's function: its signature asks for pytest-benchmark's fixture."""


def _timed() -> None:
    """Stands for a timing test's function where pytest-benchmark is not loaded."""


class TimingItem(pytest.Function):
    """A timed figure (latency or RTF) gated on the speed budgets that fit its subject.

    A ``pytest.Function`` (built with :meth:`create`) because only functions can request
    fixtures, and the timing goes through pytest-benchmark's ``benchmark`` fixture. Feature
    modules make these for their own subjects (e.g. a pipeline's RTF over clips): ``measure``
    takes a round runner and the plan and returns the figure; ``measure_reference`` does the
    same for the reference when its own timing test did not run in this process.
    """

    def __init__(
        self,
        *,
        subject: SpeedSubject,
        measure: Measure,
        context: Callable[[], MeasurementContext],
        measure_reference: Measure | None = None,
        release: Callable[[], None] | None = None,
        release_key: object = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.measure = measure
        self.measure_reference = measure_reference
        self.context = context
        self.release = release
        self.release_key = release_key
        self.add_marker("parity")
        self.add_marker(pytest.mark.xdist_group(TIMING_GROUP))
        if "benchmark" in self.fixturenames:
            self.add_marker(pytest.mark.benchmark(group=f"onnxparity {subject.graph}"))

    @classmethod
    def create(cls, parent: pytest.Collector, name: str, **kwargs: Any) -> TimingItem:
        """The public constructor: requests ``benchmark`` where pytest-benchmark is loaded."""
        use_benchmark = speed_settings(parent.config).benchmark
        callobj = _timed_with_benchmark if use_benchmark else _timed
        return cls.from_parent(parent, name=name, callobj=callobj, **kwargs)

    def runtest(self) -> None:
        from pytest_onnxparity.plugin.items import record_and_gate
        from pytest_onnxparity.run.cases import INPUT_PROBLEMS
        from pytest_onnxparity.speed.budgets import BudgetError
        from pytest_onnxparity.speed.measure import SerialRounds
        from pytest_onnxparity.speed.verdict import evaluate_speed

        settings = speed_settings(self.config)
        subject = self.subject
        plan = settings.speed.plan
        benchmark: Any = self.funcargs.get("benchmark")
        rounds: RoundRunner = (
            BenchmarkRounds(benchmark) if benchmark is not None else SerialRounds()
        )
        try:
            measurement = self.measure(rounds, plan)
            reference = self._reference(measurement.metric, plan)
            context = self.context()
        except (*INPUT_PROBLEMS, BudgetError) as problem:
            pytest.fail(f"{subject.title}: {problem}", pytrace=False)
        if subject.is_reference:
            store = self.config.stash.setdefault(REFERENCE_TIMINGS, {})
            store[(subject.graph, measurement.metric)] = measurement
        if benchmark is not None:
            benchmark.extra_info.update(
                {
                    "onnxparity": {
                        "graph": subject.graph,
                        "variant": subject.variant,
                        "metric": measurement.metric,
                        "value": measurement.value,
                        "context": context.to_json(),
                    }
                }
            )
        result = evaluate_speed(
            subject,
            measurement,
            settings.speed.budgets,
            context,
            reference=reference,
            not_enforced=self.config.stash.get(NOT_ENFORCED, settings.not_enforced),
        )
        record_and_gate(self, result)

    def _reference(self, metric: str, plan: TimingPlan) -> SpeedMeasurement | None:
        from pytest_onnxparity.speed.measure import SerialRounds

        store = self.config.stash.setdefault(REFERENCE_TIMINGS, {})
        key = (self.subject.graph, metric)
        if self.subject.is_reference:
            return None
        if key not in store and self.measure_reference is not None:
            store[key] = self.measure_reference(SerialRounds(), plan)
        return store.get(key)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.subject.graph}::{self.name}"


@dataclass(frozen=True)
class BenchmarkRounds:
    """Rounds timed by pytest-benchmark's fixture (``benchmark.pedantic``), so its JSON, compare
    and compare-fail options see them; its own serial timer where the fixture is disabled."""

    fixture: Any

    @property
    def name(self) -> str:
        if self.fixture.disabled:
            return "time.perf_counter (pytest-benchmark disabled in this process)"
        return "pytest-benchmark"

    def __call__(self, target: Callable[[], object], warmup: int, repeats: int) -> list[float]:
        from pytest_onnxparity.speed.measure import SerialRounds

        if self.fixture.disabled:
            # pedantic() calls its target once when disabled; using it keeps the fixture "used".
            durations: list[float] = self.fixture.pedantic(
                SerialRounds(), args=(target, warmup, repeats), rounds=1
            )
            return durations
        self.fixture.pedantic(target, rounds=repeats, warmup_rounds=warmup, iterations=1)
        return list(self.fixture.stats.stats.data)


def latency_item(
    parent: pytest.Collector, graph: Graph, model: ModelFile, engine: ParityEngine
) -> TimingItem:
    """``latency[<variant>]``: one call of the graph file's cached session, median of repeats."""
    from pytest_onnxparity.speed.measure import MeasurementContext
    from pytest_onnxparity.speed.verdict import SpeedSubject

    def context() -> MeasurementContext:
        return MeasurementContext.of_session(
            engine.settings.session, engine.runner(model).providers
        )

    return TimingItem.create(
        parent,
        name=f"latency[{model.variant}]",
        subject=SpeedSubject(graph.name, model.variant, model.tier, graph.reference),
        measure=partial(_measure_latency, engine, graph, model),
        measure_reference=partial(_measure_latency, engine, graph, graph.reference_file),
        context=context,
        release=partial(engine.release, graph),
        release_key=(id(engine), graph.name),
    )


def _measure_latency(
    engine: ParityEngine, graph: Graph, model: ModelFile, rounds: RoundRunner, plan: TimingPlan
) -> SpeedMeasurement:
    from pytest_onnxparity.speed.measure import measure_latency, session_call

    call = session_call(engine.runner(model), engine.inputs(graph, {}).arrays)
    return measure_latency(call, plan, rounds)
