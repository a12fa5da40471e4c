"""The ``[tool.onnxparity]`` / ``parity.toml`` configuration: read, validate, and merge.

Every table has a fixed set of keys; an unknown key is an error naming the file, the key and
the allowed keys. Both files may exist: the export folder's ``parity.toml`` wins key by key
over the project's ``pyproject.toml``, so a shipped folder can carry its own tolerances; both
win over a ready-made suite (``--parity-suite``), which is read in the same schema.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.tolerances import (
    TIERS,
    TOLERANCE_KEYS,
    ToleranceError,
    ToleranceLayer,
    validate_layer,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FOLDER_CONFIG_NAME = "parity.toml"

# Tables owned by feature modules, which validate their own keys (``parse_*_options``).
FEATURE_SECTIONS = ("health", "speed", "size", "sequence", "localize", "references", "suite")
GLOBAL_KEYS = (
    "seed",
    "float_range",
    "int_range",
    "dims",
    "default_dim",
    "sweep",
    "tolerance",
    "tiers",
    "graphs",
    "files",
    "tags",
    "exclude",
    "session",
    *FEATURE_SECTIONS,
)
SESSION_KEYS = (
    "providers",
    "intra_op_threads",
    "inter_op_threads",
    "graph_optimization_level",
    "deterministic",
    "allow_spinning",
)
GRAPH_KEYS = ("reference", "inputs", "tolerance", "variants", "outputs", "skip_outputs")
VARIANT_KEYS = ("tolerance", "outputs")
INPUT_KEYS = ("range", "tie", "value")
FILE_KEYS = ("graph", "variant", "tier")
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class InputRule:
    """How to fill one graph input: a value range, a tie to another input's axis, or a constant."""

    range: tuple[float, float] | None = None
    tie: tuple[str, int] | None = None
    value: float | None = None


@dataclass(frozen=True)
class VariantConfig:
    tolerance: ToleranceLayer = field(default_factory=dict)
    outputs: Mapping[str, ToleranceLayer] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphConfig:
    reference: str | None = None
    inputs: Mapping[str, InputRule] = field(default_factory=dict)
    tolerance: ToleranceLayer = field(default_factory=dict)
    variants: Mapping[str, VariantConfig] = field(default_factory=dict)
    outputs: Mapping[str, ToleranceLayer] = field(default_factory=dict)
    skip_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionConfig:
    providers: tuple[str, ...] | None = None
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    graph_optimization_level: str | None = None
    deterministic: bool | None = None
    allow_spinning: bool | None = None


@dataclass(frozen=True)
class ParityConfig:
    """Everything a config file can say, validated. Defaults hold when no file exists."""

    sources: tuple[str, ...] = ()
    seed: int | None = None
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    dims: Mapping[str, int] = field(default_factory=dict)
    default_dim: int | None = None
    sweep: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    tolerance: ToleranceLayer = field(default_factory=dict)
    tiers: Mapping[str, ToleranceLayer] = field(default_factory=dict)
    graphs: Mapping[str, GraphConfig] = field(default_factory=dict)
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    session: SessionConfig = field(default_factory=SessionConfig)
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        """The raw table of a feature section (validated by that feature's module)."""
        if name not in FEATURE_SECTIONS:
            raise KeyError(f"{name!r} is not a feature section: {FEATURE_SECTIONS}")
        return self.sections.get(name, {})

    def graph(self, name: str) -> GraphConfig:
        return self.graphs.get(name, GraphConfig())

    def tolerance_layers(
        self, tier: str, graph: str, variant: str, output: str
    ) -> list[ToleranceLayer]:
        """Config layers for one output, weakest first."""
        graph_config = self.graph(graph)
        variant_config = graph_config.variants.get(variant, VariantConfig())
        return [
            self.tolerance,
            self.tiers.get(tier, {}),
            graph_config.tolerance,
            graph_config.outputs.get(output, {}),
            variant_config.tolerance,
            variant_config.outputs.get(output, {}),
        ]


def read_toml_table(path: Path, table: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The table at ``table`` in the TOML file, or None when the file or table is absent."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}); fix the syntax") from None
    node: Any = document
    for key in table:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def load_config(
    pyproject: Path | None,
    export_dir: Path | None,
    *,
    base: Mapping[str, Any] | None = None,
    base_source: str = "<base>",
) -> ParityConfig:
    """Read ``[tool.onnxparity]`` from ``pyproject`` and ``parity.toml`` from ``export_dir``.

    ``base`` is a table in the same schema that both files extend and override key by key (a
    ready-made suite); ``base_source`` names it in errors and in :attr:`ParityConfig.sources`.
    """
    merged: dict[str, Any] = {}
    sources = []
    if base is not None:
        check_keys(base, GLOBAL_KEYS, base_source)
        merged = _deep_merge(merged, base)
        sources.append(base_source)
    if pyproject is not None:
        table = read_toml_table(pyproject, ("tool", "onnxparity"))
        if table is not None:
            check_keys(table, GLOBAL_KEYS, f"{pyproject} [tool.onnxparity]")
            merged = _deep_merge(merged, table)
            sources.append(f"{pyproject} [tool.onnxparity]")
    if export_dir is not None:
        folder_file = export_dir / FOLDER_CONFIG_NAME
        table = read_toml_table(folder_file)
        if table is not None:
            check_keys(table, GLOBAL_KEYS, str(folder_file))
            merged = _deep_merge(merged, table)
            sources.append(str(folder_file))
    return parse_config(merged, " + ".join(sources) or "<defaults>", tuple(sources))


def parse_config(raw: Mapping[str, Any], where: str, sources: tuple[str, ...] = ()) -> ParityConfig:
    """Validate a merged config mapping; ``where`` names its source in errors."""
    check_keys(raw, GLOBAL_KEYS, where)
    try:
        return ParityConfig(
            sources=sources,
            seed=_optional_int(raw, "seed", where),
            float_range=_optional_range(raw, "float_range", where),
            int_range=_int_range(raw, where),
            dims=_int_mapping(raw.get("dims", {}), f"{where} dims", minimum=1),
            default_dim=_optional_int(raw, "default_dim", where, minimum=1),
            sweep=_sweep(raw.get("sweep", {}), f"{where} sweep"),
            tolerance=validate_layer(sub_table(raw, "tolerance", where), f"{where} [tolerance]"),
            tiers=_tiers(sub_table(raw, "tiers", where), where),
            graphs={
                name: _graph(value, f"{where} [graphs.{name}]")
                for name, value in sub_table(raw, "graphs", where).items()
            },
            files=_files(sub_table(raw, "files", where), where),
            tags=_tags(sub_table(raw, "tags", where), where),
            exclude=tuple(_string_list(raw.get("exclude", []), f"{where} exclude")),
            session=_session(sub_table(raw, "session", where), f"{where} [session]"),
            sections={
                name: sub_table(raw, name, where) for name in FEATURE_SECTIONS if name in raw
            },
        )
    except ToleranceError as error:
        raise ConfigError(str(error)) from None


def section_where(sources: Sequence[str], section: str) -> str:
    """How errors name a feature table in each config file it may come from."""
    names = [
        source.replace("[tool.onnxparity]", f"[tool.onnxparity.{section}]")
        if source.endswith("[tool.onnxparity]")
        else f"{source} [{section}]"
        for source in sources
    ]
    return " + ".join(names) or f"[tool.onnxparity.{section}]"


def check_keys(table: Any, allowed: Sequence[str], where: str) -> None:
    """Every config table's key check: a table whose keys are all in ``allowed``.

    Raises ConfigError naming ``where`` (the file and table), the key and the allowed keys.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")


def sub_table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """``raw[key]`` when it is a table, ``{}`` when absent; ConfigError for anything else."""
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key} must be a table, got {value!r}")
    return value


def _tolerance_table(raw: Mapping[str, Any], where: str) -> ToleranceLayer:
    check_keys(raw, TOLERANCE_KEYS, where)
    return validate_layer(raw, where)


def _tiers(raw: Mapping[str, Any], where: str) -> dict[str, ToleranceLayer]:
    check_keys(raw, TIERS, f"{where} [tiers]")
    return {tier: _tolerance_table(value, f"{where} [tiers.{tier}]") for tier, value in raw.items()}


def _graph(raw: Any, where: str) -> GraphConfig:
    check_keys(raw, GRAPH_KEYS, where)
    reference = raw.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ConfigError(f"{where}: reference must be a variant tag string, got {reference!r}")
    variants = {}
    for tag, value in sub_table(raw, "variants", where).items():
        variant_where = f"{where} [variants.{tag}]"
        check_keys(value, VARIANT_KEYS, variant_where)
        variants[tag] = VariantConfig(
            tolerance=_tolerance_table(sub_table(value, "tolerance", variant_where), variant_where),
            outputs=_output_layers(sub_table(value, "outputs", variant_where), variant_where),
        )
    return GraphConfig(
        reference=reference,
        inputs={
            name: _input_rule(value, f"{where} [inputs.{name}]")
            for name, value in sub_table(raw, "inputs", where).items()
        },
        tolerance=_tolerance_table(sub_table(raw, "tolerance", where), f"{where} [tolerance]"),
        variants=variants,
        outputs=_output_layers(sub_table(raw, "outputs", where), where),
        skip_outputs=tuple(_string_list(raw.get("skip_outputs", []), f"{where} skip_outputs")),
    )


def _output_layers(raw: Mapping[str, Any], where: str) -> dict[str, ToleranceLayer]:
    return {
        name: _tolerance_table(value, f"{where} [outputs.{name}]") for name, value in raw.items()
    }


def _input_rule(raw: Any, where: str) -> InputRule:
    check_keys(raw, INPUT_KEYS, where)
    tie = None
    if "tie" in raw:
        text = raw["tie"]
        name, _, axis = str(text).rpartition(":")
        if not name or not axis.lstrip("-").isdigit():
            raise ConfigError(
                f"{where}: tie must be 'INPUT:AXIS' (e.g. 'features:1'), got {text!r}"
            )
        tie = (name, int(axis))
    value = raw.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}: value must be a number, got {value!r}")
    return InputRule(range=_optional_range(raw, "range", where), tie=tie, value=value)


def _files(raw: Mapping[str, Any], where: str) -> dict[str, dict[str, str]]:
    files = {}
    for path, value in raw.items():
        file_where = f'{where} [files."{path}"]'
        check_keys(value, FILE_KEYS, file_where)
        files[path] = {key: str(item) for key, item in value.items()}
        tier = files[path].get("tier")
        if tier is not None and tier not in TIERS:
            raise ConfigError(f"{file_where}: unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
    return files


def _tags(raw: Mapping[str, Any], where: str) -> dict[str, str]:
    for tag, tier in raw.items():
        if tier not in TIERS:
            raise ConfigError(
                f"{where} [tags]: tag {tag!r} maps to unknown tier {tier!r}; "
                f"allowed: {', '.join(TIERS)}"
            )
    return dict(raw)


def _session(raw: Mapping[str, Any], where: str) -> SessionConfig:
    check_keys(raw, SESSION_KEYS, where)
    level = raw.get("graph_optimization_level")
    if level is not None and level not in GRAPH_OPT_LEVELS:
        raise ConfigError(
            f"{where}: graph_optimization_level {level!r} is not one of "
            f"{', '.join(GRAPH_OPT_LEVELS)}"
        )
    for key in ("deterministic", "allow_spinning"):
        if raw.get(key) is not None and not isinstance(raw[key], bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {raw[key]!r}")
    providers = raw.get("providers")
    return SessionConfig(
        providers=None
        if providers is None
        else tuple(_string_list(providers, f"{where} providers")),
        intra_op_threads=_optional_int(raw, "intra_op_threads", where, minimum=0),
        inter_op_threads=_optional_int(raw, "inter_op_threads", where, minimum=0),
        graph_optimization_level=level,
        deterministic=raw.get("deterministic"),
        allow_spinning=raw.get("allow_spinning"),
    )


def _optional_int(
    raw: Mapping[str, Any], key: str, where: str, minimum: int | None = None
) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: {key} must be >= {minimum}, got {value}")
    return value


def _optional_range(raw: Mapping[str, Any], key: str, where: str) -> tuple[float, float] | None:
    value = raw.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or value[0] > value[1]
    ):
        raise ConfigError(f"{where}: {key} must be [low, high] with low <= high, got {value!r}")
    return (value[0], value[1])


def _int_range(raw: Mapping[str, Any], where: str) -> tuple[int, int] | None:
    value = _optional_range(raw, "int_range", where)
    if value is None:
        return None
    if not all(isinstance(v, int) for v in value):
        raise ConfigError(f"{where}: int_range must hold integers, got {list(value)!r}")
    return (int(value[0]), int(value[1]))


def _int_mapping(raw: Any, where: str, minimum: int) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table of NAME = INTEGER, got {raw!r}")
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return dict(raw)


def _sweep(raw: Any, where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table of NAME = [sizes], got {raw!r}")
    sweep = {}
    for name, values in raw.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {name} must be a non-empty list of sizes, got {values!r}")
        sweep[name] = tuple(_int_mapping({name: v}, where, minimum=1)[name] for v in values)
    return sweep


def _string_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError(f"{where}: expected a list of strings, got {raw!r}")
    return raw


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
