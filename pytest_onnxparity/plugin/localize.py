"""pytest glue for localization: which node of a variant is damaged, in the failure message, the
JSON results and a drift-and-damage plot per graph.

``--parity-localize`` localizes every generated parity test of the run; ``[localize] auto = true``
only the failing ones. Each localization runs after the ordinary parity check, on the same input
arrays and session settings, in instrumented copies of both models in a temporary folder, with
weight-space parity's verdicts (the run's ``[weights]`` limits) as its prior; the verdict is the
ordinary run's and never changes. Workers put the localization in the test's record;
the controller draws one plot per graph (every localized variant a line) before the results file
is written, and references the plot from each record.

Only pytest and the standard library are imported here at load time.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys
from pytest_onnxparity.plugin.weights import WEIGHT_SETTINGS

if TYPE_CHECKING:
    from pytest_onnxparity.compare.weight_space import WeightSettings
    from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
    from pytest_onnxparity.diagnose.localize.prior import WeightVerdict
    from pytest_onnxparity.diagnose.localize.records import Localization
    from pytest_onnxparity.plugin.items import ParityItem


@dataclass(frozen=True)
class LocalizeSettings:
    """How this run localizes, resolved once at configure time.

    ``every_test`` is ``--parity-localize``; ``plot_dir`` is ``--parity-localize-dir`` (None:
    next to ``--parity-json``, else a new temporary folder named in the terminal summary).
    """

    options: LocalizeOptions
    every_test: bool = False
    plot_dir: Path | None = None

    @property
    def active(self) -> bool:
        return self.every_test or self.options.auto

    def wants(self, passed: bool) -> bool:
        """Whether a parity test with this outcome is localized."""
        return self.every_test or (self.options.auto and not passed)

    def plot_directory(self, json_path: Path | None) -> Path | None:
        """Where plots go when it is known before the run ends (on every worker alike)."""
        if self.plot_dir is not None:
            return self.plot_dir
        return None if json_path is None else json_path.parent


@dataclass
class PlotOutcome:
    """What the controller drew at the end of the run, for the terminal summary."""

    written: list[Path]
    problem: str | None = None


LOCALIZE: pytest.StashKey[LocalizeSettings] = pytest.StashKey()
PLOTS: pytest.StashKey[PlotOutcome] = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        return  # no export folder: nothing to localize
    from pytest_onnxparity.config.tables import ConfigError, section_where
    from pytest_onnxparity.diagnose.localize.config import parse_localize_options

    parity_config = engine.settings.config
    try:
        options = parse_localize_options(
            parity_config.section("localize"), section_where(parity_config.sources, "localize")
        )
    except ConfigError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    config.stash[LOCALIZE] = LocalizeSettings(
        options=options,
        every_test=bool(config.option.parity_localize),
        plot_dir=config.option.parity_localize_dir,
    )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(LOCALIZE, None)
    if settings is None or not settings.active:
        return None
    which = "every parity test" if settings.every_test else "failing parity tests"
    options = settings.options
    return [
        f"onnxparity localize: {which} (instrumented runs at graph opt "
        f"{options.graph_optimization_level} within {options.memory_budget_mb} MB, damaged from "
        f"{options.damage_ratio:g}× the op type's noise, rel_l2 tolerance "
        f"{options.tolerance_rel_l2:g})"
    ]


def pytest_onnxparity_failure_details(item: pytest.Item, record: dict[str, Any]) -> list[str]:
    settings = item.config.stash.get(LOCALIZE, None)
    parity_item = _parity_item(item)
    if settings is None or parity_item is None or not settings.wants(passed=False):
        return []
    return localize_into_record(parity_item, record, settings)


def pytest_onnxparity_update_record(record: dict[str, Any], item: pytest.Item) -> None:
    settings = item.config.stash.get(LOCALIZE, None)
    parity_item = _parity_item(item)
    if (
        settings is None
        or parity_item is None
        or not settings.wants(passed=bool(record.get("passed")))
        or record.get("error") is not None
        or "localization" in record
        or "localization_error" in record
    ):
        return
    localize_into_record(parity_item, record, settings)


def _parity_item(item: pytest.Item) -> ParityItem | None:
    if keys.ENGINE not in item.config.stash:
        return None
    from pytest_onnxparity.plugin.items import ParityItem

    return item if isinstance(item, ParityItem) else None


def localize_into_record(
    item: ParityItem, record: dict[str, Any], settings: LocalizeSettings
) -> list[str]:
    """Localize the item's variant on the inputs its parity check used; put the result in
    ``record`` and return the failure-message lines that describe it."""
    from pytest_onnxparity.diagnose.localize.measure import localize
    from pytest_onnxparity.diagnose.localize.plot import drift_plot_path
    from pytest_onnxparity.diagnose.localize.report import message_lines
    from pytest_onnxparity.runtime.sessions import ModelLoadError

    case, engine = item.case, item.engine
    reference = case.graph.reference_file
    if reference.problem:
        # The test's reference may be a torch module or recorded outputs; localization needs
        # the ONNX graph, whose tensors have names.
        record["localization_error"] = reference.problem
        return [f"localization failed (the verdict above stands): {reference.problem}"]
    inputs = engine.inputs(case.graph, _input_key(case))
    with tempfile.TemporaryDirectory(prefix="onnxparity-localize-") as workdir:
        try:
            localization = localize(
                reference.path,
                case.variant.path,
                inputs.arrays,
                graph=case.graph.name,
                variant=case.variant.variant,
                options=settings.options,
                workdir=Path(workdir),
                settings=engine.settings.session,
                weights=weight_verdicts(
                    reference.path,
                    case.variant.path,
                    record.get("tier"),
                    item.config.stash.get(WEIGHT_SETTINGS, None),
                ),
            )
        except ModelLoadError as error:
            record["localization_error"] = str(error)
            return [f"localization failed (the verdict above stands): {error}"]
    plot_dir = settings.plot_directory(engine.settings.json_path)
    if plot_dir is not None and _can_plot():
        plot = drift_plot_path(plot_dir, case.graph.name, settings.options.plot_format)
        localization = localization.with_plot(plot)
    record["localization"] = localization.to_json()
    return message_lines(localization, settings.options.top_n)


def weight_verdicts(
    reference: Path, variant: Path, tier: str | None, settings: WeightSettings | None
) -> list[WeightVerdict] | None:
    """Weight-space parity's verdict on every weight of ``variant`` (the run's ``[weights]``
    limits, else the defaults), the prior of localization; None where the weights cannot be read
    (the localization then says it judged from activations alone)."""
    from pytest_onnxparity.compare.weight_space import WeightSettings, compare_weights
    from pytest_onnxparity.diagnose.localize.prior import verdicts_from_comparisons
    from pytest_onnxparity.onnxfile.dequantize import TensorReadError

    try:
        report = compare_weights(reference, variant, settings or WeightSettings(), file_tier=tier)
    except TensorReadError:
        return None
    return list(verdicts_from_comparisons(report.comparisons))


def _input_key(case: Any) -> Any:
    """What the engine keys the case's input set by: the case's ``input_key`` where cases carry
    one (real and upstream input sets are keyed by name), else its sweep point."""
    return case.input_key if hasattr(case, "input_key") else case.point


def _can_plot() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, object, object]:
    # A wrapper runs before the reporter writes the results file, so the plot paths are in it.
    config = session.config
    settings = config.stash.get(LOCALIZE, None)
    collector = config.stash.get(keys.COLLECTOR, None)
    if settings is not None and settings.active and collector is not None:
        config.stash[PLOTS] = draw_plots(collector, settings, _json_path(config))
    return (yield)


def _json_path(config: pytest.Config) -> Path | None:
    settings = config.stash.get(keys.SETTINGS, None)
    return None if settings is None else settings.json_path


def draw_plots(collector: Any, settings: LocalizeSettings, json_path: Path | None) -> PlotOutcome:
    """One drift plot per graph from the collected records, each record pointing at its graph's.

    Runs on the controller, which holds every worker's records.
    """
    by_graph: dict[str, list[dict[str, Any]]] = {}
    for record in collector.records:
        if record.get("kind") == "parity" and "localization" in record:
            by_graph.setdefault(record["graph"], []).append(record)
    if not by_graph:
        return PlotOutcome(written=[])
    from pytest_onnxparity.diagnose.localize.plot import (
        PlotUnavailableError,
        drift_plot_path,
        plot_drift,
    )

    plot_dir = settings.plot_directory(json_path) or Path(
        tempfile.mkdtemp(prefix="onnxparity-drift-plots-")
    )
    written: list[Path] = []
    for graph, records in sorted(by_graph.items()):
        path = drift_plot_path(plot_dir, graph, settings.options.plot_format)
        try:
            plot_drift(_plotted_localizations(records), path)
        except PlotUnavailableError as error:
            return PlotOutcome(written=written, problem=str(error))
        written.append(path)
        for record in records:
            collector.add({**record, "localization": {**record["localization"], "plot": str(path)}})
    return PlotOutcome(written=written)


def _plotted_localizations(records: list[dict[str, Any]]) -> list[Localization]:
    """The graph's localizations, one line each; labelled by input set where there are several."""
    import dataclasses

    from pytest_onnxparity.diagnose.localize.records import Localization

    input_sets = {_input_set(record) for record in records}
    localizations = []
    for record in sorted(records, key=lambda r: (r["variant"], _input_set(r))):
        localization = Localization.from_json(record["localization"])
        if len(input_sets) > 1:
            label = f"{localization.variant} [{_input_set(record)}]"
            localization = dataclasses.replace(localization, variant=label)
        localizations.append(localization)
    return localizations


def _input_set(record: Mapping[str, Any]) -> str:
    return str(record.get("input_set", {}).get("name", ""))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    settings = config.stash.get(LOCALIZE, None)
    collector = config.stash.get(keys.COLLECTOR, None)
    if settings is None or not settings.active or collector is None:
        return
    lines = summary_lines(collector.records)
    outcome = config.stash.get(PLOTS, PlotOutcome(written=[]))
    lines.extend(f"drift plot written to {path}" for path in outcome.written)
    if outcome.problem:
        lines.append(f"drift plots not drawn: {outcome.problem}")
    if lines:
        terminalreporter.section("onnxparity localize")
        for line in lines:
            terminalreporter.line(line)


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """One line per localized test: where its variant first drifts past the tolerance."""
    from pytest_onnxparity.diagnose.localize.records import Localization
    from pytest_onnxparity.diagnose.localize.report import summary_line

    lines = []
    levels = set()
    for record in records:
        if record.get("kind") != "parity":
            continue
        scope = f"{record['graph']}/{record['variant']} [{_input_set(record)}]"
        if "localization_error" in record:
            lines.append(f"{scope}: localization failed: {record['localization_error']}")
        elif "localization" in record:
            localization = Localization.from_json(record["localization"])
            levels.add(localization.optimization_level)
            lines.append(f"{scope}: {summary_line(localization)}")
    if levels:
        lines.insert(
            0,
            f"instrumented runs at onnxruntime graph optimisation level {', '.join(sorted(levels))}"
            "; the verdicts are the ordinary runs'",
        )
    return lines
