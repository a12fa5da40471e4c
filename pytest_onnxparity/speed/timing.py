"""Speed gates: latency per call, real-time factor over clips, budgets, and their verdicts.

How a figure is measured (``docs/speed.md`` explains why):

* the subject runs ``warmup`` times untimed, then ``repeats`` timed rounds, one after another
  in this process; the figure is the median round, so one slow round (a page fault, a noisy
  neighbour) moves nothing;
* a single graph's round is one ``session.run`` on the synthesized inputs: ``latency_ms``;
* a pipeline's round processes every clip once: per clip ``rtf`` = median time / audio duration,
  aggregated ``rtf`` = median round time / total audio;
* the timer is a :class:`RoundRunner`: :class:`SerialRounds` here, pytest-benchmark's fixture in
  the glue, so ``--benchmark-json`` and ``--benchmark-compare`` see the same rounds.

Budgets are absolute (``latency_ms<=40``, ``rtf<=0.3``) or relative to the reference measured
in the same run (``int4:rtf<=0.7x``). No pytest here: the glue turns a verdict into a test.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from pytest_onnxparity.results.records import CheckResult, cpu_model

if TYPE_CHECKING:
    from pytest_onnxparity.runtime.sessions import OnnxRunner, SessionSettings

SPEED_METRICS: Mapping[str, str] = {"latency_ms": "<=", "rtf": "<="}
"""Each speed metric and the only comparison that makes sense for it (both are upper bounds)."""
SPEED_RELATIVE = frozenset(SPEED_METRICS)
"""Speed metrics that may be given relative to the reference (``int4:rtf<=0.7x``)."""
SPEED_KEYS = ("budgets", "repeats", "warmup", "measure")
"""Keys of ``[tool.onnxparity.speed]``."""
DEFAULT_REPEATS = 5
DEFAULT_WARMUP = 1
PARALLEL_NOTE = "not enforced: parallel run"
EXAMPLES = {
    "latency_ms": "latency_ms<=40",
    "rtf": "int4:rtf<=0.7x",
    "size_mb": "size_mb<=450",
    "ratio": "int4:ratio>=3.5",
}


class BudgetError(ValueError):
    """A budget string or a speed/size config value is invalid; the message names its source."""


# --------------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """``[SCOPE:]METRIC<=LIMIT[x]``: one limit on one metric, for everything or for one scope.

    SCOPE is a tier (``int4``), a variant tag (``q4f16``), a graph (``encoder``) or
    ``graph/variant``. ``relative`` limits are a factor of the reference's value measured in
    the same run. ``source`` says where the budget was given (a flag, an ini key, a file).
    """

    scope: str | None
    metric: str
    op: str
    limit: float
    relative: bool = False
    source: str = ""

    @property
    def text(self) -> str:
        scope = f"{self.scope}:" if self.scope else ""
        return f"{scope}{self.metric}{self.op}{self.limit:g}{'x' if self.relative else ''}"

    @property
    def specificity(self) -> int:
        """0 for everything, 1 for a tier/variant/graph, 2 for ``graph/variant``."""
        return 0 if self.scope is None else 1 + self.scope.count("/")

    def allows(self, value: float, reference: float | None = None) -> bool:
        limit = self.limit_for(reference)
        return value <= limit if self.op == "<=" else value >= limit

    def limit_for(self, reference: float | None) -> float:
        """The limit in the metric's unit: the factor times ``reference`` when relative."""
        if not self.relative:
            return self.limit
        if reference is None:
            raise ValueError(f"{self.text} is relative: it needs the reference's value")
        return self.limit * reference

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.text,
            "scope": self.scope,
            "metric": self.metric,
            "op": self.op,
            "limit": self.limit,
            "relative": self.relative,
            "source": self.source,
        }


def parse_budget(
    text: str,
    metrics: Mapping[str, str],
    relative_metrics: Iterable[str],
    source: str,
) -> Budget:
    """Parse ``[SCOPE:]METRIC<=LIMIT[x]`` (or ``>=`` for a lower bound) into a :class:`Budget`.

    ``metrics`` maps each allowed metric to its comparison; ``relative_metrics`` may end in
    ``x``. Raises :class:`BudgetError` naming ``source`` and the accepted forms.
    """
    example = "e.g. " + " or ".join(repr(EXAMPLES.get(metric, metric)) for metric in metrics)
    scope, _, condition = text.strip().rpartition(":")
    op = "<=" if "<=" in condition else ">=" if ">=" in condition else None
    if op is None:
        raise BudgetError(
            f"{source}: expected [SCOPE:]METRIC<=LIMIT or >=, {example}; got {text!r}"
        )
    metric, _, limit_text = (part.strip() for part in condition.partition(op))
    if metric not in metrics:
        raise BudgetError(
            f"{source}: unknown metric {metric!r} in {text!r}; allowed: {', '.join(metrics)}"
        )
    if op != metrics[metric]:
        bound = "an upper bound" if metrics[metric] == "<=" else "a lower bound"
        raise BudgetError(
            f"{source}: {metric} is {bound}: write {metric}{metrics[metric]}LIMIT, got {text!r}"
        )
    relative = limit_text.lower().endswith("x")
    if relative and metric not in set(relative_metrics):
        raise BudgetError(
            f"{source}: {metric} cannot be relative to the reference (no trailing x), got {text!r}"
        )
    number = limit_text[:-1] if relative else limit_text
    try:
        limit = float(number)
    except ValueError:
        limit = math.nan
    if not math.isfinite(limit) or limit <= 0:
        raise BudgetError(f"{source}: the limit must be a positive number, {example}; got {text!r}")
    return Budget(scope.strip() or None, metric, op, limit, relative, source)


def select_budgets(budgets: Sequence[Budget], scopes: Iterable[str | None]) -> list[Budget]:
    """The budgets that apply to a subject named by ``scopes`` (None = unscoped ones).

    Per metric and form (absolute, relative) the most specific scope wins; at equal
    specificity, the one given later (the command line is read after config and ini).
    """
    wanted = set(scopes) | {None}
    chosen: dict[tuple[str, bool], Budget] = {}
    matching = [budget for budget in budgets if budget.scope in wanted]
    for budget in sorted(matching, key=lambda b: b.specificity):
        chosen[(budget.metric, budget.relative)] = budget
    return sorted(chosen.values(), key=lambda b: (b.metric, b.relative))


def parse_budget_list(
    raw: Any, metrics: Mapping[str, str], relative_metrics: Iterable[str], where: str
) -> tuple[Budget, ...]:
    """A config ``budgets = [...]`` list of budget strings."""
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise BudgetError(
            f"{where}: budgets must be a list of strings like ['latency_ms<=40'], got {raw!r}"
        )
    relative = tuple(relative_metrics)
    return tuple(parse_budget(item, metrics, relative, where) for item in raw)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimingPlan:
    """How many untimed warm-up rounds, then how many timed rounds (the median is reported)."""

    warmup: int = DEFAULT_WARMUP
    repeats: int = DEFAULT_REPEATS

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1:
            raise BudgetError(
                f"timing needs warmup >= 0 and repeats >= 1, got {self.warmup}/{self.repeats}"
            )

    def to_json(self) -> dict[str, int]:
        return {"warmup": self.warmup, "repeats": self.repeats}


class RoundRunner(Protocol):
    """Times ``repeats`` rounds of ``target`` after ``warmup`` untimed ones, serially.

    ``name`` names the timer in records (``time.perf_counter``, ``pytest-benchmark``).
    """

    @property
    def name(self) -> str: ...

    def __call__(
        self, target: Callable[[], object], warmup: int, repeats: int
    ) -> Sequence[float]: ...


@dataclass(frozen=True)
class SerialRounds:
    """The plain round runner: a monotonic high-resolution timer around each round."""

    timer: Callable[[], float] = time.perf_counter
    name: str = "time.perf_counter"

    def __call__(self, target: Callable[[], object], warmup: int, repeats: int) -> list[float]:
        for _ in range(warmup):
            target()
        durations = []
        for _ in range(repeats):
            start = self.timer()
            target()
            durations.append(self.timer() - start)
        return durations


class ClipLike(Protocol):
    """What RTF needs from a clip (:class:`pytest_onnxparity.speech.clips.Clip` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def duration_s(self) -> float: ...


@dataclass(frozen=True)
class ClipTiming:
    """One clip's processing time (median over rounds) and real-time factor."""

    clip_id: str
    audio_s: float
    median_s: float

    @property
    def rtf(self) -> float:
        return self.median_s / self.audio_s

    def to_json(self) -> dict[str, Any]:
        return {
            "clip": self.clip_id,
            "audio_s": self.audio_s,
            "median_s": self.median_s,
            "rtf": self.rtf,
        }


@dataclass(frozen=True)
class SpeedMeasurement:
    """One measured figure: ``value`` of ``metric`` (median), with every timed round kept."""

    metric: str
    value: float
    rounds_s: tuple[float, ...]
    plan: TimingPlan
    timer: str
    audio_s: float | None = None
    """Total audio per round (RTF only)."""
    clips: tuple[ClipTiming, ...] = ()

    @property
    def unit(self) -> str:
        return "ms" if self.metric == "latency_ms" else ""

    @property
    def worst_clip(self) -> ClipTiming | None:
        return max(self.clips, key=lambda clip: clip.rtf) if self.clips else None

    def describe(self) -> str:
        """``median of 5 rounds after 1 warm-up (min 1.2, max 1.5 ms; time.perf_counter)``."""
        scale = 1e3 if self.metric == "latency_ms" else 1 / (self.audio_s or 1.0)
        low, high = min(self.rounds_s) * scale, max(self.rounds_s) * scale
        what = "calls" if self.metric == "latency_ms" else "passes over the clips"
        return (
            f"median of {len(self.rounds_s)} {what} after {self.plan.warmup} warm-up "
            f"(min {_num(low)}, max {_num(high)}{' ' + self.unit if self.unit else ''}; "
            f"timer {self.timer})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "rounds_s": list(self.rounds_s),
            **self.plan.to_json(),
            "timer": self.timer,
            "audio_s": self.audio_s,
            "clips": [clip.to_json() for clip in self.clips],
        }


def measure_latency(
    call: Callable[[], object], plan: TimingPlan, rounds: RoundRunner | None = None
) -> SpeedMeasurement:
    """Latency of ``call`` in milliseconds: the median of ``plan.repeats`` serial calls."""
    runner = rounds if rounds is not None else SerialRounds()
    durations = _checked_rounds(runner(call, plan.warmup, plan.repeats), plan, runner)
    return SpeedMeasurement(
        metric="latency_ms",
        value=statistics.median(durations) * 1e3,
        rounds_s=tuple(durations),
        plan=plan,
        timer=runner.name,
    )


def measure_rtf(
    process: Callable[[Any], object],
    clips: Sequence[ClipLike],
    plan: TimingPlan,
    rounds: RoundRunner | None = None,
    clip_timer: Callable[[], float] = time.perf_counter,
) -> SpeedMeasurement:
    """Real-time factor of ``process`` (e.g. a pipeline adapter bound to its graphs) on ``clips``.

    A round processes every clip once. The aggregate RTF is the median round time over the
    total audio duration; each clip's RTF is its median time over its own duration.
    """
    if not clips:
        raise BudgetError("RTF needs at least one clip")
    silent = [clip.id for clip in clips if not clip.duration_s > 0]
    if silent:
        raise BudgetError(f"RTF needs clips with audio; empty clip(s): {', '.join(silent)}")
    runner = rounds if rounds is not None else SerialRounds()
    per_round: list[list[float]] = []

    def one_pass() -> None:
        times = []
        for clip in clips:
            start = clip_timer()
            process(clip)
            times.append(clip_timer() - start)
        per_round.append(times)

    durations = _checked_rounds(runner(one_pass, plan.warmup, plan.repeats), plan, runner)
    # The runner calls the target for the warm-up rounds first, then for the timed ones; a
    # profiler pass (--benchmark-cprofile) may add calls after them.
    timed = per_round[plan.warmup : plan.warmup + plan.repeats]
    total_audio = sum(clip.duration_s for clip in clips)
    return SpeedMeasurement(
        metric="rtf",
        value=statistics.median(durations) / total_audio,
        rounds_s=tuple(durations),
        plan=plan,
        timer=runner.name,
        audio_s=total_audio,
        clips=tuple(
            ClipTiming(clip.id, clip.duration_s, statistics.median(row[i] for row in timed))
            for i, clip in enumerate(clips)
        ),
    )


def _checked_rounds(
    durations: Sequence[float], plan: TimingPlan, runner: RoundRunner
) -> list[float]:
    values = [float(value) for value in durations]
    if len(values) != plan.repeats or not all(math.isfinite(v) and v >= 0 for v in values):
        raise BudgetError(
            f"round runner {runner.name} returned {len(values)} duration(s) for "
            f"{plan.repeats} repeats: {values[:5]}"
        )
    return values


def session_call(runner: OnnxRunner, arrays: Mapping[str, Any]) -> Callable[[], object]:
    """A no-argument call of ``runner``'s session on ``arrays``, with the feed built once.

    The first run goes through :meth:`OnnxRunner.run`, so a missing input or a bad shape is
    the usual one-line :class:`~pytest_onnxparity.runtime.sessions.ModelLoadError`, not a timing.
    """
    runner.run(arrays)
    feed = runner.feed(arrays)
    session = runner.session
    return lambda: session.run(None, feed)


# --------------------------------------------------------------------------------------------
# Where a figure was measured
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasurementContext:
    """What a figure depends on, recorded beside it: threads, provider, CPU, runtime version."""

    providers: tuple[str, ...]
    intra_op_threads: int
    inter_op_threads: int = 0
    allow_spinning: bool = False
    cpu: str = field(default_factory=cpu_model)
    cpu_count: int | None = field(default_factory=os.cpu_count)
    onnxruntime: str | None = field(default_factory=lambda: _version("onnxruntime"))

    @classmethod
    def of_session(
        cls, settings: SessionSettings, providers: Sequence[str] | None = None
    ) -> MeasurementContext:
        """The context of sessions built with ``settings`` (``providers``: those actually used)."""
        threads = 1 if settings.deterministic else settings.intra_op_threads
        return cls(
            providers=tuple(providers if providers is not None else settings.providers),
            intra_op_threads=threads,
            inter_op_threads=1 if settings.deterministic else settings.inter_op_threads,
            allow_spinning=settings.allow_spinning,
        )

    def describe(self) -> str:
        threads = self.intra_op_threads or f"auto ({self.cpu_count} CPUs)"
        spinning = " (spinning)" if self.allow_spinning else ""
        return (
            f"{', '.join(self.providers)}, intra-op threads {threads}{spinning}, "
            f"onnxruntime {self.onnxruntime}, CPU {self.cpu}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "providers": list(self.providers),
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "allow_spinning": self.allow_spinning,
            "cpu": self.cpu,
            "cpu_count": self.cpu_count,
            "onnxruntime": self.onnxruntime,
        }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_scopes(budgets: Sequence[Budget], known: Iterable[str], folder: str) -> None:
    """A budget scoped to a name the run does not know is a typo that would gate nothing."""
    names = set(known)
    for budget in budgets:
        if budget.scope is not None and budget.scope not in names:
            raise BudgetError(
                f"{budget.source}: budget {budget.text!r} is scoped to {budget.scope!r}, which "
                f"is no tier, variant tag, graph or graph/variant of {folder}; known: "
                f"{', '.join(sorted(names))}"
            )


def parallel_note(
    worker_count: int | None, grouped: bool, group_requested: bool = False
) -> str | None:
    """Why timing gates are not enforced in this process, or None when they are.

    Tests running on several xdist workers share the CPU, so a timing is not the variant's
    alone; under ``--dist loadgroup`` every timing test is in one group on one worker and runs
    serially, which is what enforcing needs. ``grouped`` says the grouping took effect;
    ``group_requested`` that loadgroup was asked for but did not group the timing tests.
    """
    if worker_count is None or worker_count <= 1 or grouped:
        return None
    if group_requested:
        return (
            f"{PARALLEL_NOTE} ({worker_count} xdist workers; --dist loadgroup did not group "
            "the timing tests: this pytest-xdist cannot tag node ids on this pytest, "
            "pytest-xdist#1386); run the timing tests serially (-p no:xdist) to enforce them"
        )
    return (
        f"{PARALLEL_NOTE} ({worker_count} xdist workers); run serially or add "
        "--dist loadgroup to enforce timing budgets"
    )


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedSubject:
    """What was timed: one graph file (latency) or one variant set of a pipeline (RTF)."""

    graph: str
    variant: str
    tier: str
    reference_variant: str

    @property
    def is_reference(self) -> bool:
        return self.variant == self.reference_variant

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.tier, self.variant, self.graph, f"{self.graph}/{self.variant}")

    @property
    def title(self) -> str:
        return f"{self.graph}[{self.variant}]"


@dataclass(frozen=True)
class BudgetOutcome:
    """One budget applied to one measured value."""

    budget: Budget
    value: float
    limit: float | None
    """None when a relative budget had no reference value to scale."""
    reference_value: float | None = None

    @property
    def passed(self) -> bool:
        return self.limit is not None and self.budget.allows(self.value, self.reference_value)

    def to_json(self) -> dict[str, Any]:
        ratio = None
        if self.reference_value:
            ratio = self.value / self.reference_value
        return {
            **self.budget.to_json(),
            "value": self.value,
            "effective_limit": self.limit,
            "reference_value": self.reference_value,
            "ratio_to_reference": ratio,
            "passed": self.passed,
        }


def evaluate_speed(
    subject: SpeedSubject,
    measurement: SpeedMeasurement,
    budgets: Sequence[Budget],
    context: MeasurementContext,
    reference: SpeedMeasurement | None = None,
    not_enforced: str | None = None,
) -> CheckResult:
    """Apply every budget that fits ``subject`` and ``measurement.metric``.

    Relative budgets need ``reference`` (the reference's figure from the same run) and do not
    apply to the reference itself. ``not_enforced`` (e.g. :func:`parallel_note`) keeps the
    verdict in the record but makes the result non-blocking.
    """
    outcomes = []
    for budget in select_budgets(budgets, subject.scopes):
        if budget.metric != measurement.metric or (budget.relative and subject.is_reference):
            continue
        ref_value = reference.value if reference is not None else None
        limit = None if budget.relative and ref_value is None else budget.limit_for(ref_value)
        outcomes.append(BudgetOutcome(budget, measurement.value, limit, ref_value))
    failed = [outcome for outcome in outcomes if not outcome.passed]
    lines = [_failure_line(subject, measurement, outcome) for outcome in failed]
    if lines:
        lines.append(f"  measured: {measurement.describe()}")
        if reference is not None:
            lines.append(f"  reference {subject.reference_variant}: {reference.describe()}")
        worst = measurement.worst_clip
        if worst is not None:
            lines.append(
                f"  slowest clip: {worst.clip_id} rtf {_num(worst.rtf)} "
                f"({_num(worst.median_s * 1e3)} ms for {_num(worst.audio_s)} s of audio)"
            )
        lines.append(f"  context: {context.describe()}")
        lines.append(f"  next step: {_next_step(subject, failed[0])}")
    if not_enforced:
        verdict = "would fail" if failed else "would pass" if outcomes else "no budget"
        figure = f"{measurement.metric} {_num(measurement.value)} ({verdict})"
        lines = [f"{not_enforced}; {figure}", *lines]
    return CheckResult(
        check="latency" if measurement.metric == "latency_ms" else "rtf",
        graph=subject.graph,
        variant=subject.variant,
        passed=not failed,
        message="\n".join(lines),
        details={
            "tier": subject.tier,
            "reference_variant": subject.reference_variant,
            "measurement": measurement.to_json(),
            "reference": None if reference is None else reference.to_json(),
            "context": context.to_json(),
            "budgets": [outcome.to_json() for outcome in outcomes],
            "not_enforced": not_enforced,
        },
        enforced=not_enforced is None,
    )


def _failure_line(
    subject: SpeedSubject, measurement: SpeedMeasurement, outcome: BudgetOutcome
) -> str:
    budget = outcome.budget
    where = f" from {budget.source}" if budget.source else ""
    value = f"{subject.title} {budget.metric} {_num(measurement.value)}"
    if outcome.limit is None:
        return (
            f"{value}: relative budget {budget.text}{where} has no reference figure; time the "
            f"reference {subject.reference_variant} in the same run (do not deselect it)"
        )
    if not budget.relative:
        return f"{value} exceeds {_num(outcome.limit)} (budget {budget.text}{where})"
    assert outcome.reference_value is not None
    ratio = measurement.value / outcome.reference_value
    return (
        f"{value} is {_num(ratio)}x the reference {subject.reference_variant}'s "
        f"{_num(outcome.reference_value)}, above {_num(budget.limit)}x = {_num(outcome.limit)} "
        f"(budget {budget.text}{where})"
    )


def _next_step(subject: SpeedSubject, outcome: BudgetOutcome) -> str:
    budget = outcome.budget
    scope = f"{subject.graph}/{subject.variant}"
    if outcome.limit is None:
        return f"select the reference's timing test too, e.g. -k {subject.graph}"
    return (
        "profile the variant (onnxruntime's enable_profiling, --benchmark-cprofile) and check "
        "that its kernels run on the intended provider; if this speed is acceptable, relax the "
        f"budget: --parity-speed-budget {scope}:{budget.metric}{budget.op}<limit>"
        f"{'x' if budget.relative else ''} or [tool.onnxparity.speed] budgets"
    )


def speed_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The terminal table of every timing record, then where the figures were measured."""
    from pytest_onnxparity.results.terminal import table

    rows = []
    contexts = []
    timed = [
        r for r in records if r.get("kind") == "check" and r.get("check") in ("latency", "rtf")
    ]
    # Per graph, the reference first: the row every "vs reference" below it is relative to.
    timed.sort(
        key=lambda r: (
            r["graph"],
            r["check"],
            r["variant"] != r["details"]["reference_variant"],
            r["variant"],
        )
    )
    for record in timed:
        details = record["details"]
        measured = details["measurement"]
        reference = details.get("reference")
        ratio = "-"
        if reference and reference["value"]:
            ratio = f"{measured['value'] / reference['value']:.2f}x"
        status = "PASS" if record["passed"] else "FAIL"
        if not record["enforced"]:
            status = "NOTE"
        budgets = ", ".join(b["budget"] for b in details["budgets"]) or "-"
        rows.append(
            [
                record["graph"],
                record["variant"],
                measured["metric"],
                _num(measured["value"]),
                ratio,
                budgets,
                status,
            ]
        )
        context = details["context"]
        threads = context["intra_op_threads"] or f"auto ({context['cpu_count']} CPUs)"
        if context.get("allow_spinning"):
            threads = f"{threads} (spinning)"
        contexts.append(
            f"{', '.join(context['providers'])}, intra-op threads {threads}, onnxruntime "
            f"{context['onnxruntime']}, CPU {context['cpu']}; median of {measured['repeats']} "
            f"after {measured['warmup']} warm-up; timer {measured['timer']}"
        )
    if not rows:
        return []
    headers = ["graph", "variant", "metric", "median", "vs reference", "budgets", "status"]
    lines = table(headers, rows)
    lines.extend(f"measured with {context}" for context in dict.fromkeys(contexts))
    notes = {record["details"]["not_enforced"] for record in timed if not record["enforced"]}
    lines.extend(sorted(notes))
    return lines


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedOptions:
    """Everything the speed gates need, resolved: command line > ini > config file > default."""

    budgets: tuple[Budget, ...] = ()
    plan: TimingPlan = field(default_factory=TimingPlan)
    measure: bool = False
    """Time every graph file even without budgets (for --benchmark-json / --benchmark-compare)."""

    @property
    def active(self) -> bool:
        return self.measure or bool(self.budgets)

    def to_json(self) -> dict[str, Any]:
        return {
            "budgets": [budget.to_json() for budget in self.budgets],
            **self.plan.to_json(),
            "measure": self.measure,
        }


def speed_budget(text: str, source: str) -> Budget:
    """One speed budget string (``latency_ms<=40``, ``int4:rtf<=0.7x``)."""
    return parse_budget(text, SPEED_METRICS, SPEED_RELATIVE, source)


def resolve_speed_options(
    section: Mapping[str, Any],
    where: str,
    *,
    cli_budgets: Sequence[Budget] = (),
    ini_budgets: Sequence[str] = (),
    repeats: int | None = None,
    ini_repeats: str | None = None,
    warmup: int | None = None,
    ini_warmup: str | None = None,
    measure: bool = False,
    ini_measure: bool = False,
) -> SpeedOptions:
    """Validate ``[tool.onnxparity.speed]`` (``where`` names it) and lay the options over it."""
    unknown = [key for key in section if key not in SPEED_KEYS]
    if unknown:
        raise BudgetError(
            f"{where} [speed]: unknown key {unknown[0]!r}; allowed keys: {', '.join(SPEED_KEYS)}"
        )
    file_budgets = parse_budget_list(
        section.get("budgets", []), SPEED_METRICS, SPEED_RELATIVE, f"{where} [speed] budgets"
    )
    ini = tuple(speed_budget(text, "ini parity_speed_budgets") for text in ini_budgets)
    file_measure = section.get("measure", False)
    if not isinstance(file_measure, bool):
        raise BudgetError(f"{where} [speed]: measure must be true or false, got {file_measure!r}")
    plan = TimingPlan(
        warmup=_first_count(
            warmup, ini_warmup, section.get("warmup"), DEFAULT_WARMUP, 0, where, "warmup"
        ),
        repeats=_first_count(
            repeats, ini_repeats, section.get("repeats"), DEFAULT_REPEATS, 1, where, "repeats"
        ),
    )
    return SpeedOptions(
        budgets=(*file_budgets, *ini, *cli_budgets),
        plan=plan,
        measure=measure or ini_measure or file_measure,
    )


def _first_count(
    cli: int | None,
    ini: str | None,
    file_value: Any,
    default: int,
    minimum: int,
    where: str,
    key: str,
) -> int:
    if cli is not None:
        return cli
    if ini not in (None, ""):
        text = str(ini).strip()
        if not text.isdecimal() or int(text) < minimum:
            raise BudgetError(
                f"ini parity_timing_{key} must be an integer >= {minimum}, got {ini!r}"
            )
        return int(text)
    if file_value is not None:
        if isinstance(file_value, bool) or not isinstance(file_value, int) or file_value < minimum:
            raise BudgetError(
                f"{where} [speed]: {key} must be an integer >= {minimum}, got {file_value!r}"
            )
        return file_value
    return default
