"""The ``[localize]`` table: when localization runs, the memory budget of its instrumented runs,
when a node counts as damaged, the graph optimisation level, and the plot format."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.config.project import GRAPH_OPT_LEVELS
from pytest_onnxparity.config.tables import ConfigError, check_keys

LOCALIZE_KEYS = (
    "auto",
    "tolerance_rel_l2",
    "damage_ratio",
    "top_n",
    "memory_mb",
    "batch_size",
    "graph_optimization_level",
    "plot_format",
)


PLOT_FORMATS = ("png", "svg")

MEMORY_FRACTION = 8
"""The default budget is one eighth of the machine's physical memory (two xdist workers
localizing at once stay under a quarter)."""
MIN_DEFAULT_MEMORY_MB = 256


def default_memory_mb() -> int:
    """One eighth of the machine's physical memory, at least 256 MB."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: no sysconf names
        return MIN_DEFAULT_MEMORY_MB * MEMORY_FRACTION
    return max(MIN_DEFAULT_MEMORY_MB, int(total / MEMORY_FRACTION / 2**20))


@dataclass(frozen=True)
class LocalizeOptions:
    """How localization runs; read from the ``[localize]`` config table.

    ``tolerance_rel_l2`` marks a tensor as drifted; ``damage_ratio`` marks a node as damaged
    when the error it adds on its own is that many times what this variant's healthy
    quantization adds at nodes of the same op type; ``top_n`` is how many nodes the report
    lists; ``memory_mb`` bounds the activations one instrumented run may hold (None: one eighth of
    the machine's memory); ``batch_size`` optionally caps the tensors per run as well;
    ``graph_optimization_level`` is onnxruntime's level for the instrumented runs
    (``"disable"`` keeps every tensor name); ``plot_format`` is ``"png"`` or ``"svg"``; ``auto``
    localizes failing graph parity tests without ``--parity-localize``.
    """

    tolerance_rel_l2: float = 0.05
    top_n: int = 5
    batch_size: int | None = None
    graph_optimization_level: str = "disable"
    plot_format: str = "png"
    auto: bool = False
    memory_mb: int | None = None
    damage_ratio: float = 8.0

    @property
    def memory_budget_mb(self) -> int:
        """``memory_mb``, or the machine's default where it is not set."""
        return self.memory_mb if self.memory_mb is not None else default_memory_mb()

    def to_json(self) -> dict[str, Any]:
        return {
            "tolerance_rel_l2": self.tolerance_rel_l2,
            "damage_ratio": self.damage_ratio,
            "top_n": self.top_n,
            "memory_mb": self.memory_mb,
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
        tolerance_rel_l2=_positive_number(
            raw, "tolerance_rel_l2", defaults.tolerance_rel_l2, where
        ),
        top_n=_positive_int(raw, "top_n", defaults.top_n, where),
        batch_size=_optional_positive_int(raw, "batch_size", where),
        graph_optimization_level=level,
        plot_format=plot_format,
        auto=auto,
        memory_mb=_optional_positive_int(raw, "memory_mb", where),
        damage_ratio=_positive_number(raw, "damage_ratio", defaults.damage_ratio, where, low=1.0),
    )


def _positive_number(
    raw: Mapping[str, Any], key: str, default: float, where: str, low: float = 0.0
) -> float:
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= low
    ):
        raise ConfigError(
            f"{where}: {key} must be a number > {low:g} (e.g. {default:g}), got {value!r}"
        )
    return float(value)


def _positive_int(raw: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key} must be an integer >= 1, got {value!r}")
    return value


def _optional_positive_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in raw:
        return None
    return _positive_int(raw, key, 1, where)
