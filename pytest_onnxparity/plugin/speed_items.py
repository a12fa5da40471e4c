"""The speed and size gates' test items: ``latency[<variant>]`` (a ``pytest.Function`` so it can
request pytest-benchmark's ``benchmark`` fixture; its rounds go through ``benchmark.pedantic``,
or ``time.perf_counter`` where pytest-benchmark is absent or disabled) and
``bundle[<variant>]`` / ``size[<variant>]`` for size budgets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin.folder_hooks import FolderHooks
from pytest_onnxparity.plugin.markers import mark_generated
from pytest_onnxparity.plugin.speed_settings import (
    NOT_ENFORCED,
    REFERENCE_TIMINGS,
    TIMING_GROUP,
    speed_settings,
)

if TYPE_CHECKING:
    from pytest_onnxparity.export.folder import Graph, ModelFile
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.speed.budgets import Budget
    from pytest_onnxparity.speed.measure import (
        MeasurementContext,
        RoundRunner,
        SpeedMeasurement,
        TimingPlan,
    )
    from pytest_onnxparity.speed.verdict import SpeedSubject


Measure = Callable[["RoundRunner", "TimingPlan"], "SpeedMeasurement"]


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


class BundleItem(FolderHooks, pytest.Item):
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


class TimingItem(FolderHooks, pytest.Function):
    """A timed figure (latency or RTF) gated on the speed budgets that fit its subject.

    A ``pytest.Function`` (built with :meth:`create`) because only functions can request
    fixtures, and the timing goes through pytest-benchmark's ``benchmark`` fixture. Feature
    modules make these for their own subjects (e.g. a pipeline's RTF over clips): ``measure``
    takes a round runner and the plan and returns the figure; ``measure_reference`` does the
    same for the reference. ``metric`` is what ``measure`` measures (``latency_ms``, ``rtf``).

    When a relative budget (``int4:rtf<=0.7x``) applies, the variant and the reference are
    timed in alternating rounds and the budget holds the median of the pairwise ratios
    (:func:`~pytest_onnxparity.speed.paired.measure_interleaved`); otherwise the reference's
    figure (for the "vs reference" column) is the one its own test measured in this process,
    or one measured after the variant's.
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
        metric: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.metric = metric
        self.measure = measure
        self.measure_reference = measure_reference
        self.context = context
        self.release = release
        self.release_key = release_key
        mark_generated(self, TIMING_GROUP)
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
        from pytest_onnxparity.speed.paired import measure_interleaved
        from pytest_onnxparity.speed.verdict import evaluate_speed

        settings = speed_settings(self.config)
        subject = self.subject
        plan = settings.speed.plan
        benchmark: Any = self.funcargs.get("benchmark")
        rounds: RoundRunner = (
            BenchmarkRounds(benchmark) if benchmark is not None else SerialRounds()
        )
        pairs = None
        reference: SpeedMeasurement | None
        try:
            if self._interleaved(settings.speed.budgets):
                assert self.measure_reference is not None
                paired = measure_interleaved(self.measure, self.measure_reference, plan, rounds)
                measurement, reference, pairs = paired.variant, paired.reference, paired.pairs
            else:
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
            pairs=pairs,
        )
        record_and_gate(self, result)

    def _interleaved(self, budgets: Sequence[Budget]) -> bool:
        """Whether a relative budget on this item's metric applies to its (non-reference)
        subject, so the reference must be timed in the same rounds."""
        from pytest_onnxparity.speed.budgets import select_budgets

        if self.subject.is_reference or self.measure_reference is None:
            return False
        return any(
            budget.relative and self.metric in (None, budget.metric)
            for budget in select_budgets(budgets, self.subject.scopes)
        )

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

    def __call__(
        self,
        target: Callable[[], object],
        warmup: int,
        repeats: int,
        setup: Callable[[], object] | None = None,
    ) -> list[float]:
        from pytest_onnxparity.speed.measure import SerialRounds

        if self.fixture.disabled:
            # pedantic() calls its target once when disabled; using it keeps the fixture "used".
            durations: list[float] = self.fixture.pedantic(
                SerialRounds(), args=(target, warmup, repeats, setup), rounds=1
            )
            return durations
        self.fixture.pedantic(
            target, setup=setup, rounds=repeats, warmup_rounds=warmup, iterations=1
        )
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
        metric="latency_ms",
    )


def _measure_latency(
    engine: ParityEngine, graph: Graph, model: ModelFile, rounds: RoundRunner, plan: TimingPlan
) -> SpeedMeasurement:
    from pytest_onnxparity.speed.measure import measure_latency, session_call

    call = session_call(engine.runner(model), engine.inputs(graph, {}).arrays)
    return measure_latency(call, plan, rounds)
