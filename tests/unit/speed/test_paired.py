"""Relative timings in interleaved pairs: the order of the rounds, the pairwise ratio, and a ratio
of two identical graphs that holds while another process loads the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import modelkit
import numpy as np
import pytest

from pytest_onnxparity.runtime.sessions import SessionSettings, open_session
from pytest_onnxparity.speech.audio.clips import Clip
from pytest_onnxparity.speed.measure import (
    RoundRunner,
    SerialRounds,
    SpeedMeasurement,
    TimingPlan,
    measure_latency,
    measure_rtf,
    session_call,
)
from pytest_onnxparity.speed.paired import PairedRatios, measure_interleaved
from pytest_onnxparity.speed.verdict import SpeedSubject, evaluate_speed
from tests.unit.speed.timing_doubles import CONTEXT, FakeClock, budget, figure

CLIPS = 20


def test_each_variant_round_follows_one_reference_round_warm_up_included() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def measure(name: str, cost: float) -> Callable[[RoundRunner, TimingPlan], SpeedMeasurement]:
        def one_call() -> None:
            calls.append(name)
            clock.spend(cost)

        return lambda rounds, plan: measure_latency(one_call, plan, rounds)

    paired = measure_interleaved(
        measure("variant", 0.002),
        measure("reference", 0.004),
        TimingPlan(warmup=1, repeats=3),
        SerialRounds(timer=clock),
        timer=clock,
    )
    assert calls == ["reference", "variant"] * 4
    assert paired.variant.value == pytest.approx(2.0)
    assert paired.reference.value == pytest.approx(4.0)
    assert paired.pairs.ratios == pytest.approx((0.5, 0.5, 0.5))
    assert paired.variant.timer == "time.perf_counter, interleaved with the reference"
    assert paired.reference.timer.endswith("interleaved with the variant")


def test_the_ratio_is_taken_pair_by_pair_so_a_burst_of_load_cancels_out() -> None:
    clock = FakeClock()
    # A burst triples both rounds of the second pair: sequential medians would still agree,
    # but a burst over only the reference's rounds would not; pairs see it on both sides.
    load = iter([1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0])

    def measure(cost: float) -> Callable[[RoundRunner, TimingPlan], SpeedMeasurement]:
        return lambda rounds, plan: measure_latency(
            lambda: clock.spend(cost * next(load)), plan, rounds
        )

    paired = measure_interleaved(
        measure(0.001), measure(0.002), TimingPlan(0, 5), SerialRounds(timer=clock), timer=clock
    )
    assert paired.pairs.ratios == pytest.approx((0.5,) * 5)
    assert paired.pairs.iqr == pytest.approx(0.0)


def test_paired_ratios_report_median_and_quartiles() -> None:
    pairs = PairedRatios((0.8, 1.0, 0.9, 1.2, 1.1))
    assert pairs.median == pytest.approx(1.0)
    assert pairs.quartiles == pytest.approx((0.9, 1.1))
    assert pairs.describe() == "1x (IQR 0.9-1.1 over 5 pairs)"
    assert PairedRatios((0.7,)).quartiles == (0.7, 0.7)
    assert pairs.to_json()["order"] == "one reference round before each variant round"


def test_a_relative_budget_holds_the_median_pairwise_ratio_not_the_ratio_of_medians() -> None:
    # Medians 10 ms and 10 ms (ratio 1.0), but each pair says the variant is 1.5x slower.
    variant, reference = figure("latency_ms", 10.0, 3), figure("latency_ms", 10.0, 3)
    int4 = SpeedSubject("encoder", "int4", "int4", "fp32")
    skewed = PairedRatios((1.4, 1.5, 1.6))
    result = evaluate_speed(
        int4, variant, [budget("latency_ms<=1.2x")], CONTEXT, reference=reference, pairs=skewed
    )
    assert not result.passed
    assert "is 1.5x the reference fp32's (median of interleaved pairs" in result.message
    assert "variant / reference, pair by pair: 1.5x (IQR 1.45-1.55 over 3 pairs)" in result.message
    assert result.details["budgets"][0]["ratio_to_reference"] == pytest.approx(1.5)
    assert result.details["paired"]["median"] == pytest.approx(1.5)
    passing = evaluate_speed(
        int4, variant, [budget("latency_ms<=1.6x")], CONTEXT, reference=reference, pairs=skewed
    )
    assert passing.passed, passing.message


@pytest.fixture
def competing_load() -> Iterator[subprocess.Popen[bytes]]:
    """A busy loop in another process for the duration of the test (bounded to 60 s)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"]
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a competing load needs a second core")
def test_the_rtf_ratio_of_two_identical_graphs_stays_within_ten_percent_under_competing_load(
    tmp_path: Path, competing_load: subprocess.Popen[bytes]
) -> None:
    reference_path = modelkit.export_model(modelkit.build_model("mlp"), tmp_path / "mlp.onnx")
    twin_path = tmp_path / "twin" / "mlp.onnx"
    twin_path.parent.mkdir()
    shutil.copy(reference_path, twin_path)
    arrays = modelkit.signature_inputs(reference_path, dim=64)
    settings = SessionSettings(intra_op_threads=1)
    clips = [Clip(f"clip-{i}", np.zeros(160, dtype=np.float32), 16_000) for i in range(CLIPS)]

    def measure(path: Path) -> Callable[[RoundRunner, TimingPlan], SpeedMeasurement]:
        call = session_call(open_session(path, settings), arrays)
        return lambda rounds, plan: measure_rtf(lambda clip: call(), clips, plan, rounds)

    variant, reference = measure(twin_path), measure(reference_path)
    # Short rounds: a time slice lost to the other process lands on a few pairs, whose
    # outlying ratios the median leaves out.
    ratios = [
        measure_interleaved(variant, reference, TimingPlan(2, 21), SerialRounds()).pairs.median
        for _ in range(10)
    ]
    assert competing_load.poll() is None, "the competing load ended before the measurement"
    assert all(0.9 <= ratio <= 1.1 for ratio in ratios), ratios
