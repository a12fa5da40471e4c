"""The sequence gates' test items: ``sequence[<set>-<clip>]`` per clip, ``sequence[<set>]`` over
the corpus, and ``rtf[<set>]`` when timings are asked for; each set's items share one
``xdist_group`` and one per-process cache of clips, reference decodes and comparisons."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin.folder_hooks import FolderHooks
from pytest_onnxparity.plugin.markers import mark_generated
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
    from pytest_onnxparity.speech.sequence.pipeline import TORCH_REFERENCE
    from pytest_onnxparity.speech.sequence.run import (
        REFERENCE_SET,
        SequenceCache,
        resolve_variant_sets,
    )

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
    upstream = config.hook.pytest_onnxparity_reference_pipeline(config=config)
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
        if upstream is not None and any(s.name == reference.name for s in variant_sets):
            raise ConfigError(
                f"{settings.where}: variant set {reference.name!r} is the name of the fp32 ONNX "
                "set, which is gated against the PyTorch reference pipeline; rename the set"
            )
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
        reference_pipeline=upstream,
    )
    config.stash[CACHE] = cache
    context = {
        "reference_files": reference.to_json()["files"],
        "clip_source": settings.source.describe(settings.base_dir),
        "dataset": settings.source.dataset_card(settings.base_dir),
        "normalization": options.normalization.to_json(),
    }
    release = partial(_release, engine, reference)
    items: list[pytest.Item] = []
    # With an upstream pipeline, the fp32 ONNX set is a set of its own, gated against it.
    gated = [(reference, options.reference_gates, TORCH_REFERENCE)] if upstream else []
    gated += [(s, options.gates_for(s.name), REFERENCE_SET) for s in variant_sets]
    for variant_set, gates, against in gated:
        described = variant_set.to_json()
        set_context = {**context, **{key: described[key] for key in ("files", "tags", "tier")}}
        check = SetCheck(cache, variant_set, gates, against, set_context)
        for clip_id in clip_ids:
            items.append(
                SequenceItem.from_parent(
                    parent,
                    name=f"sequence[{variant_set.name}-{clip_id}]",
                    check=partial(check.clip, clip_id),
                    variant_set=variant_set.name,
                    release=release,
                )
            )
        items.append(
            SequenceItem.from_parent(
                parent,
                name=f"sequence[{variant_set.name}]",
                check=partial(check.corpus, clip_ids),
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


@dataclass(frozen=True)
class SetCheck:
    """The checks of one set against the reference its gates hold it to (``against``), each
    also reporting the set against every other reference of the cache (not gated)."""

    cache: SequenceCache
    variant_set: VariantSet
    gates: Any
    against: str
    context: Mapping[str, Any]

    @property
    def others(self) -> list[str]:
        """The references the set is reported against: every other, never itself."""
        name = self.variant_set.name
        return [ref for ref in self.cache.references if ref not in (self.against, name)]

    def clip(self, clip_id: str) -> CheckResult:
        from pytest_onnxparity.speech.sequence.verdict import evaluate_clip

        name = self.variant_set.name
        try:
            comparison = self._compare(clip_id, self.against)
            also = {other: self._compare(clip_id, other) for other in self.others}
        except _problems() as problem:
            return _failed(name, f"clip {clip_id!r}: {problem}", "sequence-clip")
        return evaluate_clip(
            comparison,
            self.gates,
            variant_set=name,
            context=self.context,
            reference=self.against,
            also=also,
        )

    def corpus(self, clip_ids: Sequence[str]) -> CheckResult:
        from pytest_onnxparity.speech.sequence.verdict import evaluate_sequence

        name = self.variant_set.name
        comparisons: list[ClipComparison] = []
        also: dict[str, list[ClipComparison]] = {other: [] for other in self.others}
        for clip_id in clip_ids:
            try:
                comparisons.append(self._compare(clip_id, self.against))
                for other, found in also.items():
                    found.append(self._compare(clip_id, other))
            except _problems() as problem:
                return _failed(name, f"clip {clip_id!r}: {problem}", "sequence")
        return evaluate_sequence(
            comparisons,
            self.gates,
            variant_set=name,
            context=self.context,
            reference=self.against,
            also=also,
        )

    def _compare(self, clip_id: str, against: str) -> ClipComparison:
        """One clip against one reference; teacher-forced only where the gates need it (a
        reported comparison is free-running)."""
        forcing = against == self.against and self.gates.needs_teacher_forcing
        return self.cache.comparison(
            self.variant_set, clip_id, teacher_forcing=forcing, against=against
        )


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
        # One worker per set under --dist loadgroup: its clips and reference decodes are
        # computed there once.
        mark_generated(self, f"{GROUP_PREFIX}{variant_set}")

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
            metric="rtf",
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
