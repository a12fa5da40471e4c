"""The speed and size gates' settings, resolved once per run (command line > ini > config file),
and the stash keys the hooks and items share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_onnxparity.speed.measure import (
        SpeedMeasurement,
    )
    from pytest_onnxparity.speed.sizes import SizeOptions
    from pytest_onnxparity.speed.verdict import SpeedOptions


BENCHMARK_PLUGIN = "benchmark"
TIMING_GROUP = "onnxparity-timing"
"""The ``xdist_group`` of every timing test: one worker runs them all under --dist loadgroup."""


PIPELINE_GRAPH = "pipeline"
"""The ``graph`` of the sequence gates' RTF subjects (``sequence.PIPELINE_GRAPH``): a scope."""


@dataclass(frozen=True)
class SpeedSettings:
    """The speed and size settings of this run, resolved once; under :data:`SPEED_SETTINGS`."""

    speed: SpeedOptions
    size: SizeOptions
    not_enforced: str | None
    """Why timing budgets are not enforced in this process (a parallel run), or None; after
    collection, :data:`NOT_ENFORCED` also knows whether --dist loadgroup took effect."""
    benchmark: bool
    """pytest-benchmark is loaded: timing tests request its fixture."""

    def to_json(self) -> dict[str, Any]:
        return {
            "speed": self.speed.to_json(),
            "size": self.size.to_json(),
            "not_enforced": self.not_enforced,
            "benchmark": self.benchmark,
        }


SPEED_SETTINGS: pytest.StashKey[SpeedSettings] = pytest.StashKey()


NOT_ENFORCED: pytest.StashKey[str | None] = pytest.StashKey()
"""Per process, after collection: why timing budgets are not enforced here, or None."""


REFERENCE_TIMINGS: pytest.StashKey[dict[tuple[str, str], SpeedMeasurement]] = pytest.StashKey()
"""Per process: the reference's figure per (graph or pipeline, metric), for relative budgets."""


def speed_settings(config: pytest.Config) -> SpeedSettings:
    """The run's speed and size settings; a bad budget or config key is a usage error."""
    if SPEED_SETTINGS not in config.stash:
        config.stash[SPEED_SETTINGS] = _resolve(config)
    return config.stash[SPEED_SETTINGS]


def _resolve(config: pytest.Config) -> SpeedSettings:
    from pytest_onnxparity.plugin.run import ensure_settings
    from pytest_onnxparity.speed.budgets import BudgetError
    from pytest_onnxparity.speed.sizes import resolve_size_options
    from pytest_onnxparity.speed.verdict import parallel_note, resolve_speed_options

    parity = ensure_settings(config)
    where = " + ".join(parity.config.sources) or "config"
    option = config.option
    try:
        speed = resolve_speed_options(
            parity.config.section("speed"),
            where,
            cli_budgets=option.parity_speed_budget,
            ini_budgets=config.getini("parity_speed_budgets"),
            repeats=option.parity_timing_repeats,
            ini_repeats=config.getini("parity_timing_repeats"),
            warmup=option.parity_timing_warmup,
            ini_warmup=config.getini("parity_timing_warmup"),
            measure=option.parity_timing,
            ini_measure=config.getini("parity_timing"),
        )
        size = resolve_size_options(
            parity.config.section("size"),
            where,
            cli_budgets=option.parity_size_budget,
            ini_budgets=config.getini("parity_size_budgets"),
        )
    except BudgetError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    workers, grouped = xdist_layout(config)
    return SpeedSettings(
        speed=speed,
        size=size,
        not_enforced=parallel_note(workers, grouped),
        # pytest-benchmark disables itself on xdist workers (and warns for each run that asks
        # for its fixture there), so worker processes time with the plain serial runner.
        benchmark=config.pluginmanager.hasplugin(BENCHMARK_PLUGIN)
        and not hasattr(config, "workerinput"),
    )


def xdist_layout(config: pytest.Config) -> tuple[int | None, bool]:
    """(number of xdist workers or None, whether tests are grouped by ``xdist_group``)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # xdist sets ``loadgroup`` on the workers of a --dist loadgroup run.
        return int(workerinput["workercount"]), bool(getattr(config.option, "loadgroup", False))
    dist = getattr(config.option, "dist", "no")
    workers = getattr(config.option, "numprocesses", None)
    if dist == "no" or not isinstance(workers, int):
        return None, False
    return workers, dist == "loadgroup"
