"""Measuring speed: latency per call and real-time factor over clips, and the context that makes
a figure comparable (machine, threads, versions).

How a figure is measured (``docs/speed.md`` explains why):

* the subject runs ``warmup`` times untimed, then ``repeats`` timed rounds, one after another
  in this process; the figure is the median round, so one slow round (a page fault, a noisy
  neighbour) moves nothing;
* a single graph's round is one ``session.run`` on the synthesized inputs: ``latency_ms``;
* a pipeline's round processes every clip once: per clip ``rtf`` = median time / audio duration,
  aggregated ``rtf`` = median round time / total audio;
* the timer is a :class:`RoundRunner`: :class:`SerialRounds` here, pytest-benchmark's fixture in
  the glue, so ``--benchmark-json`` and ``--benchmark-compare`` see the same rounds."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pytest_onnxparity.results.records import cpu_model, installed_distribution

if TYPE_CHECKING:
    from pytest_onnxparity.runtime.sessions import OnnxRunner, SessionSettings
from pytest_onnxparity.speed.budgets import BudgetError

DEFAULT_REPEATS = 5


DEFAULT_WARMUP = 1


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

    ``setup``, when given, runs before every round (warm-up ones too) outside the timing: the
    interleaved measurement of :mod:`pytest_onnxparity.speed.paired` runs a reference round
    there. ``name`` names the timer in records (``time.perf_counter``, ``pytest-benchmark``).
    """

    @property
    def name(self) -> str: ...

    def __call__(
        self,
        target: Callable[[], object],
        warmup: int,
        repeats: int,
        setup: Callable[[], object] | None = None,
    ) -> Sequence[float]: ...


@dataclass(frozen=True)
class SerialRounds:
    """The plain round runner: a monotonic high-resolution timer around each round."""

    timer: Callable[[], float] = time.perf_counter
    name: str = "time.perf_counter"

    def __call__(
        self,
        target: Callable[[], object],
        warmup: int,
        repeats: int,
        setup: Callable[[], object] | None = None,
    ) -> list[float]:
        for _ in range(warmup):
            if setup is not None:
                setup()
            target()
        durations = []
        for _ in range(repeats):
            if setup is not None:
                setup()
            durations.append(timed_round(target, self.timer))
        return durations


def timed_round(target: Callable[[], object], timer: Callable[[], float]) -> float:
    """Seconds one call of ``target`` takes by ``timer``."""
    start = timer()
    target()
    return timer() - start


class ClipLike(Protocol):
    """What RTF needs from a clip (:class:`pytest_onnxparity.speech.audio.clips.Clip` is one)."""

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
            f"(min {short_number(low)}, max {short_number(high)}"
            f"{' ' + self.unit if self.unit else ''}; "
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


@dataclass(frozen=True)
class MeasurementContext:
    """What a figure depends on, recorded beside it: threads, provider, CPU, runtime version."""

    providers: tuple[str, ...]
    intra_op_threads: int
    inter_op_threads: int = 0
    allow_spinning: bool = False
    cpu: str = field(default_factory=cpu_model)
    cpu_count: int | None = field(default_factory=os.cpu_count)
    onnxruntime: str | None = field(default_factory=lambda: _runtime_version())

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


def _runtime_version() -> str | None:
    """The version of whichever distribution provides onnxruntime (onnxruntime-gpu…)."""
    runtime = installed_distribution("onnxruntime")
    return None if runtime is None else runtime[1]


def short_number(value: float) -> str:
    """Three significant digits, or a whole number from 1000 up."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
