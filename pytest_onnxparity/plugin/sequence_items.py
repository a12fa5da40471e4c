"""The sequence gates' test items: ``sequence[<set>-<clip>]`` per clip, ``sequence[<set>]`` over
the corpus, and ``rtf[<set>]`` when timings are asked for; each set's items share one
``xdist_group`` and one per-process cache of clips, reference decodes and comparisons."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin.folder_hooks import FolderHooks
from pytest_onnxparity.plugin.sequence_settings import (
    ADAPTER_HOOK,
    CACHE,
    DOCS,
    GROUP_PREFIX,
    SequenceSettings,
)

if TYPE_CHECKING:
    from pytest_onnxparity.plugin.speed_items import TimingItem
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.speech.sequence.clip_compare import ClipComparison
    from pytest_onnxparity.speech.sequence.config import SequenceOptions
    from pytest_onnxparity.speech.sequence.pipeline import PipelineAdapter
    from pytest_onnxparity.speech.sequence.run import SequenceCache, VariantSet
    from pytest_onnxparity.speed.measure import RoundRunner, SpeedMeasurement, TimingPlan


def sequence_items(
    parent: pytest.Collector, engine: ParityEngine, settings: SequenceSettings
) -> list[pytest.Item]:
    """Every sequence item of the run, or one failing ``sequence`` item saying what is missing."""
    from pytest_onnxparity.config.tables import ConfigError
    from pytest_onnxparity.speech.audio.clips import ClipError
    from pytest_onnxparity.speech.sequence.run import SequenceCache, resolve_variant_sets

    config = parent.config
    adapter = config.hook.pytest_onnxparity_pipeline_adapter(config=config)
    if adapter is None:
        return [
            ProblemItem.from_parent(
                parent,
                name="sequence",
                problem=(
                    f"no pipeline adapter: sequence gates are configured ({settings.where}) but no "
                    f"conftest.py implements {ADAPTER_HOOK}(config); return your adapter from it "
                    f"(see {DOCS})"
                ),
            )
        ]
    options = settings.options
    roles = options.graphs or tuple(getattr(adapter, "graphs", None) or ()) or _set_roles(options)
    try:
        reference, variant_sets = resolve_variant_sets(
            engine.folder,
            roles,
            options.variant_sets,
            selected=settings.selected,
            overrides=tuple(options.overrides),
            where=settings.where,
        )
        clip_ids = settings.source.clip_ids(base_dir=settings.base_dir, limit=settings.limit)
    except (ConfigError, ClipError, ImportError) as problem:
        return [ProblemItem.from_parent(parent, name="sequence", problem=str(problem))]
    sample_rate = getattr(adapter, "sample_rate", None) or settings.source.sample_rate
    cache = SequenceCache(
        adapter,
        reference,
        load_clips=partial(
            settings.source.load,
            base_dir=settings.base_dir,
            limit=settings.limit,
            sample_rate=sample_rate,
        ),
        open_graphs=partial(_open_graphs, engine),
        normalization=options.normalization,
    )
    config.stash[CACHE] = cache
    context = {
        "reference_files": reference.to_json()["files"],
        "clip_source": settings.source.describe(settings.base_dir),
        "normalization": options.normalization.to_json(),
    }
    release = partial(_release, engine, reference)
    items: list[pytest.Item] = []
    for variant_set in variant_sets:
        described = variant_set.to_json()
        set_context = {**context, **{key: described[key] for key in ("files", "tags", "tier")}}
        gates = options.gates_for(variant_set.name)
        for clip_id in clip_ids:
            items.append(
                SequenceItem.from_parent(
                    parent,
                    name=f"sequence[{variant_set.name}-{clip_id}]",
                    check=partial(_clip_check, cache, variant_set, clip_id, gates, set_context),
                    variant_set=variant_set.name,
                    release=release,
                )
            )
        items.append(
            SequenceItem.from_parent(
                parent,
                name=f"sequence[{variant_set.name}]",
                check=partial(_set_check, cache, variant_set, clip_ids, gates, set_context),
                variant_set=variant_set.name,
                release=release,
            )
        )
    items.extend(rtf_items(parent, engine, cache, reference, variant_sets))
    return items


def _set_roles(options: SequenceOptions) -> tuple[str, ...]:
    """The roles the variant set tables name, when nothing else lists the pipeline's graphs."""
    roles = {
        role for tags in options.variant_sets.values() if not isinstance(tags, str) for role in tags
    }
    return tuple(sorted(roles))


def _open_graphs(engine: ParityEngine, variant_set: VariantSet) -> dict[str, Any]:
    return {role: engine.runner(model) for role, model in variant_set.files.items()}


def _release(engine: ParityEngine, reference: VariantSet) -> None:
    """Free the pipeline graphs' sessions (all their files) once its items are done."""
    for role in reference.files:
        engine.release(engine.folder.graph(role))


def _problems() -> tuple[type[BaseException], ...]:
    """The user's input being wrong (not our bug): a one-line failure, no traceback."""
    from pytest_onnxparity.run.cases import INPUT_PROBLEMS
    from pytest_onnxparity.speech.audio.clips import ClipError
    from pytest_onnxparity.speech.sequence.pipeline import AdapterError

    return (*INPUT_PROBLEMS, ClipError, AdapterError, ImportError)


def _clip_check(
    cache: SequenceCache,
    variant_set: VariantSet,
    clip_id: str,
    gates: Any,
    context: Mapping[str, Any],
) -> CheckResult:
    from pytest_onnxparity.speech.sequence.verdict import evaluate_clip

    try:
        comparison = cache.comparison(
            variant_set, clip_id, teacher_forcing=gates.needs_teacher_forcing
        )
    except _problems() as problem:
        return _failed(variant_set.name, f"clip {clip_id!r}: {problem}", "sequence-clip")
    return evaluate_clip(comparison, gates, variant_set=variant_set.name, context=context)


def _set_check(
    cache: SequenceCache,
    variant_set: VariantSet,
    clip_ids: Sequence[str],
    gates: Any,
    context: Mapping[str, Any],
) -> CheckResult:
    from pytest_onnxparity.speech.sequence.verdict import evaluate_sequence

    comparisons: list[ClipComparison] = []
    for clip_id in clip_ids:
        try:
            comparisons.append(
                cache.comparison(variant_set, clip_id, teacher_forcing=gates.needs_teacher_forcing)
            )
        except _problems() as problem:
            return _failed(variant_set.name, f"clip {clip_id!r}: {problem}", "sequence")
    return evaluate_sequence(comparisons, gates, variant_set=variant_set.name, context=context)


def _failed(variant_set: str, message: str, check: str) -> CheckResult:
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.speech.sequence.pipeline import PIPELINE_GRAPH

    return CheckResult(
        check, PIPELINE_GRAPH, variant_set, passed=False, message=f"{variant_set}: {message}"
    )


class SequenceItem(FolderHooks, pytest.Item):
    """One sequence check (a clip, or a variant set's corpus), gated on its
    :class:`~pytest_onnxparity.results.records.CheckResult`."""

    def __init__(
        self,
        *,
        check: Callable[[], CheckResult],
        variant_set: str,
        release: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.variant_set = variant_set
        self.release = release
        self.add_marker("parity")
        # One worker per set under --dist loadgroup: its clips and reference decodes are
        # computed there once.
        self.add_marker(pytest.mark.xdist_group(f"{GROUP_PREFIX}{variant_set}"))

    def runtest(self) -> None:
        from pytest_onnxparity.plugin.items import record_and_gate

        record_and_gate(self, self.check())

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


class ProblemItem(FolderHooks, pytest.Item):
    """Stands for the sequence items when they cannot be made; fails with one line."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem
        self.add_marker("parity")

    def runtest(self) -> None:
        from pytest_onnxparity.plugin.items import record_and_gate
        from pytest_onnxparity.results.records import CheckResult
        from pytest_onnxparity.speech.sequence.pipeline import PIPELINE_GRAPH
        from pytest_onnxparity.speech.sequence.report import CHECK_NAME

        result = CheckResult(
            CHECK_NAME, PIPELINE_GRAPH, "", passed=False, message=f"onnxparity: {self.problem}"
        )
        record_and_gate(self, result)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


def rtf_items(
    parent: pytest.Collector,
    engine: ParityEngine,
    cache: SequenceCache,
    reference: VariantSet,
    variant_sets: Sequence[VariantSet],
) -> list[TimingItem]:
    """``rtf[<set>]`` for the reference set and each variant set, when the speed gates are
    registered and a budget on ``rtf`` (or ``--parity-timing``) asks for timings."""
    config = parent.config
    if not config.pluginmanager.has_plugin("onnxparity-speed_plugin"):
        return []
    from pytest_onnxparity.plugin.speed_items import TimingItem
    from pytest_onnxparity.plugin.speed_settings import speed_settings
    from pytest_onnxparity.speech.sequence.pipeline import PIPELINE_GRAPH
    from pytest_onnxparity.speed.measure import MeasurementContext
    from pytest_onnxparity.speed.verdict import SpeedSubject

    speed = speed_settings(config).speed
    wanted = speed.measure or any(budget.metric == "rtf" for budget in speed.budgets)
    if not wanted:
        return []

    def context() -> MeasurementContext:
        runner = next(iter(cache.graphs(reference).values()))
        return MeasurementContext.of_session(engine.settings.session, runner.providers)

    release = partial(_release, engine, reference)
    timed = [reference, *(s for s in variant_sets if not s.same_files(reference))]
    return [
        TimingItem.create(
            parent,
            name=f"rtf[{variant_set.name}]",
            subject=SpeedSubject(
                PIPELINE_GRAPH, variant_set.name, variant_set.tier, reference.name
            ),
            measure=partial(measure_pipeline_rtf, cache, variant_set),
            measure_reference=partial(measure_pipeline_rtf, cache, reference),
            context=context,
            release=release,
            release_key=("sequence", id(engine)),
        )
        for variant_set in timed
    ]


def measure_pipeline_rtf(
    cache: SequenceCache, variant_set: VariantSet, rounds: RoundRunner, plan: TimingPlan
) -> SpeedMeasurement:
    """The adapter over every clip of the run with ``variant_set``'s graphs: aggregated RTF
    (median round time / total audio) and each clip's, after ``plan.warmup`` untimed rounds."""
    from pytest_onnxparity.speed.measure import measure_rtf

    graphs = cache.graphs(variant_set)
    adapter: PipelineAdapter = cache.adapter
    clips = list(cache.clips.values())
    return measure_rtf(lambda clip: adapter(graphs, clip), clips, plan, rounds)
