"""The ``[tool.onnxparity]`` / ``parity.toml`` configuration: read, validate, and merge.

Every table has a fixed set of keys; an unknown key is an error naming the file, the key and
the allowed keys. Both files may exist: the export folder's ``parity.toml`` wins key by key
over the project's ``pyproject.toml``, so a shipped folder can carry its own tolerances; both
win over a ready-made suite (``--parity-suite``), which is read in the same schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.tables import (
    FLOAT_RANGE_LIMIT,
    ConfigError,
    check_keys,
    deep_merge,
    int_mapping,
    int_range,
    optional_int,
    optional_range,
    read_toml_table,
    string_list,
    sub_table,
)
from pytest_onnxparity.config.tolerances import (
    TIERS,
    TOLERANCE_KEYS,
    ToleranceError,
    ToleranceLayer,
    validate_layer,
)

FOLDER_CONFIG_NAME = "parity.toml"


# Tables owned by feature modules, which validate their own keys (``parse_*_options``).
FEATURE_SECTIONS = (
    "health",
    "weights",
    "speed",
    "size",
    "sequence",
    "localize",
    "references",
    "suite",
)


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
    "require_variants",
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
    "run_timeout",
)


GRAPH_KEYS = ("reference", "inputs", "tolerance", "variants", "outputs", "skip_outputs")


VARIANT_KEYS = ("tolerance", "outputs", "input_sets")


# ``[graphs.G.variants.V.input_sets.S]``: limits for one input set of a variant (what
# ``--parity-suggest`` writes, real and synthesized sets apart).
INPUT_SET_KEYS = ("tolerance", "outputs")


INPUT_KEYS = ("range", "tie", "value")


FILE_KEYS = ("graph", "variant", "tier")


GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")


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
    input_sets: Mapping[str, VariantConfig] = field(default_factory=dict)


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
    run_timeout: float | None = None
    """Seconds one inference may run before it is stopped and its test fails."""


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
    require_variants: bool = False
    """A graph without a variant to compare fails instead of only being loaded."""
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
        self, tier: str, graph: str, variant: str, output: str, input_set: str | None = None
    ) -> list[ToleranceLayer]:
        """Config layers for one output (on one input set), weakest first."""
        graph_config = self.graph(graph)
        variant_config = graph_config.variants.get(variant, VariantConfig())
        layers = [
            self.tolerance,
            self.tiers.get(tier, {}),
            graph_config.tolerance,
            graph_config.outputs.get(output, {}),
            variant_config.tolerance,
            variant_config.outputs.get(output, {}),
        ]
        set_config = variant_config.input_sets.get(input_set) if input_set else None
        if set_config is not None:
            layers += [set_config.tolerance, set_config.outputs.get(output, {})]
        return layers


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
        merged = deep_merge(merged, base)
        sources.append(base_source)
    if pyproject is not None:
        table = read_toml_table(pyproject, ("tool", "onnxparity"))
        if table is not None:
            check_keys(table, GLOBAL_KEYS, f"{pyproject} [tool.onnxparity]")
            merged = deep_merge(merged, table)
            sources.append(f"{pyproject} [tool.onnxparity]")
    if export_dir is not None:
        folder_file = export_dir / FOLDER_CONFIG_NAME
        table = read_toml_table(folder_file)
        if table is not None:
            check_keys(table, GLOBAL_KEYS, str(folder_file))
            merged = deep_merge(merged, table)
            sources.append(str(folder_file))
    return parse_config(merged, " + ".join(sources) or "<defaults>", tuple(sources))


def parse_config(raw: Mapping[str, Any], where: str, sources: tuple[str, ...] = ()) -> ParityConfig:
    """Validate a merged config mapping; ``where`` names its source in errors."""
    check_keys(raw, GLOBAL_KEYS, where)
    try:
        return ParityConfig(
            sources=sources,
            seed=optional_int(raw, "seed", where),
            float_range=optional_range(raw, "float_range", where),
            int_range=int_range(raw, where),
            dims=int_mapping(raw.get("dims", {}), f"{where} dims", minimum=1),
            default_dim=optional_int(raw, "default_dim", where, minimum=1),
            sweep=_sweep(raw.get("sweep", {}), f"{where} sweep"),
            tolerance=validate_layer(sub_table(raw, "tolerance", where), f"{where} [tolerance]"),
            tiers=_tiers(sub_table(raw, "tiers", where), where),
            graphs={
                name: _graph(value, f"{where} [graphs.{name}]")
                for name, value in sub_table(raw, "graphs", where).items()
            },
            files=_files(sub_table(raw, "files", where), where),
            tags=_tags(sub_table(raw, "tags", where), where),
            exclude=tuple(string_list(raw.get("exclude", []), f"{where} exclude")),
            require_variants=_flag(raw, "require_variants", where),
            session=_session(sub_table(raw, "session", where), f"{where} [session]"),
            sections={
                name: sub_table(raw, name, where) for name in FEATURE_SECTIONS if name in raw
            },
        )
    except ToleranceError as error:
        raise ConfigError(str(error)) from None


def _flag(raw: Mapping[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
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
        input_sets = {}
        for name, table in sub_table(value, "input_sets", variant_where).items():
            set_where = f"{variant_where} [input_sets.{name}]"
            check_keys(table, INPUT_SET_KEYS, set_where)
            input_sets[name] = VariantConfig(
                tolerance=_tolerance_table(sub_table(table, "tolerance", set_where), set_where),
                outputs=_output_layers(sub_table(table, "outputs", set_where), set_where),
            )
        variants[tag] = VariantConfig(
            tolerance=_tolerance_table(sub_table(value, "tolerance", variant_where), variant_where),
            outputs=_output_layers(sub_table(value, "outputs", variant_where), variant_where),
            input_sets=input_sets,
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
        skip_outputs=tuple(string_list(raw.get("skip_outputs", []), f"{where} skip_outputs")),
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
    if value is not None and not abs(value) <= FLOAT_RANGE_LIMIT:
        raise ConfigError(
            f"{where}: value must be finite and within ±{FLOAT_RANGE_LIMIT:g}, got {value!r}"
        )
    return InputRule(range=optional_range(raw, "range", where), tie=tie, value=value)


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
    timeout = raw.get("run_timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < float("inf")
    ):
        raise ConfigError(f"{where}: run_timeout must be a number of seconds > 0, got {timeout!r}")
    return SessionConfig(
        providers=None
        if providers is None
        else tuple(string_list(providers, f"{where} providers")),
        intra_op_threads=optional_int(raw, "intra_op_threads", where, minimum=0),
        inter_op_threads=optional_int(raw, "inter_op_threads", where, minimum=0),
        graph_optimization_level=level,
        deterministic=raw.get("deterministic"),
        allow_spinning=raw.get("allow_spinning"),
        run_timeout=None if timeout is None else float(timeout),
    )


def _sweep(raw: Any, where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table of NAME = [sizes], got {raw!r}")
    sweep = {}
    for name, values in raw.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {name} must be a non-empty list of sizes, got {values!r}")
        sweep[name] = tuple(int_mapping({name: v}, where, minimum=1)[name] for v in values)
    return sweep
