"""Ready-made suites: declarative TOML files that a run starts from (``--parity-suite NAME``).

A suite file is a document in the ``[tool.onnxparity]`` schema (tolerances per tier, argmax and
top-k gates, sessions, sections of other features) with a ``[suite]`` table: its header (name,
description, what it checks, an example command) and what the core does not know about a kind
of model: input rules by input name for every graph (``[suite.inputs]``), a batch size for the
first axis of dynamic inputs, pooled-embedding gates (``[suite.pooled]``, see
:mod:`pytest_onnxparity.compare.pooling`) and streaming gates (``[suite.streaming]``, see
:mod:`pytest_onnxparity.speech.streaming.stream`).

The suite is the weakest layer of the run's config: the project's ``pyproject.toml``, the export
folder's ``parity.toml``, the command line and markers extend and override it key by key, so a
user's ``[tool.onnxparity.suite.pooled.tiers.int8]`` changes one limit of the shipped suite.

Suites ship inside the package (``pytest_onnxparity/suites/shipped``, the repository's
``suites/``) and are read with :mod:`importlib.resources`; a path to a ``.toml`` file works
the same way.
No pytest here.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.config.project import InputRule, ParityConfig, parse_config
from pytest_onnxparity.config.tables import ConfigError, check_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from pytest_onnxparity.compare.pooling import PooledOptions
    from pytest_onnxparity.onnxfile.signature import TensorSpec
    from pytest_onnxparity.speech.streaming.config import StreamingOptions

SUITES_FOLDER = "shipped"
SUITE_SECTION = "suite"
SUITE_KEYS = (
    "name",
    "description",
    "checks",
    "example",
    "batch",
    "inputs",
    "pooled",
    "streaming",
    "sequence",
)
HEADER_KEYS = ("name", "description", "checks")


class SuiteError(ValueError):
    """A suite cannot be found or read; the message names the suite and the fix."""


@dataclass(frozen=True)
class Suite:
    """One suite file: its header and its whole document (the config table it contributes)."""

    name: str
    description: str
    checks: tuple[str, ...]
    example: str
    source: str
    table: Mapping[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        """How the run's config sources name it."""
        return f"suite {self.name} ({self.source})"


@dataclass(frozen=True)
class SuiteOptions:
    """The validated ``[suite]`` section of the run's merged config."""

    name: str | None = None
    description: str = ""
    checks: tuple[str, ...] = ()
    example: str | None = None
    batch: int | None = None
    inputs: Mapping[str, InputRule] = field(default_factory=dict)
    pooled: PooledOptions | None = None
    streaming: StreamingOptions | None = None
    sequence: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "batch": self.batch,
            "inputs": {
                name: {"range": rule.range, "value": rule.value, "tie": rule.tie}
                for name, rule in self.inputs.items()
            },
            "pooled": None if self.pooled is None else self.pooled.to_json(),
            "streaming": None if self.streaming is None else self.streaming.to_json(),
            "sequence": dict(self.sequence),
        }


# --------------------------------------------------------------------------------------------
# Finding and reading suites
# --------------------------------------------------------------------------------------------


def shipped_suites() -> dict[str, Any]:
    """The suites in the package, by name: ``{name: Traversable}`` sorted by name."""
    folder = resources.files("pytest_onnxparity.suites").joinpath(SUITES_FOLDER)
    if not folder.is_dir():
        return {}
    found = {
        entry.name[: -len(".toml")]: entry
        for entry in folder.iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    }
    return dict(sorted(found.items()))


def find_suite(choice: str, base_dir: Path) -> Suite:
    """A shipped suite by name, or a suite file by path (relative to ``base_dir``)."""
    shipped = shipped_suites()
    if choice in shipped:
        resource = shipped[choice]
        return read_suite(
            resource.read_bytes(), f"pytest_onnxparity/suites/shipped/{resource.name}"
        )
    path = Path(choice)
    if path.suffix == ".toml" or len(path.parts) > 1:
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise SuiteError(
                f"suite file {path}: no such file; pass a shipped suite name or a path"
            )
        return read_suite(path.read_bytes(), str(path))
    raise SuiteError(
        f"unknown suite {choice!r}; shipped suites: {', '.join(shipped) or 'none'} "
        "(--parity-suites lists them), or pass a path to a suite .toml file"
    )


def read_suite(data: bytes, source: str) -> Suite:
    """Parse and validate one suite document; errors name ``source``."""
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SuiteError(f"{source}: not valid TOML ({error}); fix the syntax") from None
    header = document.get(SUITE_SECTION)
    if not isinstance(header, Mapping):
        raise SuiteError(f"{source}: a suite needs a [suite] table with {', '.join(HEADER_KEYS)}")
    missing = [key for key in HEADER_KEYS if key not in header]
    if missing:
        raise SuiteError(f"{source}: [suite] lacks {', '.join(missing)}")
    try:
        # The whole document must be a valid config on its own, and its [suite] too.
        parsed = parse_config(document, source)
        options = parse_suite_options(parsed.section(SUITE_SECTION), f"{source} [suite]")
    except ConfigError as error:
        raise SuiteError(str(error)) from None
    assert options.name is not None
    return Suite(
        name=options.name,
        description=options.description,
        checks=options.checks,
        example=options.example or f"pytest --onnx-dir out/ --parity-suite {options.name}",
        source=source,
        table=document,
    )


def parse_suite_options(
    raw: Mapping[str, Any], where: str, base_dir: Path | None = None
) -> SuiteOptions:
    """Validate a merged ``[suite]`` section (a suite's, extended by the user's config)."""
    from pytest_onnxparity.compare.pooling import parse_pooled_options
    from pytest_onnxparity.speech.streaming.config import parse_streaming_options

    check_keys(raw, SUITE_KEYS, where)
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(f"{where}: name must be a non-empty string, got {name!r}")
    for key in ("description", "example"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {raw[key]!r}")
    checks = raw.get("checks", [])
    if not isinstance(checks, list) or not all(isinstance(item, str) for item in checks):
        raise ConfigError(f"{where}: checks must be a list of strings, got {checks!r}")
    sequence = raw.get("sequence", {})
    if sequence:
        from pytest_onnxparity.speech.sequence.config import parse_sequence_options

        # Checked now for its keys and values; it becomes part of [sequence] only when clips
        # are given (see with_sequence_defaults).
        parse_sequence_options(sequence, f"{where} sequence")
    batch = raw.get("batch")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(f"{where}: batch must be an integer >= 1, got {batch!r}")
    return SuiteOptions(
        name=name,
        description=raw.get("description", ""),
        checks=tuple(checks),
        example=raw.get("example"),
        batch=batch,
        inputs=_input_rules(raw.get("inputs", {}), where),
        pooled=None
        if "pooled" not in raw
        else parse_pooled_options(raw["pooled"], f"{where} pooled"),
        streaming=None
        if "streaming" not in raw
        else parse_streaming_options(raw["streaming"], f"{where} streaming", base_dir),
        sequence=dict(sequence),
    )


def _input_rules(raw: Any, where: str) -> dict[str, InputRule]:
    """Rules keyed by input name, validated by the config's own graph-input parser."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where} inputs: expected a table of INPUT = {{ range/value/tie }}, got {raw!r}"
        )
    try:
        parsed = parse_config({"graphs": {"*": {"inputs": dict(raw)}}}, where)
    except ConfigError as error:
        raise ConfigError(str(error).replace(" [graphs.*]", "")) from None
    return dict(parsed.graph("*").inputs)


# --------------------------------------------------------------------------------------------
# Fitting the suite to an export folder
# --------------------------------------------------------------------------------------------


def fit_to_graphs(
    config: ParityConfig,
    options: SuiteOptions,
    signatures: Mapping[str, Sequence[TensorSpec]],
) -> ParityConfig:
    """The config with the suite's input rules and batch size applied to each graph.

    ``signatures`` maps each graph to its reference's inputs. A rule applies to the graphs that
    have an input of its name, under the graph's own ``[graphs.<graph>.inputs]``; ``batch``
    sizes every named dim found on axis 0 of an input, under the config's own ``dims``.
    """
    if not options.inputs and options.batch is None:
        return config
    graphs = dict(config.graphs)
    dims: dict[str, int] = {}
    for graph, inputs in signatures.items():
        names = {spec.name for spec in inputs}
        rules = {name: rule for name, rule in options.inputs.items() if name in names}
        if rules:
            own = config.graph(graph)
            graphs[graph] = replace(own, inputs={**rules, **own.inputs})
        if options.batch is not None:
            for spec in inputs:
                if spec.shape and isinstance(spec.shape[0], str):
                    dims.setdefault(spec.shape[0], options.batch)
    return replace(config, graphs=graphs, dims={**dims, **config.dims})


def with_sequence_defaults(
    config: ParityConfig, options: SuiteOptions, clips_given: bool
) -> ParityConfig:
    """The config with the suite's sequence gate defaults under the user's ``[sequence]``.

    Sequence gates need clips and a pipeline adapter, which a suite cannot bring: its defaults
    join the config only when the user asks for sequence gates (a ``[sequence]`` table, or
    ``clips_given`` on the command line), and the user's keys win over them.
    """
    user = config.sections.get("sequence")
    if not options.sequence or (user is None and not clips_given):
        return config
    merged = {**options.sequence, **(user or {})}
    return replace(config, sections={**config.sections, "sequence": merged})


# --------------------------------------------------------------------------------------------
# Explaining a suite
# --------------------------------------------------------------------------------------------


def describe_suite(suite: Suite) -> list[str]:
    """Lines for ``--parity-suites``: what the suite is for, what it checks, its limits."""
    options = parse_suite_options(suite.table.get(SUITE_SECTION, {}), suite.source)
    lines = [f"{suite.name}: {suite.description}", f"  file: {suite.source}"]
    lines.append("  checks:")
    lines.extend(f"    - {check}" for check in suite.checks)
    lines.append("  tolerances per tier:")
    lines.extend(f"    {line}" for line in tolerance_lines(suite.table, options))
    if options.sequence:
        gates = ", ".join(
            f"{key} = {str(value).lower() if isinstance(value, bool) else value}"
            for key, value in options.sequence.items()
        )
        lines.append(f"  sequence gates (with clips and an adapter): {gates}")
    lines.append(f"  example: {suite.example}")
    return lines


def tolerance_lines(table: Mapping[str, Any], options: SuiteOptions) -> list[str]:
    """One line per tier: the outputs' limits, then pooled and streaming limits."""
    from pytest_onnxparity.config.tolerances import TIERS, resolve

    parsed = parse_config(table, "suite")
    lines = []
    # A streamed graph's one-shot parity tests are deselected unless one_shot is set.
    one_shot = options.streaming is None or options.streaming.one_shot
    for tier in TIERS:
        parts = []
        if one_shot:
            limits = resolve(tier, [parsed.tolerance, parsed.tiers.get(tier, {})])
            parts.append(f"outputs: {_limits_text(limits)}")
        if options.pooled is not None:
            parts.append(f"pooled: {_limits_text(options.pooled.tolerance(tier))}")
        if options.streaming is not None:
            stream = _limits_text(options.streaming.tolerance(tier))
            decision = options.streaming.decision_limits.get(tier)
            if decision is not None:
                stream += f", decisions >= {decision:g}"
            parts.append(f"per chunk: {stream}")
        lines.append(f"{tier:<5} " + "; ".join(parts))
    return lines


def _limits_text(tolerance: Any) -> str:
    limits = tolerance.limits()
    if not limits:
        return "(none)"
    parts = []
    for key, value in limits.items():
        relation = ">=" if key.startswith("min_") else "<="
        label = key.removeprefix("min_")
        if key == "min_topk_overlap":
            label = f"top{tolerance.topk}_overlap"
        parts.append(f"{label} {relation} {value:g}")
    return ", ".join(parts)
