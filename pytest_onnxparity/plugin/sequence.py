"""pytest glue of the sequence gates: a pipeline adapter run on clips, variant set by variant set.

Active when the config has a ``[sequence]`` table or ``--parity-clips`` / ``--parity-dataset``
names clips. The user's ``pytest_onnxparity_pipeline_adapter(config)`` hook (conftest.py)
returns the adapter. Under the export folder's node this adds, for every variant set:

* ``sequence[<set>-<clip>]`` per clip: the gates that hold clip by clip (token equality,
  argmax mismatches, first divergence, ``max_clip_wer``…), so a long run is items pytest
  counts and reports as it goes;
* ``sequence[<set>]``: every gate over the corpus (WER/CER as total edits over total words),
  with the per-clip table in the failure message and in the JSON results;
* ``rtf[<set>]`` (and ``rtf[fp32]`` for the reference set) when speed budgets or
  ``--parity-timing`` ask for timings: the pipeline's real-time factor, timed by the speed
  gates' :class:`~pytest_onnxparity.plugin.speed.TimingItem`.

Every item of a set shares one ``xdist_group``. Each process keeps one
:class:`~pytest_onnxparity.speech.sequence_run.SequenceCache`: clips load at the first item
that needs them (collection lists only their ids), each clip is decoded by the reference
graphs once, and
each (set, clip) comparison is made once, whichever item asks first.

Only pytest and the standard library are imported here at load time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.plugin.speed import TimingItem
    from pytest_onnxparity.results.records import CheckResult
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.speech.clip_compare import ClipComparison
    from pytest_onnxparity.speech.clip_source import ClipSource
    from pytest_onnxparity.speech.pipeline import PipelineAdapter
    from pytest_onnxparity.speech.sequence_config import SequenceOptions
    from pytest_onnxparity.speech.sequence_run import SequenceCache, VariantSet
    from pytest_onnxparity.speed.measure import RoundRunner, SpeedMeasurement, TimingPlan

ADAPTER_HOOK = "pytest_onnxparity_pipeline_adapter"
GROUP_PREFIX = "onnxparity-sequence-"
DOCS = "docs/sequence.md"


@dataclass(frozen=True)
class SequenceSettings:
    """The run's sequence settings, resolved once at session start (:data:`SEQUENCE`).

    ``source`` is the clip source after ``--parity-clips`` / ``--parity-dataset``; relative
    paths in it are taken from ``base_dir`` (the rootdir, or the export folder for a
    ``parity.toml`` table). ``limit`` is ``--parity-clips-limit`` (None: the table's ``limit``);
    ``selected`` the ``--parity-variant-set`` names (empty: every set).
    """

    options: SequenceOptions
    source: ClipSource
    base_dir: Path
    where: str
    limit: int | None = None
    selected: tuple[str, ...] = ()

    @property
    def clip_limit(self) -> int | None:
        return self.source.limit if self.limit is None else self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            **self.options.to_json(),
            "source": self.source.to_json(),
            "base_dir": str(self.base_dir),
            "limit": self.clip_limit,
            "selected": list(self.selected),
        }


SEQUENCE: pytest.StashKey[SequenceSettings] = pytest.StashKey()
CACHE: pytest.StashKey[SequenceCache] = pytest.StashKey()
"""This process's clips, reference decodes and comparisons (made at collection, filled lazily)."""


# --------------------------------------------------------------------------------------------
# Options (registered by options._add_sequence_options)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Resolved here, not at configure: this module is registered while the core's
    # pytest_configure runs, before the export folder and its config files are read.
    config = session.config
    option = config.option
    cli_source = option.parity_clips is not None or option.parity_dataset is not None
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        if cli_source:
            raise pytest.UsageError(
                "onnxparity: --parity-clips/--parity-dataset need --onnx-dir: the sequence "
                "gates run the export folder's graphs"
            )
        return
    from pytest_onnxparity.config.project import ConfigError

    try:
        settings = resolve_settings(config, engine)
    except ConfigError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    if settings is not None:
        config.stash[SEQUENCE] = settings


def resolve_settings(config: pytest.Config, engine: ParityEngine) -> SequenceSettings | None:
    """The ``[sequence]`` table under the command-line options, or None when neither asks for
    sequence gates. Raises ``ConfigError`` naming the table or the flag."""
    from pytest_onnxparity.config.project import ConfigError, read_toml_table, section_where
    from pytest_onnxparity.speech.clip_source import ClipSource
    from pytest_onnxparity.speech.sequence_config import parse_sequence_options

    option = config.option
    parity_config = engine.settings.config
    has_table = "sequence" in parity_config.sections
    if not has_table and option.parity_clips is None and option.parity_dataset is None:
        return None
    where = section_where(parity_config.sources, "sequence")
    options = parse_sequence_options(parity_config.section("sequence"), where)
    folder_table = read_toml_table(engine.folder.root / "parity.toml", ("sequence",)) or {}
    folder_source = "clips_dir" in folder_table or "dataset" in folder_table
    base_dir = engine.folder.root if folder_source else config.rootpath
    source = options.source
    if option.parity_clips is not None and option.parity_dataset is not None:
        raise ConfigError("--parity-clips and --parity-dataset: give one of them, not both")
    if option.parity_clips is not None:
        source = ClipSource(
            clips_dir=str(option.parity_clips),
            limit=None if source is None else source.limit,
            sample_rate=None if source is None else source.sample_rate,
        )
    elif option.parity_dataset is not None:
        if source is not None and source.dataset is not None:
            source = dataclasses.replace(source, dataset=option.parity_dataset)
        else:
            source = ClipSource(
                dataset=option.parity_dataset,
                limit=None if source is None else source.limit,
                sample_rate=None if source is None else source.sample_rate,
            )
    if source is None:
        raise ConfigError(
            f"{where}: no clips: set clips_dir (a folder of wav/flac with .txt transcripts) or "
            "dataset (a local audiofolder or a hub name), or pass --parity-clips DIR"
        )
    return SequenceSettings(
        options=options,
        source=source,
        base_dir=base_dir,
        where=where,
        limit=option.parity_clips_limit,
        selected=tuple(dict.fromkeys(option.parity_variant_set)),
    )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SEQUENCE, None)
    if settings is None:
        return None
    limit = settings.clip_limit
    selected = ", ".join(settings.selected) or "all"
    return [
        f"onnxparity sequence: {settings.source.describe(settings.base_dir)}"
        f"{f', first {limit} clips' if limit else ''}; variant sets: {selected}"
    ]


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------


def pytest_onnxparity_folder_items(
    parent: pytest.Collector, engine: ParityEngine
) -> list[pytest.Item] | None:
    settings = parent.config.stash.get(SEQUENCE, None)
    if settings is None:
        return None
    return sequence_items(parent, engine, settings)


def sequence_items(
    parent: pytest.Collector, engine: ParityEngine, settings: SequenceSettings
) -> list[pytest.Item]:
    """Every sequence item of the run, or one failing ``sequence`` item saying what is missing."""
    from pytest_onnxparity.config.project import ConfigError
    from pytest_onnxparity.speech.clips import ClipError
    from pytest_onnxparity.speech.sequence_run import SequenceCache, resolve_variant_sets

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


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _problems() -> tuple[type[BaseException], ...]:
    """The user's input being wrong (not our bug): a one-line failure, no traceback."""
    from pytest_onnxparity.run.cases import INPUT_PROBLEMS
    from pytest_onnxparity.speech.clips import ClipError
    from pytest_onnxparity.speech.pipeline import AdapterError

    return (*INPUT_PROBLEMS, ClipError, AdapterError, ImportError)


def _clip_check(
    cache: SequenceCache,
    variant_set: VariantSet,
    clip_id: str,
    gates: Any,
    context: Mapping[str, Any],
) -> CheckResult:
    from pytest_onnxparity.speech.sequence_verdict import evaluate_clip

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
    from pytest_onnxparity.speech.sequence_verdict import evaluate_sequence

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
    from pytest_onnxparity.speech.pipeline import PIPELINE_GRAPH

    return CheckResult(
        check, PIPELINE_GRAPH, variant_set, passed=False, message=f"{variant_set}: {message}"
    )


# --------------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------------


class SequenceItem(pytest.Item):
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


class ProblemItem(pytest.Item):
    """Stands for the sequence items when they cannot be made; fails with one line."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem
        self.add_marker("parity")

    def runtest(self) -> None:
        from pytest_onnxparity.plugin.items import record_and_gate
        from pytest_onnxparity.results.records import CheckResult
        from pytest_onnxparity.speech.pipeline import PIPELINE_GRAPH
        from pytest_onnxparity.speech.sequence_report import CHECK_NAME

        result = CheckResult(
            CHECK_NAME, PIPELINE_GRAPH, "", passed=False, message=f"onnxparity: {self.problem}"
        )
        record_and_gate(self, result)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Free the pipeline's sessions after the last sequence item in a row."""
    if not isinstance(item, SequenceItem) or isinstance(nextitem, SequenceItem):
        return
    if item.release is not None:
        item.release()


# --------------------------------------------------------------------------------------------
# Real-time factor (through the speed gates)
# --------------------------------------------------------------------------------------------


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
    from pytest_onnxparity.plugin.speed import TimingItem, speed_settings
    from pytest_onnxparity.speech.pipeline import PIPELINE_GRAPH
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


# --------------------------------------------------------------------------------------------
# Terminal summary
# --------------------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collector = config.stash.get(keys.COLLECTOR, None)
    if collector is None or SEQUENCE not in config.stash:
        return
    from pytest_onnxparity.speech.sequence_report import summary_lines

    lines = summary_lines(collector.records)
    if not lines:
        return
    terminalreporter.section("onnxparity sequence")
    for line in lines:
        terminalreporter.line(line)
