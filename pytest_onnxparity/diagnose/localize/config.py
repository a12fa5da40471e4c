"""The ``[localize]`` table: when localization runs, how many tensors per batch, the graph
optimisation level of the instrumented runs, and the plot format."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.config.project import GRAPH_OPT_LEVELS
from pytest_onnxparity.config.tables import ConfigError, check_keys

LOCALIZE_KEYS = (
    "auto",
    "tolerance_rel_l2",
    "top_n",
    "batch_size",
    "graph_optimization_level",
    "plot_format",
)


PLOT_FORMATS = ("png", "svg")


@dataclass(frozen=True)
class LocalizeOptions:
    """How localization runs; read from the ``[localize]`` config table.

    ``tolerance_rel_l2`` marks a tensor as drifted; ``top_n`` is how many layers the report lists;
    ``batch_size`` is how many tensors one instrumented run exposes (the memory bound);
    ``graph_optimization_level`` is onnxruntime's level for the instrumented runs (``"disable"``
    keeps every tensor name); ``plot_format`` is ``"png"`` or ``"svg"``; ``auto`` localizes
    failing graph parity tests without ``--parity-localize``.
    """

    tolerance_rel_l2: float = 0.05
    top_n: int = 5
    batch_size: int = 64
    graph_optimization_level: str = "disable"
    plot_format: str = "png"
    auto: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "tolerance_rel_l2": self.tolerance_rel_l2,
            "top_n": self.top_n,
            "batch_size": self.batch_size,
            "graph_optimization_level": self.graph_optimization_level,
            "plot_format": self.plot_format,
            "auto": self.auto,
        }


def parse_localize_options(raw: Mapping[str, Any], where: str) -> LocalizeOptions:
    """Validate the raw ``[localize]`` table; ``where`` names its source in errors."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [localize] must be a table, got {raw!r}")
    check_keys(raw, LOCALIZE_KEYS, where)
    defaults = LocalizeOptions()
    tolerance = raw.get("tolerance_rel_l2", defaults.tolerance_rel_l2)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not math.isfinite(tolerance)
        or tolerance <= 0
    ):
        raise ConfigError(
            f"{where}: tolerance_rel_l2 must be a number > 0 (e.g. 0.05), got {tolerance!r}"
        )
    level = raw.get("graph_optimization_level", defaults.graph_optimization_level)
    if level not in GRAPH_OPT_LEVELS:
        raise ConfigError(
            f"{where}: graph_optimization_level must be one of {', '.join(GRAPH_OPT_LEVELS)}, "
            f"got {level!r}"
        )
    plot_format = raw.get("plot_format", defaults.plot_format)
    if plot_format not in PLOT_FORMATS:
        raise ConfigError(
            f"{where}: plot_format must be one of {', '.join(PLOT_FORMATS)}, got {plot_format!r}"
        )
    auto = raw.get("auto", defaults.auto)
    if not isinstance(auto, bool):
        raise ConfigError(f"{where}: auto must be true or false, got {auto!r}")
    return LocalizeOptions(
        tolerance_rel_l2=float(tolerance),
        top_n=_positive_int(raw, "top_n", defaults.top_n, where),
        batch_size=_positive_int(raw, "batch_size", defaults.batch_size, where),
        graph_optimization_level=level,
        plot_format=plot_format,
        auto=auto,
    )


def _positive_int(raw: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key} must be an integer >= 1, got {value!r}")
    return value
