"""Glue between pytest's config and the core: start a run, render the header, check markers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.config.project import ParityConfig, load_config
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import TOLERANCE_KEYS, ToleranceError, validate_layer
from pytest_onnxparity.export.discovery import discover
from pytest_onnxparity.export.folder import DiscoveryError, DiscoveryOverrides
from pytest_onnxparity.plugin import keys
from pytest_onnxparity.plugin.suites import fit_run_config, suite_base
from pytest_onnxparity.run.config_targets import check_config_targets
from pytest_onnxparity.run.engine import ParityEngine
from pytest_onnxparity.run.settings import Settings, build_settings
from pytest_onnxparity.runtime.inputs import InputError
from pytest_onnxparity.runtime.ort import OnnxRuntimeMissingError, require_onnxruntime

MARKER_SELECTORS = ("graph", "variant", "tier")
MARKER_KEYS = (*MARKER_SELECTORS, *TOLERANCE_KEYS)


def start_run(config: pytest.Config, onnx_dir: Path, *, from_command_line: bool) -> ParityEngine:
    """Resolve settings, discover the folder and stash the engine; bad input is a UsageError.

    ``--onnx-dir`` on a command line that names no test paths collects the export folder alone
    (not the project's ``testpaths`` or working directory, whose tests it would only deselect);
    the ini key ``parity_onnx_dir`` adds the folder to a normal run.
    """
    try:
        if not onnx_dir.is_dir():
            raise DiscoveryError(
                f"--onnx-dir {onnx_dir}: no such directory; pass the folder your export wrote"
            )
        require_onnxruntime()
        parity_config = run_config(config, onnx_dir)
        folder = discover(onnx_dir, discovery_overrides(parity_config))
        parity_config = fit_run_config(config, parity_config, folder)
        settings = settings_from_options(config, onnx_dir, parity_config)
        check_config_targets(parity_config, folder, settings.cli_tolerances)
        engine = ParityEngine(settings, folder)
        engine.check_dims()
    except (
        ConfigError,
        DiscoveryError,
        ToleranceError,
        InputError,
        OnnxRuntimeMissingError,
    ) as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    config.stash[keys.SETTINGS] = settings
    config.stash[keys.ENGINE] = engine
    # The folder becomes a collection argument, so its tests are collected (and counted, listed
    # by --collect-only, selected by -m/-k) like any test directory.
    if from_command_line and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(folder.root)]
        config.args_source = pytest.Config.ArgsSource.ARGS
        config.stash[keys.FOLDER_ONLY] = True
    elif str(folder.root) not in config.args:
        config.args.append(str(folder.root))
    return engine


def run_config(config: pytest.Config, onnx_dir: Path | None) -> ParityConfig:
    """The run's config files over the selected ready-made suite (``--parity-suite``)."""
    table, source = suite_base(config)
    return load_config(_pyproject(config), onnx_dir, base=table, base_source=source)


def _pyproject(config: pytest.Config) -> Path | None:
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def settings_from_options(
    config: pytest.Config, onnx_dir: Path | None, parity_config: ParityConfig
) -> Settings:
    option = config.option
    threads_ini = config.getini("parity_threads")
    json_path = option.parity_json or config.getini("parity_json") or None
    return build_settings(
        onnx_dir=onnx_dir,
        config=parity_config,
        seed=option.parity_seed,
        dims=option.parity_dim,
        sweeps=option.parity_sweep,
        providers=option.parity_provider,
        threads=option.parity_threads
        if option.parity_threads is not None
        else _int_ini(threads_ini),
        graph_opt=option.parity_graph_opt,
        deterministic=option.parity_deterministic,
        tolerances=option.parity_tolerance,
        json_path=Path(json_path).resolve() if json_path else None,
        suggest_path=Path(option.parity_suggest).resolve() if option.parity_suggest else None,
        suggest_margin=option.parity_suggest_margin,
        suggest_force=bool(option.parity_suggest_force),
    )


def _int_ini(value: int | None) -> int | None:
    """The typed ini ``parity_threads`` (pytest parsed it), checked for a negative value."""
    if value is not None and value < 0:
        raise ConfigError(f"ini parity_threads must be a non-negative integer, got {value!r}")
    return value


def discovery_overrides(parity_config: ParityConfig) -> DiscoveryOverrides:
    return DiscoveryOverrides(
        files=parity_config.files,
        tiers=parity_config.tags,
        references={
            name: graph.reference
            for name, graph in parity_config.graphs.items()
            if graph.reference is not None
        },
        exclude=parity_config.exclude,
    )


def header_lines(config: pytest.Config) -> list[str]:
    engine = config.stash[keys.ENGINE]
    settings = engine.settings
    session = settings.session
    folder = shown_path(engine.folder.root, config)
    lines = [
        f"onnxparity: {folder} (seed {settings.plan.seed}, "
        f"providers {', '.join(session.providers)}, threads {session.intra_op_threads or 'auto'}, "
        f"graph opt {session.graph_optimization_level}"
        f"{', deterministic' if session.deterministic else ''})",
    ]
    if settings.config.sources:
        lines.append(f"onnxparity config: {'; '.join(settings.config.sources)}")
    lines.extend(f"  {line}" for line in engine.folder.table_lines())
    if config.stash.get(keys.FOLDER_ONLY, False):
        lines.append(
            f"onnxparity: collecting {folder} only (name test paths on the command line to "
            "collect them too)"
        )
    return lines


def shown_path(path: Path, config: pytest.Config) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    base = config.invocation_params.dir
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def marker_problem(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """Why a ``@pytest.mark.parity(...)`` is invalid, or None."""
    if args:
        return f"@pytest.mark.parity takes keywords only, got positional {args!r}"
    unknown = [key for key in kwargs if key not in MARKER_KEYS]
    if unknown:
        return (
            f"@pytest.mark.parity got unknown keyword(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(MARKER_KEYS)}"
        )
    try:
        validate_layer(
            {k: v for k, v in kwargs.items() if k in TOLERANCE_KEYS}, "@pytest.mark.parity"
        )
    except ToleranceError as error:
        return str(error)
    return None


def ensure_settings(config: pytest.Config) -> Settings:
    """The run's settings, resolved on first use when no ``--onnx-dir`` started a run."""
    if keys.SETTINGS not in config.stash:
        try:
            parity_config = run_config(config, None)
            config.stash[keys.SETTINGS] = settings_from_options(config, None, parity_config)
        except (ConfigError, ToleranceError) as error:
            raise pytest.UsageError(f"onnxparity: {error}") from None
    return config.stash[keys.SETTINGS]
