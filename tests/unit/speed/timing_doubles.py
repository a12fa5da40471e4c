"""Stand-ins the speed tests share: a fixed measurement context, a fake clock, budgets and
measured figures built from numbers."""

from __future__ import annotations

from pytest_onnxparity.speed.budgets import Budget
from pytest_onnxparity.speed.measure import MeasurementContext, SpeedMeasurement, TimingPlan
from pytest_onnxparity.speed.verdict import speed_budget

CONTEXT = MeasurementContext(
    providers=("CPUExecutionProvider",),
    intra_op_threads=2,
    cpu="Test CPU",
    cpu_count=4,
    onnxruntime="1.0",
)


def budget(text: str) -> Budget:
    return speed_budget(text, "--parity-speed-budget")


def figure(metric: str, value: float, repeats: int = 5) -> SpeedMeasurement:
    scale = 1e-3 if metric == "latency_ms" else 1.0
    return SpeedMeasurement(
        metric=metric,
        value=value,
        rounds_s=(value * scale,) * repeats,
        plan=TimingPlan(1, repeats),
        timer="fake",
        audio_s=None if metric == "latency_ms" else 1.0,
    )


class FakeClock:
    """A timer that advances only when the code under test says time passed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds
