"""The drift-by-depth picture: each variant's per-tensor error against its depth in the reference
graph, so where drift starts and how it accumulates shows at a glance.

matplotlib is optional (``pip install matplotlib``, the ``plot`` extra). The figure is drawn on
matplotlib's object API with the Agg canvas, never pyplot, so no GUI backend is touched and the
global backend of a test session that uses matplotlib itself is left alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from pytest_onnxparity.diagnose.localize.config import PLOT_FORMATS
from pytest_onnxparity.diagnose.localize.records import Localization

DECADE = 10.0
EXACT_ROW_STEP = 1.6


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed; the message names the extra that installs it."""


def drift_plot_path(directory: Path, graph: str, plot_format: str) -> Path:
    """Where the drift plot of ``graph`` goes: ``<directory>/<graph>.drift.<png|svg>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", graph).strip("._") or "graph"
    return directory / f"{safe}.drift.{plot_format}"


def plot_drift(localizations: Sequence[Localization], path: Path) -> Path:
    """Draw rel_l2 (log scale) against depth, one line per variant, and write it to ``path``.

    The format follows the suffix (``.png`` or ``.svg``). Each variant's first tensor past its
    tolerance is circled and named, and its tolerance is a dashed line in the same colour.
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

    figure = Figure(figsize=(9.0, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    floor, ceiling = _floor_and_ceiling(localizations)
    graphs = {localization.graph for localization in localizations}
    tolerances = {localization.tolerance_rel_l2 for localization in localizations}
    # One grey line when every variant has the same tolerance; else one in each variant's colour.
    shared_tolerance = len(tolerances) == 1
    for tolerance in tolerances if shared_tolerance else ():
        axes.axhline(tolerance, color="0.4", linestyle="--", linewidth=0.8)
    middle = _middle_depth(localizations)
    for index, localization in enumerate(localizations):
        label = localization.variant if len(graphs) == 1 else _label(localization)
        depths = [drift.depth for drift in localization.matched]
        # NaN breaks the line at exact matches, which log scale cannot place; they get a marker,
        # each variant's a little lower so that exact matches shared by several all show.
        errors = [_plotted(drift.rel_l2, ceiling) for drift in localization.matched]
        (line,) = axes.plot(depths, errors, marker=".", label=label)
        color = line.get_color()
        exact = [drift.depth for drift in localization.matched if drift.rel_l2 == 0.0]
        row = floor / EXACT_ROW_STEP**index
        axes.plot(exact, [row] * len(exact), linestyle="none", marker="v", color=color)
        if not shared_tolerance:
            axes.axhline(localization.tolerance_rel_l2, color=color, linestyle="--", linewidth=0.8)
        first = localization.first_past_tolerance
        if first is not None:
            point = (first.depth, _plotted(first.rel_l2, ceiling))
            axes.plot(*point, marker="o", markersize=11, fillstyle="none", color=color)
            # Named on the side with room, so a name near the right edge is not cut off.
            left = first.depth > middle
            axes.annotate(
                f"{first.tensor} ({first.op_type})",
                point,
                xytext=(-9 if left else 9, 6),
                textcoords="offset points",
                horizontalalignment="right" if left else "left",
                verticalalignment="bottom",
                fontsize=7,
                color=color,
            )
    axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("depth (topological index of the producing node in the reference graph)")
    axes.set_ylabel("rel_l2 against the reference (▼ exact match)")
    levels = sorted({localization.optimization_level for localization in localizations})
    axes.set_title(
        f"Drift by depth: {', '.join(sorted(graphs))} "
        f"(onnxruntime optimisation level {', '.join(levels)}; dashed: tolerance)",
        fontsize=10,
    )
    axes.grid(True, which="major", alpha=0.3)
    if localizations:
        axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format=suffix, dpi=110)
    return path


def _middle_depth(localizations: Sequence[Localization]) -> float:
    depths = [drift.depth for localization in localizations for drift in localization.matched]
    return (min(depths) + max(depths)) / 2 if depths else 0.0


def _label(localization: Localization) -> str:
    return f"{localization.graph}/{localization.variant}"


def _floor_and_ceiling(localizations: Sequence[Localization]) -> tuple[float, float]:
    """Where exact matches and non-finite drift are drawn: a decade below the smallest error and
    a decade above the largest."""
    finite = [
        drift.rel_l2
        for localization in localizations
        for drift in localization.matched
        if math.isfinite(drift.rel_l2) and drift.rel_l2 > 0.0
    ]
    tolerances = [localization.tolerance_rel_l2 for localization in localizations]
    low = min([*finite, *tolerances, 1.0])
    high = max([*finite, *tolerances, 1e-3])
    return low / DECADE, high * DECADE


def _plotted(rel_l2: float, ceiling: float) -> float:
    if rel_l2 == 0.0:
        return math.nan
    if not math.isfinite(rel_l2):
        return ceiling
    return rel_l2
