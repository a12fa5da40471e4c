"""Relative timings measured in pairs: the reference's rounds interleaved with the variant's, and
the ratio taken pair by pair.

Timing the reference and then the variant, one after the other, lets a burst of load on a shared
runner land on one of them only: the int4/fp32 ratio of one pipeline swung between 0.62× and
0.94× in two runs that way. Here every variant round is preceded by one reference round, the
ratio is taken per pair (both rounds saw the same load), and the figure is the median ratio with
its interquartile range. No pytest here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.speed.measure import (
    RoundRunner,
    SpeedMeasurement,
    TimingPlan,
    timed_round,
)

Measure = Callable[[RoundRunner, TimingPlan], SpeedMeasurement]
"""Times one subject: takes the round runner and the plan, returns the figure."""

ORDER = "one reference round before each variant round"


@dataclass(frozen=True)
class PairedRatios:
    """Variant round / reference round, pair by pair, and their median and quartiles."""

    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def quartiles(self) -> tuple[float, float]:
        """The first and third quartile (both the ratio itself for a single pair)."""
        if len(self.ratios) < 2:
            return self.ratios[0], self.ratios[0]
        q1, _, q3 = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q1, q3

    @property
    def iqr(self) -> float:
        q1, q3 = self.quartiles
        return q3 - q1

    def describe(self) -> str:
        """``0.97x (IQR 0.95-0.99 over 5 pairs)``."""
        q1, q3 = self.quartiles
        return f"{self.median:.3g}x (IQR {q1:.3g}-{q3:.3g} over {len(self.ratios)} pairs)"

    def to_json(self) -> dict[str, Any]:
        q1, q3 = self.quartiles
        return {
            "order": ORDER,
            "ratios": list(self.ratios),
            "median": self.median,
            "q1": q1,
            "q3": q3,
            "iqr": q3 - q1,
        }


@dataclass(frozen=True)
class PairedMeasurement:
    """Both figures of an interleaved measurement and the pairwise ratios between them."""

    variant: SpeedMeasurement
    reference: SpeedMeasurement
    pairs: PairedRatios


@dataclass(frozen=True)
class _WithSetup:
    """A round runner that runs ``setup`` (untimed by it) before every round it times."""

    inner: RoundRunner
    setup: Callable[[], object]

    @property
    def name(self) -> str:
        return f"{self.inner.name}, interleaved with the reference"

    def __call__(
        self,
        target: Callable[[], object],
        warmup: int,
        repeats: int,
        setup: Callable[[], object] | None = None,
    ) -> Sequence[float]:
        return self.inner(target, warmup, repeats, setup=self.setup)


@dataclass(frozen=True)
class _ReferenceSide:
    """The reference's round runner: while the reference is measured, it measures the variant,
    each of whose rounds first runs (and times) one reference round."""

    variant: Measure
    plan: TimingPlan
    rounds: RoundRunner
    timer: Callable[[], float]
    found: dict[str, SpeedMeasurement]

    @property
    def name(self) -> str:
        return f"{_timer_name(self.timer)}, interleaved with the variant"

    def __call__(
        self,
        target: Callable[[], object],
        warmup: int,
        repeats: int,
        setup: Callable[[], object] | None = None,
    ) -> list[float]:
        durations: list[float] = []

        def reference_round() -> None:
            durations.append(timed_round(target, self.timer))

        self.found["variant"] = self.variant(_WithSetup(self.rounds, reference_round), self.plan)
        # A profiler pass (--benchmark-cprofile) may add calls after the timed rounds.
        return durations[warmup : warmup + repeats]


def measure_interleaved(
    variant: Measure,
    reference: Measure,
    plan: TimingPlan,
    rounds: RoundRunner,
    timer: Callable[[], float] = time.perf_counter,
) -> PairedMeasurement:
    """Measure ``variant`` and ``reference`` in alternating rounds: before each of the variant's
    rounds (``rounds`` times them: pytest-benchmark or a plain timer), one round of the
    reference, timed by ``timer``. Warm-up rounds alternate the same way."""
    found: dict[str, SpeedMeasurement] = {}
    reference_figure = reference(_ReferenceSide(variant, plan, rounds, timer, found), plan)
    variant_figure = found["variant"]
    pairs = tuple(
        v / r if r > 0 else float("inf")
        for v, r in zip(variant_figure.rounds_s, reference_figure.rounds_s, strict=True)
    )
    return PairedMeasurement(variant_figure, reference_figure, PairedRatios(pairs))


def _timer_name(timer: Callable[[], float]) -> str:
    name = getattr(timer, "__qualname__", type(timer).__qualname__)
    return f"time.{name}" if getattr(timer, "__module__", None) == "time" else str(name)
