"""Speed verdicts: a measurement held against its budgets, the failure line and next step, and
the speed table. No pytest here: the glue turns a verdict into a test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.results.records import CheckResult

if TYPE_CHECKING:
    from pytest_onnxparity.speed.paired import PairedRatios
from pytest_onnxparity.speed.budgets import (
    SPEED_KEYS,
    SPEED_METRICS,
    SPEED_RELATIVE,
    Budget,
    BudgetError,
    check_table_keys,
    parse_budget,
    parse_budget_list,
    select_budgets,
)
from pytest_onnxparity.speed.measure import (
    DEFAULT_REPEATS,
    DEFAULT_WARMUP,
    MeasurementContext,
    SpeedMeasurement,
    TimingPlan,
    short_number,
)

PARALLEL_NOTE = "not enforced: parallel run"


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
    paired_ratio: float | None = None
    """A relative budget's median ratio of interleaved rounds: what it holds when measured."""

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.value / self.reference_value if self.reference_value else None

    @property
    def passed(self) -> bool:
        if self.limit is None:
            return False
        if self.budget.relative and self.paired_ratio is not None:
            return self.paired_ratio <= self.budget.limit
        return self.budget.allows(self.value, self.reference_value)

    def to_json(self) -> dict[str, Any]:
        ratio = self.ratio
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
    pairs: PairedRatios | None = None,
) -> CheckResult:
    """Apply every budget that fits ``subject`` and ``measurement.metric``.

    Relative budgets need ``reference`` (the reference's figure from the same run) and do not
    apply to the reference itself; with ``pairs`` (variant and reference timed in alternating
    rounds) they hold the median pairwise ratio. ``not_enforced`` (e.g. :func:`parallel_note`)
    keeps the verdict in the record but makes the result non-blocking.
    """
    outcomes = []
    for budget in select_budgets(budgets, subject.scopes):
        if budget.metric != measurement.metric or (budget.relative and subject.is_reference):
            continue
        ref_value = reference.value if reference is not None else None
        limit = None if budget.relative and ref_value is None else budget.limit_for(ref_value)
        paired = pairs.median if pairs is not None and budget.relative else None
        outcomes.append(BudgetOutcome(budget, measurement.value, limit, ref_value, paired))
    failed = [outcome for outcome in outcomes if not outcome.passed]
    lines = [_failure_line(subject, measurement, outcome) for outcome in failed]
    if lines:
        lines.append(f"  measured: {measurement.describe()}")
        if reference is not None:
            lines.append(f"  reference {subject.reference_variant}: {reference.describe()}")
        if pairs is not None:
            lines.append(f"  variant / reference, pair by pair: {pairs.describe()}")
        worst = measurement.worst_clip
        if worst is not None:
            lines.append(
                f"  slowest clip: {worst.clip_id} rtf {short_number(worst.rtf)} "
                f"({short_number(worst.median_s * 1e3)} ms "
                f"for {short_number(worst.audio_s)} s of audio)"
            )
        lines.append(f"  context: {context.describe()}")
        lines.append(f"  next step: {_next_step(subject, failed[0])}")
    if not_enforced:
        verdict = "would fail" if failed else "would pass" if outcomes else "no budget"
        figure = f"{measurement.metric} {short_number(measurement.value)} ({verdict})"
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
            "paired": None if pairs is None else pairs.to_json(),
            "not_enforced": not_enforced,
        },
        enforced=not_enforced is None,
    )


def _failure_line(
    subject: SpeedSubject, measurement: SpeedMeasurement, outcome: BudgetOutcome
) -> str:
    budget = outcome.budget
    where = f" from {budget.source}" if budget.source else ""
    value = f"{subject.title} {budget.metric} {short_number(measurement.value)}"
    if outcome.limit is None:
        return (
            f"{value}: relative budget {budget.text}{where} has no reference figure; time the "
            f"reference {subject.reference_variant} in the same run (do not deselect it)"
        )
    if not budget.relative:
        return f"{value} exceeds {short_number(outcome.limit)} (budget {budget.text}{where})"
    assert outcome.reference_value is not None
    if outcome.paired_ratio is not None:
        return (
            f"{value} is {short_number(outcome.paired_ratio)}x the reference "
            f"{subject.reference_variant}'s (median of interleaved pairs; reference median "
            f"{short_number(outcome.reference_value)}), above {short_number(budget.limit)}x "
            f"(budget {budget.text}{where})"
        )
    ratio = measurement.value / outcome.reference_value
    return (
        f"{value} is {short_number(ratio)}x the reference {subject.reference_variant}'s "
        f"{short_number(outcome.reference_value)}, above {short_number(budget.limit)}x "
        f"= {short_number(outcome.limit)} "
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
    ini_repeats: int | None = None,
    warmup: int | None = None,
    ini_warmup: int | None = None,
    measure: bool = False,
    ini_measure: bool = False,
) -> SpeedOptions:
    """Validate ``[tool.onnxparity.speed]`` (``where`` names it) and lay the options over it."""
    check_table_keys(section, SPEED_KEYS, f"{where} [speed]")
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
    ini: int | None,
    file_value: Any,
    default: int,
    minimum: int,
    where: str,
    key: str,
) -> int:
    if cli is not None:
        return cli
    if ini is not None:  # a typed ini key: pytest already refused a non-integer
        if ini < minimum:
            raise BudgetError(
                f"ini parity_timing_{key} must be an integer >= {minimum}, got {ini!r}"
            )
        return ini
    if file_value is not None:
        if isinstance(file_value, bool) or not isinstance(file_value, int) or file_value < minimum:
            raise BudgetError(
                f"{where} [speed]: {key} must be an integer >= {minimum}, got {file_value!r}"
            )
        return file_value
    return default
