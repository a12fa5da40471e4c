"""The pure speed core: budgets, round runners, latency and RTF, verdicts, options.

Verdict tests use fixed figures or a fake clock; the few real timings use effects far larger
than any scheduler noise (a 40 ms sleep against none), so none of them can flake.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import modelkit
import numpy as np
import pytest

from pytest_onnxparity.runtime.sessions import SessionSettings, open_session
from pytest_onnxparity.speech.audio.clips import Clip
from pytest_onnxparity.speed.budgets import (
    SPEED_METRICS,
    SPEED_RELATIVE,
    BudgetError,
    parse_budget,
    select_budgets,
)
from pytest_onnxparity.speed.measure import (
    MeasurementContext,
    SerialRounds,
    TimingPlan,
    measure_latency,
    measure_rtf,
    session_call,
)
from pytest_onnxparity.speed.report import speed_lines
from pytest_onnxparity.speed.verdict import (
    PARALLEL_NOTE,
    SpeedSubject,
    check_scopes,
    evaluate_speed,
    parallel_note,
    resolve_speed_options,
)
from tests.unit.speed.timing_doubles import CONTEXT, FakeClock, budget, figure

INT4 = SpeedSubject("encoder", "int4", "int4", "fp32")
FP32 = SpeedSubject("encoder", "fp32", "fp32", "fp32")


def silent_clip(clip_id: str, seconds: float, rate: int = 16_000) -> Clip:
    return Clip(clip_id, np.zeros(int(seconds * rate), dtype=np.float32), rate)


# ---------------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "metric", "limit", "relative"),
    [
        ("latency_ms<=40", None, "latency_ms", 40.0, False),
        ("rtf<=0.3", None, "rtf", 0.3, False),
        ("int4:rtf<=0.7x", "int4", "rtf", 0.7, True),
        ("encoder/q4f16:latency_ms<=1.5X", "encoder/q4f16", "latency_ms", 1.5, True),
        (" int8 : latency_ms <= 12.5 ", "int8", "latency_ms", 12.5, False),
    ],
)
def test_budget_strings_parse_into_scope_metric_limit_and_form(
    text: str, scope: str | None, metric: str, limit: float, relative: bool
) -> None:
    parsed = budget(text)
    assert (parsed.scope, parsed.metric, parsed.op, parsed.limit, parsed.relative) == (
        scope,
        metric,
        "<=",
        limit,
        relative,
    )
    assert parsed.source == "--parity-speed-budget"


def test_budget_text_round_trips() -> None:
    assert budget("int4:rtf<=0.7x").text == "int4:rtf<=0.7x"
    assert budget("latency_ms<=40").text == "latency_ms<=40"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "latency_ms=40",
            "expected [SCOPE:]METRIC<=LIMIT or >=, e.g. 'latency_ms<=40' or 'int4:rtf<=0.7x'; got",
        ),
        ("wer<=0.1", "unknown metric 'wer' in 'wer<=0.1'; allowed: latency_ms, rtf"),
        ("rtf>=0.3", "rtf is an upper bound: write rtf<=LIMIT, got 'rtf>=0.3'"),
        ("latency_ms<=0", "the limit must be a positive number"),
        ("latency_ms<=-1", "the limit must be a positive number"),
        ("latency_ms<=nan", "the limit must be a positive number"),
        ("latency_ms<=inf", "the limit must be a positive number"),
        ("latency_ms<=fast", "the limit must be a positive number"),
        ("latency_ms<=x", "the limit must be a positive number"),
    ],
)
def test_invalid_budget_strings_are_rejected_naming_the_source(text: str, expected: str) -> None:
    with pytest.raises(BudgetError) as error:
        budget(text)
    message = str(error.value)
    assert message.startswith(f"--parity-speed-budget: {expected}"), message


def test_a_metric_without_a_relative_form_rejects_a_trailing_x() -> None:
    with pytest.raises(BudgetError, match="ratio cannot be relative to the reference"):
        parse_budget("ratio>=3x", {"ratio": ">="}, (), "here")


def test_the_most_specific_scope_wins_whatever_the_order() -> None:
    budgets = [budget("encoder/int4:latency_ms<=5"), budget("int4:latency_ms<=9")]
    budgets.append(budget("latency_ms<=40"))
    chosen = select_budgets(budgets, INT4.scopes)
    assert [b.text for b in chosen] == ["encoder/int4:latency_ms<=5"]


def test_at_equal_scope_the_budget_given_last_wins() -> None:
    chosen = select_budgets([budget("int4:rtf<=0.5"), budget("encoder:rtf<=0.2")], INT4.scopes)
    assert [b.text for b in chosen] == ["encoder:rtf<=0.2"]


def test_absolute_and_relative_budgets_of_one_metric_both_apply() -> None:
    budgets = [budget("latency_ms<=40"), budget("int4:latency_ms<=0.7x"), budget("fp16:rtf<=1")]
    chosen = select_budgets(budgets, INT4.scopes)
    assert [b.text for b in chosen] == ["latency_ms<=40", "int4:latency_ms<=0.7x"]


def test_a_scope_that_names_nothing_of_the_folder_is_an_error() -> None:
    with pytest.raises(BudgetError, match=r"'int44:rtf<=0.7x' is scoped to 'int44'.*known: enc"):
        check_scopes([budget("int44:rtf<=0.7x")], ["encoder", "int4"], "out/")
    check_scopes([budget("int4:rtf<=0.7x"), budget("rtf<=1")], ["int4"], "out/")


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def test_serial_rounds_run_the_warm_up_untimed_then_time_each_round() -> None:
    clock = FakeClock()
    costs = iter([100.0, 100.0, 1.0, 3.0, 2.0])  # two slow warm-up calls, then three rounds
    calls = []

    def target() -> None:
        calls.append(1)
        clock.spend(next(costs))

    durations = SerialRounds(timer=clock)(target, warmup=2, repeats=3)
    assert durations == [1.0, 3.0, 2.0]
    assert len(calls) == 5


def test_latency_is_the_median_round_in_milliseconds() -> None:
    clock = FakeClock()
    costs = iter([5.0, 0.010, 0.500, 0.012, 0.011, 0.013])  # one outlier round of 500 ms

    measured = measure_latency(
        lambda: clock.spend(next(costs)), TimingPlan(1, 5), SerialRounds(timer=clock)
    )
    assert measured.metric == "latency_ms"
    assert measured.value == pytest.approx(12.0)
    assert measured.rounds_s == pytest.approx((0.010, 0.500, 0.012, 0.011, 0.013))
    assert measured.timer == "time.perf_counter"
    assert "median of 5 calls after 1 warm-up (min 10, max 500 ms" in measured.describe()


def test_rtf_is_total_time_over_total_audio_and_per_clip_time_over_its_audio() -> None:
    clock = FakeClock()
    clips = [silent_clip("short", 1.0), silent_clip("long", 3.0)]
    cost = {"short": 0.2, "long": 0.3}

    def adapter(clip: Clip) -> None:
        clock.spend(cost[clip.id])

    measured = measure_rtf(adapter, clips, TimingPlan(1, 3), SerialRounds(timer=clock), clock)
    assert measured.metric == "rtf"
    assert measured.audio_s == pytest.approx(4.0)
    assert measured.value == pytest.approx(0.5 / 4.0)
    by_clip = {clip.clip_id: clip for clip in measured.clips}
    assert by_clip["short"].rtf == pytest.approx(0.2)
    assert by_clip["long"].rtf == pytest.approx(0.1)
    assert measured.worst_clip is by_clip["short"]
    assert measured.to_json()["clips"][0] == {
        "clip": "short",
        "audio_s": 1.0,
        "median_s": pytest.approx(0.2),
        "rtf": pytest.approx(0.2),
    }


def test_per_clip_times_skip_the_warm_up_passes_of_any_round_runner() -> None:
    @dataclass(frozen=True)
    class ProfilingRounds:
        """Like pytest-benchmark with --benchmark-cprofile: one more call after the rounds."""

        name: str = "profiling"

        def __call__(self, target: Callable[[], object], warmup: int, repeats: int) -> list[float]:
            durations = SerialRounds(timer=clock)(target, warmup, repeats)
            target()
            return durations

    clock = FakeClock()
    costs = itertools.chain([9.0], itertools.repeat(0.5, 3), [9.0])

    measured = measure_rtf(
        lambda clip: clock.spend(next(costs)),
        [silent_clip("a", 1.0)],
        TimingPlan(1, 3),
        ProfilingRounds(),
        clock,
    )
    assert measured.clips[0].median_s == pytest.approx(0.5)
    assert measured.timer == "profiling"


def test_rtf_needs_clips_with_audio() -> None:
    with pytest.raises(BudgetError, match="at least one clip"):
        measure_rtf(lambda clip: None, [], TimingPlan())
    with pytest.raises(BudgetError, match=r"empty clip\(s\): silent"):
        measure_rtf(lambda clip: None, [silent_clip("silent", 0.0)], TimingPlan())


def test_a_round_runner_returning_the_wrong_number_of_rounds_is_reported() -> None:
    @dataclass(frozen=True)
    class Broken:
        name: str = "broken"

        def __call__(self, target: Callable[[], object], warmup: int, repeats: int) -> list[float]:
            return [1.0]

    with pytest.raises(BudgetError, match=r"round runner broken returned 1 duration\(s\) for 3"):
        measure_latency(lambda: None, TimingPlan(0, 3), Broken())


def test_a_plan_needs_at_least_one_timed_round() -> None:
    with pytest.raises(BudgetError, match="repeats >= 1"):
        TimingPlan(warmup=0, repeats=0)


def test_session_call_times_the_session_on_a_feed_built_once(tmp_path: Path) -> None:
    path = modelkit.export_model(modelkit.build_model("mlp"), tmp_path / "mlp.onnx")
    runner = open_session(path, SessionSettings(intra_op_threads=1))
    arrays = modelkit.signature_inputs(path)

    call = session_call(runner, {name: a.astype(np.float64) for name, a in arrays.items()})
    (logits,) = call()  # type: ignore[misc]
    np.testing.assert_allclose(logits, runner.run(arrays)["logits"], rtol=1e-6)
    measured = measure_latency(call, TimingPlan(1, 3))
    assert measured.value > 0 and len(measured.rounds_s) == 3


# ---------------------------------------------------------------------------------------------
# Verdicts: figures are fixed, so these can only fail for a bug
# ---------------------------------------------------------------------------------------------


def test_a_figure_under_its_absolute_budget_passes_with_everything_recorded() -> None:
    result = evaluate_speed(INT4, figure("latency_ms", 12.0), [budget("latency_ms<=40")], CONTEXT)
    assert result.passed and result.enforced and result.message == ""
    assert result.check == "latency"
    details = result.to_json()["details"]
    assert details["measurement"]["value"] == 12.0
    assert details["context"] == {
        "providers": ["CPUExecutionProvider"],
        "intra_op_threads": 2,
        "inter_op_threads": 0,
        "allow_spinning": False,
        "cpu": "Test CPU",
        "cpu_count": 4,
        "onnxruntime": "1.0",
    }
    assert details["budgets"][0]["budget"] == "latency_ms<=40"
    assert details["budgets"][0]["passed"] is True


def test_a_figure_over_its_absolute_budget_fails_with_value_limit_and_next_step() -> None:
    result = evaluate_speed(INT4, figure("latency_ms", 52.0), [budget("latency_ms<=40")], CONTEXT)
    assert not result.passed and result.enforced
    lines = result.message.splitlines()
    assert lines[0] == (
        "encoder[int4] latency_ms 52 exceeds 40 (budget latency_ms<=40 from --parity-speed-budget)"
    )
    assert lines[1].startswith("  measured: median of 5 calls after 1 warm-up")
    assert lines[2] == (
        "  context: CPUExecutionProvider, intra-op threads 2, onnxruntime 1.0, CPU Test CPU"
    )
    assert lines[3].startswith("  next step: profile the variant")
    assert "--parity-speed-budget encoder/int4:latency_ms<=<limit>" in lines[3]


def test_a_relative_budget_scales_the_reference_figure_of_the_same_run() -> None:
    rule = [budget("int4:rtf<=0.7x")]
    faster = evaluate_speed(INT4, figure("rtf", 0.06), rule, CONTEXT, reference=figure("rtf", 0.1))
    assert faster.passed
    gate = faster.to_json()["details"]["budgets"][0]
    assert gate["effective_limit"] == pytest.approx(0.07)
    assert gate["ratio_to_reference"] == pytest.approx(0.6)

    slower = evaluate_speed(INT4, figure("rtf", 0.09), rule, CONTEXT, reference=figure("rtf", 0.1))
    assert not slower.passed
    assert slower.message.splitlines()[0] == (
        "encoder[int4] rtf 0.09 is 0.9x the reference fp32's 0.1, above 0.7x = 0.07 "
        "(budget int4:rtf<=0.7x from --parity-speed-budget)"
    )
    assert "  reference fp32: median of 5 passes over the clips" in slower.message


def test_relative_budgets_do_not_apply_to_the_reference_itself() -> None:
    result = evaluate_speed(FP32, figure("rtf", 0.1), [budget("rtf<=0.7x")], CONTEXT)
    assert result.passed and result.to_json()["details"]["budgets"] == []


def test_a_relative_budget_without_a_reference_figure_fails_naming_the_fix() -> None:
    result = evaluate_speed(INT4, figure("rtf", 0.1), [budget("rtf<=0.7x")], CONTEXT)
    assert not result.passed
    assert "has no reference figure; time the reference fp32 in the same run" in result.message
    assert "next step: select the reference's timing test too, e.g. -k encoder" in result.message


def test_budgets_on_another_metric_leave_a_figure_alone() -> None:
    result = evaluate_speed(INT4, figure("latency_ms", 99.0), [budget("rtf<=0.1")], CONTEXT)
    assert result.passed and result.to_json()["details"]["budgets"] == []


def test_the_slowest_clip_is_named_when_an_rtf_budget_fails() -> None:
    clock = FakeClock()
    clips = [silent_clip("quick", 2.0), silent_clip("stalls", 1.0)]
    cost = {"quick": 0.2, "stalls": 0.9}
    measured = measure_rtf(
        lambda clip: clock.spend(cost[clip.id]), clips, TimingPlan(0, 1), SerialRounds(clock), clock
    )
    result = evaluate_speed(INT4, measured, [budget("rtf<=0.3")], CONTEXT)
    assert "  slowest clip: stalls rtf 0.9 (900 ms for 1 s of audio)" in result.message


def test_a_parallel_run_records_the_verdict_without_enforcing_it() -> None:
    note = parallel_note(worker_count=2, grouped=False)
    assert note is not None and note.startswith(PARALLEL_NOTE)
    result = evaluate_speed(
        INT4, figure("latency_ms", 52.0), [budget("latency_ms<=40")], CONTEXT, not_enforced=note
    )
    assert not result.enforced and not result.passed
    assert result.message.startswith(
        "not enforced: parallel run (2 xdist workers); run serially or add --dist loadgroup "
        "to enforce timing budgets; latency_ms 52 (would fail)"
    )
    assert result.to_json()["details"]["not_enforced"] == note


@pytest.mark.parametrize(
    ("workers", "grouped", "enforced"),
    [(None, False, True), (1, False, True), (2, True, True), (2, False, False), (8, False, False)],
)
def test_timing_is_enforced_serially_or_when_grouped_on_one_worker(
    workers: int | None, grouped: bool, enforced: bool
) -> None:
    assert (parallel_note(workers, grouped) is None) is enforced


def test_the_context_of_deterministic_sessions_says_one_thread() -> None:
    context = MeasurementContext.of_session(SessionSettings(intra_op_threads=4, deterministic=True))
    assert context.intra_op_threads == 1
    assert context.providers == ("CPUExecutionProvider",)
    assert context.onnxruntime is not None and context.cpu
    assert "intra-op threads auto" in MeasurementContext(("CPU",), 0, cpu_count=8).describe()


# ---------------------------------------------------------------------------------------------
# Real timings: only effects far larger than noise, and relative gates with a margin
# ---------------------------------------------------------------------------------------------

ONE_SECOND_CLIPS = [silent_clip(f"clip{i}", 1.0) for i in range(2)]


def sleeping_adapter(seconds: float) -> Callable[[Clip], None]:
    def adapter(clip: Clip) -> None:
        time.sleep(seconds)

    return adapter


def test_a_deliberately_slowed_variant_fails_its_relative_rtf_gate() -> None:
    plan = TimingPlan(warmup=1, repeats=3)
    reference = measure_rtf(lambda clip: float(np.abs(clip.audio).sum()), ONE_SECOND_CLIPS, plan)
    slowed = measure_rtf(sleeping_adapter(0.04), ONE_SECOND_CLIPS, plan)
    # The sleep alone is >= 0.04 s per second of audio; the reference sums 16k zeros.
    result = evaluate_speed(INT4, slowed, [budget("rtf<=2x")], CONTEXT, reference=reference)
    assert not result.passed
    assert result.message.startswith("encoder[int4] rtf ")
    assert "x the reference fp32's " in result.message.splitlines()[0]


def test_an_equally_fast_variant_passes_a_relative_gate_with_a_margin() -> None:
    plan = TimingPlan(warmup=1, repeats=3)
    # Both sides sleep, so each figure is the sleep plus a little: their ratio stays near 1,
    # far under the 3x margin, however busy the machine.
    reference = measure_rtf(sleeping_adapter(0.01), ONE_SECOND_CLIPS, plan)
    variant = measure_rtf(sleeping_adapter(0.01), ONE_SECOND_CLIPS, plan)
    result = evaluate_speed(INT4, variant, [budget("rtf<=3x")], CONTEXT, reference=reference)
    assert result.passed, result.message


def test_an_adapter_that_runs_a_model_per_clip_is_timed_like_any_callable(tmp_path: Path) -> None:
    path = modelkit.export_model(modelkit.build_model("mlp"), tmp_path / "mlp.onnx")
    runner = open_session(path, SessionSettings(intra_op_threads=1))

    def adapter(clip: Clip) -> None:
        frames = clip.audio[: 16 * 4].reshape(4, 16)
        runner.run({"x": frames})

    measured = measure_rtf(adapter, ONE_SECOND_CLIPS, TimingPlan(1, 3))
    assert 0 < measured.value < 1  # four 16-wide rows through a tiny MLP: far faster than audio
    assert [clip.clip_id for clip in measured.clips] == ["clip0", "clip1"]


# ---------------------------------------------------------------------------------------------
# Options and rendering
# ---------------------------------------------------------------------------------------------


def test_the_speed_table_rejects_unknown_keys_naming_the_file_and_the_allowed_keys() -> None:
    with pytest.raises(BudgetError) as error:
        resolve_speed_options({"budget": ["rtf<=1"]}, "pyproject.toml [tool.onnxparity]")
    assert str(error.value) == (
        "pyproject.toml [tool.onnxparity] [speed]: unknown key 'budget'; allowed keys: "
        "budgets, repeats, warmup, measure"
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"budgets": "rtf<=1"}, "[speed] budgets: budgets must be a list of strings"),
        ({"budgets": ["rtf<1"]}, "[speed] budgets: expected [SCOPE:]METRIC<=LIMIT"),
        ({"repeats": 0}, "[speed]: repeats must be an integer >= 1, got 0"),
        ({"warmup": -1}, "[speed]: warmup must be an integer >= 0, got -1"),
        ({"repeats": True}, "[speed]: repeats must be an integer >= 1, got True"),
        ({"measure": "yes"}, "[speed]: measure must be true or false, got 'yes'"),
    ],
)
def test_invalid_speed_table_values_are_errors_naming_the_key(
    section: dict[str, object], expected: str
) -> None:
    with pytest.raises(BudgetError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        resolve_speed_options(section, "parity.toml")


@pytest.mark.parametrize(
    ("file_value", "ini", "cli", "expected"),
    [
        (None, None, None, 5),
        (7, None, None, 7),
        (7, 9, None, 9),
        (7, 9, 3, 3),
        (None, None, 4, 4),
    ],
)
def test_repeats_come_from_the_command_line_then_ini_then_the_config_file(
    file_value: int | None, ini: int | None, cli: int | None, expected: int
) -> None:
    section = {} if file_value is None else {"repeats": file_value}
    options = resolve_speed_options(section, "cfg", repeats=cli, ini_repeats=ini)
    assert options.plan.repeats == expected


def test_an_ini_count_below_its_minimum_names_the_ini_key() -> None:
    # pytest itself refuses a non-integer: the ini key is typed.
    with pytest.raises(BudgetError, match="ini parity_timing_repeats must be an integer >= 1"):
        resolve_speed_options({}, "cfg", ini_repeats=0)


def test_budgets_from_every_source_are_kept_in_file_ini_cli_order() -> None:
    options = resolve_speed_options(
        {"budgets": ["int4:rtf<=0.8x"]},
        "cfg",
        ini_budgets=["int4:rtf<=0.75x"],
        cli_budgets=[budget("int4:rtf<=0.7x")],
    )
    assert [(b.text, b.source) for b in options.budgets] == [
        ("int4:rtf<=0.8x", "cfg [speed] budgets"),
        ("int4:rtf<=0.75x", "ini parity_speed_budgets"),
        ("int4:rtf<=0.7x", "--parity-speed-budget"),
    ]
    assert [b.text for b in select_budgets(options.budgets, INT4.scopes)] == ["int4:rtf<=0.7x"]
    assert options.active and not resolve_speed_options({}, "cfg").active
    assert resolve_speed_options({"measure": True}, "cfg").active


def test_speed_metrics_are_upper_bounds_that_may_be_relative() -> None:
    assert set(SPEED_METRICS.values()) == {"<="}
    assert frozenset(SPEED_METRICS) == SPEED_RELATIVE


def test_the_speed_table_shows_each_figure_against_its_reference_and_the_context() -> None:
    records = []
    for subject, value, reference in ((FP32, 10.0, None), (INT4, 6.0, figure("latency_ms", 10.0))):
        result = evaluate_speed(
            subject,
            figure("latency_ms", value),
            [budget("int4:latency_ms<=0.7x")],
            CONTEXT,
            reference=reference,
        )
        records.append({"kind": "check", "nodeid": subject.title, **result.to_json()})
    lines = speed_lines(records)
    assert lines[0].split() == [
        "graph",
        "variant",
        "metric",
        "median",
        "vs",
        "reference",
        "budgets",
        "status",
    ]
    assert lines[2].split() == ["encoder", "fp32", "latency_ms", "10", "-", "-", "PASS"]
    assert lines[3].split() == [
        "encoder",
        "int4",
        "latency_ms",
        "6",
        "0.60x",
        "int4:latency_ms<=0.7x",
        "PASS",
    ]
    assert lines[4] == (
        "measured with CPUExecutionProvider, intra-op threads 2, onnxruntime 1.0, CPU Test CPU; "
        "median of 5 after 1 warm-up; timer fake"
    )
    assert speed_lines([{"kind": "parity"}]) == []
