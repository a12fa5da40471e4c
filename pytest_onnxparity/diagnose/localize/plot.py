"""The drift-and-damage-by-depth picture: for each variant, above, its per-tensor drift against
the depth in the reference graph (where drift starts and how it accumulates); below, the damage
each node adds on its own (where it comes from), with damaged nodes circled and named.

Tensors that are all mask fill have no statistics: they are drawn as ``×`` on a row of their
own, never as agreement; tensors with some fill left out get an open square around their point.
matplotlib is optional (``pip install matplotlib``, the ``plot`` extra). The figure is drawn on
matplotlib's object API with the Agg canvas, never pyplot, so no GUI backend is touched and the
global backend of a test session that uses matplotlib itself is left alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_onnxparity.diagnose.localize.config import PLOT_FORMATS
from pytest_onnxparity.diagnose.localize.records import Localization, TensorDrift

DECADE = 10.0
ROW_STEP = 1.6
NAMED_DAMAGE = 3
"""Damaged nodes named per variant (the highest-ranked); the rest are circled only."""


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed; the message names the extra that installs it."""


def drift_plot_path(directory: Path, graph: str, plot_format: str) -> Path:
    """Where the drift plot of ``graph`` goes: ``<directory>/<graph>.drift.<png|svg>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", graph).strip("._") or "graph"
    return directory / f"{safe}.drift.{plot_format}"


def plot_drift(localizations: Sequence[Localization], path: Path) -> Path:
    """Draw drift and damage against depth, one line per variant, and write it to ``path``.

    The format follows the suffix (``.png`` or ``.svg``). Above: rel_l2 (log scale), each
    variant's tolerance dashed, its first tensor past it circled; exact matches ▼ and mask-fill
    tensors × along the bottom. Below: damage (log scale) with the damage ratio dashed, damaged
    nodes circled and the highest-ranked named.
    """
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise ValueError(
            f"{path}: cannot plot to {path.suffix or 'a file without a suffix'}; "
            f"name the file with one of {', '.join('.' + f for f in PLOT_FORMATS)}"
        )
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise PlotUnavailableError(
            f"{path}: drift plots need matplotlib; pip install matplotlib"
        ) from None

    figure = Figure(figsize=(10.0, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    drift_axes, damage_axes = figure.subplots(2, 1, sharex=True, height_ratios=(1.0, 1.0))
    graphs = sorted({localization.graph for localization in localizations})
    colors = []
    for index, localization in enumerate(localizations):
        label = localization.variant if len(graphs) == 1 else _label(localization)
        colors.append(_draw_drift(drift_axes, localizations, index, label))
    for index, color in enumerate(colors):
        _draw_damage(damage_axes, localizations, index, color)
    drift_axes.set_yscale("log")
    damage_axes.set_yscale("log")
    damage_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    damage_axes.set_xlabel("depth (topological index of the producing node in the reference graph)")
    drift_axes.set_ylabel("drift: rel_l2 vs reference\n(▼ exact, × all mask fill, □ some fill)")
    damage_axes.set_ylabel("damage: error added on its own\n/ the noise of its peers")
    levels = sorted({localization.optimization_level for localization in localizations})
    drift_axes.set_title(
        f"Drift and damage by depth: {', '.join(graphs)} "
        f"(onnxruntime optimisation level {', '.join(levels)})",
        fontsize=10,
    )
    damage_axes.set_title(
        "dashed: drift tolerance (above) and damage ratio (below); ○ damaged node", fontsize=8
    )
    damage_axes.set_ylim(*_damage_limits(localizations))
    for axes in (drift_axes, damage_axes):
        axes.grid(True, which="major", alpha=0.3)
    if localizations:
        drift_axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format=suffix, dpi=110)
    return path


def _draw_drift(axes: Any, localizations: Sequence[Localization], index: int, label: str) -> Any:
    localization = localizations[index]
    floor, ceiling = _floor_and_ceiling([d.rel_l2 for lo in localizations for d in lo.matched])
    floor = min(floor, min(lo.tolerance_rel_l2 for lo in localizations) / DECADE)
    shown = [drift for drift in localization.matched if not drift.masked]
    # NaN breaks the line at exact matches, which log scale cannot place; they get a marker,
    # each variant's a little lower so that exact matches shared by several all show.
    (line,) = axes.plot(
        [d.depth for d in shown],
        [_plotted(d.rel_l2, ceiling) for d in shown],
        marker=".",
        label=label,
    )
    color = line.get_color()
    row = floor / ROW_STEP**index
    exact = [d.depth for d in shown if d.rel_l2 == 0.0]
    axes.plot(exact, [row] * len(exact), linestyle="none", marker="v", color=color)
    masked = [d.depth for d in localization.matched if d.masked]
    axes.plot(masked, [row] * len(masked), linestyle="none", marker="x", color=color)
    partly = [d for d in shown if d.fill_fraction > 0.0 and d.rel_l2 > 0.0]
    axes.plot(
        [d.depth for d in partly],
        [_plotted(d.rel_l2, ceiling) for d in partly],
        linestyle="none",
        marker="s",
        fillstyle="none",
        markersize=7,
        color=color,
    )
    axes.axhline(localization.tolerance_rel_l2, color=color, linestyle="--", linewidth=0.8)
    first = localization.first_past_tolerance
    if first is not None:
        axes.plot(
            first.depth,
            _plotted(first.rel_l2, ceiling),
            marker="o",
            markersize=10,
            fillstyle="none",
            color=color,
        )
    return color


def _draw_damage(axes: Any, localizations: Sequence[Localization], index: int, color: Any) -> None:
    localization = localizations[index]
    every = [d.damage for lo in localizations for d in lo.matched]
    _, ceiling = _floor_and_ceiling([*every, localization.damage_ratio])
    shown = [d for d in localization.matched if not d.masked and d.damage > 0.0]
    axes.plot(
        [d.depth for d in shown],
        [_plotted(d.damage, ceiling) for d in shown],
        linestyle="none",
        marker=".",
        color=color,
    )
    axes.axhline(localization.damage_ratio, color=color, linestyle="--", linewidth=0.8)
    middle = _middle_depth(localizations)
    damaged = [d for d in localization.damaged() if d.damage > 0.0 or d.weight_failures]
    for rank, drift in enumerate(damaged):
        point = (drift.depth, _plotted(drift.damage if drift.damage > 0 else 1.0, ceiling))
        axes.plot(*point, marker="o", markersize=11, fillstyle="none", color=color)
        if rank < NAMED_DAMAGE:
            _name(axes, drift, point, middle, color)


def _name(
    axes: Any, drift: TensorDrift, point: tuple[float, float], middle: float, color: Any
) -> None:
    # Named on the side with room, so a name near the right edge is not cut off.
    left = drift.depth > middle
    axes.annotate(
        f"{drift.node or drift.tensor} ({drift.op_type})",
        point,
        xytext=(-9 if left else 9, 6),
        textcoords="offset points",
        horizontalalignment="right" if left else "left",
        verticalalignment="bottom",
        fontsize=7,
        color=color,
    )


def _damage_limits(localizations: Sequence[Localization]) -> tuple[float, float]:
    """Room for every damage value, the damage ratios and the names above the highest."""
    values = [d.damage for lo in localizations for d in lo.matched if d.damage > 0.0]
    values += [lo.damage_ratio for lo in localizations]
    low, high = _floor_and_ceiling(values)
    return low, high * DECADE


def _middle_depth(localizations: Sequence[Localization]) -> float:
    depths = [drift.depth for localization in localizations for drift in localization.matched]
    return (min(depths) + max(depths)) / 2 if depths else 0.0


def _label(localization: Localization) -> str:
    return f"{localization.graph}/{localization.variant}"


def _floor_and_ceiling(values: Sequence[float]) -> tuple[float, float]:
    """Where exact matches and infinite values are drawn: a decade below the smallest positive
    value and a decade above the largest."""
    finite = [value for value in values if math.isfinite(value) and value > 0.0]
    low = min([*finite, 1.0])
    high = max([*finite, 1e-3])
    return low / DECADE, high * DECADE


def _plotted(value: float, ceiling: float) -> float:
    if value == 0.0 or math.isnan(value):
        return math.nan
    if not math.isfinite(value):
        return ceiling
    return value
