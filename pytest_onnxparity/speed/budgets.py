"""Speed budgets: ``[SCOPE:]METRIC<=LIMIT[x]`` parsed once, and which of them apply to a file.

Budgets are absolute (``latency_ms<=40``, ``rtf<=0.3``) or relative to the reference measured
in the same run (``int4:rtf<=0.7x``). The size budgets of :mod:`pytest_onnxparity.speed.sizes`
share the syntax."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SPEED_METRICS: Mapping[str, str] = {"latency_ms": "<=", "rtf": "<="}
"""Each speed metric and the only comparison that makes sense for it (both are upper bounds)."""


SPEED_RELATIVE = frozenset(SPEED_METRICS)
"""Speed metrics that may be given relative to the reference (``int4:rtf<=0.7x``)."""


SPEED_KEYS = ("budgets", "repeats", "warmup", "measure")
"""Keys of ``[tool.onnxparity.speed]``."""


EXAMPLES = {
    "latency_ms": "latency_ms<=40",
    "rtf": "int4:rtf<=0.7x",
    "size_mb": "size_mb<=450",
    "ratio": "int4:ratio>=3.5",
}


class BudgetError(ValueError):
    """A budget string or a speed/size config value is invalid; the message names its source."""


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


def check_table_keys(section: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """The ``[speed]`` / ``[size]`` key check: a BudgetError naming ``where``, the first unknown
    key and the allowed ones (the message of :func:`pytest_onnxparity.config.tables.check_keys`)."""
    unknown = [key for key in section if key not in allowed]
    if unknown:
        raise BudgetError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}"
        )
