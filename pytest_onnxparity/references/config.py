"""The ``[references]`` config table and the run's reference settings, validated once.

Each key of the table is a graph name whose table says what that graph's variants are compared
with (see :mod:`pytest_onnxparity.references.base` for the kinds); the reserved key ``inputs_from``
lists graphs whose inputs come from an upstream graph. Tables come from the project's
``pyproject.toml`` and from the export folder's ``parity.toml``: the folder's table of a graph
replaces the project's whole (keys of one kind never leak into another), and paths are resolved
against the folder of the file that names them. :class:`ReferenceSettings` adds the command
line (``--parity-reference-dir``, ``--parity-recorded``, ``--parity-allow-pickle``), which wins
over both."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pytest_onnxparity.config.project import GRAPH_OPT_LEVELS
from pytest_onnxparity.config.tables import ConfigError, check_keys

ReferenceKind = Literal[
    "onnx", "other-dir", "provider", "torchscript", "checkpoint", "module", "recorded"
]


REFERENCE_KINDS: tuple[str, ...] = get_args(ReferenceKind)


ONNX_KINDS = ("onnx", "other-dir", "provider")


CALLABLE_KINDS = ("torchscript", "checkpoint", "module")


REFERENCE_KEYS = (
    "kind",
    "path",
    "inputs",
    "outputs",
    "submodule",
    "providers",
    "graph_optimization_level",
    "allow_pickle",
    "input_data",
    "synthesize",
)


# Keys that only mean something for some kinds; a key set for another kind is a config error.
KEY_KINDS: Mapping[str, tuple[str, ...]] = {
    "inputs": CALLABLE_KINDS,
    "outputs": CALLABLE_KINDS,
    "submodule": ("torchscript", "checkpoint"),
    "providers": ONNX_KINDS,
    "graph_optimization_level": ONNX_KINDS,
    "allow_pickle": ("checkpoint",),
}


INPUTS_FROM = "inputs_from"


INPUTS_FROM_KEYS = ("graph", "from", "map")


TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".jit", ".ptl", ".torchscript")


@dataclass(frozen=True)
class InputMapping:
    """How a callable reference lines up with the graph.

    ``arguments``: ONNX input names in call order (default: the graph's input order), or a
    mapping ``{parameter: onnx_input}`` to call by keyword. ``outputs``: the ONNX output name of
    each value of a tuple/list return, in order (default: the graph's output order; ``"_"``
    drops a value). A dict return is matched by key; a single tensor is the first output.
    """

    arguments: tuple[str, ...] | Mapping[str, str] | None = None
    outputs: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, object]:
        arguments: object = self.arguments
        if isinstance(self.arguments, tuple):
            arguments = list(self.arguments)
        elif self.arguments is not None:
            arguments = dict(self.arguments)
        return {
            "arguments": arguments,
            "outputs": None if self.outputs is None else list(self.outputs),
        }


@dataclass(frozen=True)
class UpstreamLink:
    """A downstream graph whose inputs come from running an upstream graph's reference.

    ``map``: ``{downstream_input: upstream_output_or_input}``. Unmapped downstream inputs take
    the upstream output, else the upstream input, of the same name.
    """

    graph: str
    upstream: str
    map: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"graph": self.graph, "from": self.upstream, "map": dict(self.map)}


@dataclass(frozen=True)
class ReferenceSpec:
    """What the config says one graph's reference is. ``path`` is resolved against the config
    file's folder; ``where`` names the config table for errors."""

    kind: ReferenceKind = "onnx"
    path: Path | None = None
    mapping: InputMapping = field(default_factory=InputMapping)
    submodule: str | None = None
    providers: tuple[str, ...] | None = None
    graph_optimization_level: str | None = None
    allow_pickle: bool = False
    input_data: tuple[Path, ...] = ()
    synthesize: bool = True
    inputs_from: UpstreamLink | None = None
    where: str = "<defaults>"

    @property
    def is_default_reference(self) -> bool:
        """The graph's own fp32 file under the run's session settings (input keys aside)."""
        return (
            self.kind == "onnx"
            and self.path is None
            and self.providers is None
            and self.graph_optimization_level is None
        )

    @property
    def label(self) -> str:
        """A short name for titles and the header: ``torchscript encoder.pt``, ``provider
        opt=disable``, ``recorded reference/encoder.npz``..."""
        parts: list[str] = [self.kind]
        if self.path is not None:
            parts.append(f"{self.path.parent.name}/{self.path.name}")
        if self.providers:
            parts.append("+".join(p.removesuffix("ExecutionProvider") for p in self.providers))
        if self.graph_optimization_level:
            parts.append(f"opt={self.graph_optimization_level}")
        if self.submodule:
            parts[-1] += f"::{self.submodule}"
        return " ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path": None if self.path is None else str(self.path),
            "mapping": self.mapping.to_json(),
            "submodule": self.submodule,
            "providers": None if self.providers is None else list(self.providers),
            "graph_optimization_level": self.graph_optimization_level,
            "allow_pickle": self.allow_pickle,
            "input_data": [str(path) for path in self.input_data],
            "synthesize": self.synthesize,
            "inputs_from": None if self.inputs_from is None else self.inputs_from.to_json(),
        }


def parse_reference_options(
    raw: Mapping[str, Any], where: str, base_dir: Path
) -> dict[str, ReferenceSpec]:
    """Validate the ``[references]`` table into one spec per graph.

    Each key is a graph name whose table may hold :data:`REFERENCE_KEYS`; the reserved key
    ``inputs_from`` holds a list of ``{graph, from, map}`` tables. A graph named only in
    ``inputs_from`` gets the default (``onnx``) reference. Relative paths are resolved against
    ``base_dir``.
    """
    return parse_reference_layers([(raw, where, base_dir)])


def parse_reference_layers(
    layers: Sequence[tuple[Mapping[str, Any], str, Path]],
) -> dict[str, ReferenceSpec]:
    """Validate several ``[references]`` tables, weakest first, each ``(raw, where, base_dir)``.

    A later table's graph replaces the earlier table of that graph whole, and a later
    ``inputs_from`` list replaces the earlier list.
    """
    specs: dict[str, ReferenceSpec] = {}
    links: list[UpstreamLink] = []
    links_where = ""
    for raw, where, base_dir in layers:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: [references] must be a table, got {raw!r}")
        for graph, table in raw.items():
            if graph != INPUTS_FROM:
                specs[graph] = _parse_spec(table, f"{where} [references.{graph}]", base_dir)
        if INPUTS_FROM in raw:
            links_where = f"{where} [[references.{INPUTS_FROM}]]"
            links = _parse_links(raw[INPUTS_FROM], links_where)
    for link in links:
        spec = specs.get(link.graph) or ReferenceSpec(where=links_where)
        specs[link.graph] = dataclasses.replace(spec, inputs_from=link)
    return specs


def refuse_folder_pickle(raw: Mapping[str, Any], where: str) -> None:
    """An export folder's own ``parity.toml`` cannot opt into unpickling: that would let a
    downloaded folder run its own code. The opt-in belongs to the user's project or command."""
    if not isinstance(raw, Mapping):
        return
    for graph, table in raw.items():
        if isinstance(table, Mapping) and table.get("allow_pickle") is True:
            raise ConfigError(
                f"{where} [references.{graph}]: allow_pickle is refused in an export folder's "
                "parity.toml (unpickling runs code shipped with the folder); if you trust the "
                "checkpoint, pass --parity-allow-pickle or set it in your pyproject.toml"
            )


def _parse_spec(raw: Any, where: str, base_dir: Path) -> ReferenceSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table of {', '.join(REFERENCE_KEYS)}, got {raw!r}")
    check_keys(raw, REFERENCE_KEYS, where)
    path = None
    if "path" in raw:
        path = base_dir / _string(raw["path"], "path", where)
    kind: ReferenceKind = raw.get("kind") or _kind_from_path(path, where)
    if kind not in REFERENCE_KINDS:
        raise ConfigError(
            f"{where}: kind {kind!r} is not one of {', '.join(REFERENCE_KINDS)}; fix kind"
        )
    for key, kinds in KEY_KINDS.items():
        if key in raw and kind not in kinds:
            raise ConfigError(
                f"{where}: {key} applies to kind {' / '.join(kinds)}, not {kind!r}; remove it"
            )
    if kind in ("torchscript", "checkpoint", "recorded") and path is None:
        raise ConfigError(f'{where}: kind {kind!r} needs path = "..."; add the file\'s path')
    if kind in ("module", "provider") and path is not None:
        raise ConfigError(f"{where}: kind {kind!r} takes no path; remove it")
    level = raw.get("graph_optimization_level")
    if level is not None and level not in GRAPH_OPT_LEVELS:
        raise ConfigError(
            f"{where}: graph_optimization_level {level!r} is not one of "
            f"{', '.join(GRAPH_OPT_LEVELS)}"
        )
    providers = raw.get("providers")
    if providers is not None:
        providers = tuple(_string_list(providers, "providers", where))
    if kind == "provider" and providers is None and level is None:
        raise ConfigError(
            f"{where}: kind 'provider' needs providers = [...] or graph_optimization_level; "
            "say which session settings the reference runs under"
        )
    input_data = raw.get("input_data", [])
    if isinstance(input_data, str):
        input_data = [input_data]
    return ReferenceSpec(
        kind=kind,
        path=path,
        mapping=InputMapping(
            arguments=_arguments(raw.get("inputs"), where),
            outputs=(
                None
                if raw.get("outputs") is None
                else tuple(_string_list(raw["outputs"], "outputs", where))
            ),
        ),
        submodule=None
        if raw.get("submodule") is None
        else _string(raw["submodule"], "submodule", where),
        providers=providers,
        graph_optimization_level=level,
        allow_pickle=_bool(raw, "allow_pickle", False, where),
        input_data=tuple(base_dir / p for p in _string_list(input_data, "input_data", where)),
        synthesize=_bool(raw, "synthesize", True, where),
        where=where,
    )


def _kind_from_path(path: Path | None, where: str) -> ReferenceKind:
    if path is None:
        return "onnx"
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix in (".npz", ""):
        return "recorded"
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    raise ConfigError(
        f"{where}: cannot tell the reference kind of {path.name}; "
        f"add kind = one of {', '.join(REFERENCE_KINDS)}"
    )


def _arguments(raw: Any, where: str) -> tuple[str, ...] | Mapping[str, str] | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        if not all(isinstance(value, str) for value in raw.values()):
            raise ConfigError(
                f'{where}: inputs as a table must map parameter = "onnx_input", got {raw!r}'
            )
        return dict(raw)
    return tuple(_string_list(raw, "inputs", where))


def _parse_links(raw: Any, where: str) -> list[UpstreamLink]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of {{graph, from, map}} tables, got {raw!r}")
    links: dict[str, UpstreamLink] = {}
    for index, item in enumerate(raw):
        item_where = f"{where} #{index + 1}"
        check_keys(item, INPUTS_FROM_KEYS, item_where)
        for key in ("graph", "from"):
            if key not in item:
                raise ConfigError(f'{item_where}: missing {key} = "<graph name>"; add it')
        graph = _string(item["graph"], "graph", item_where)
        upstream = _string(item["from"], "from", item_where)
        mapping = item.get("map", {})
        if not isinstance(mapping, Mapping) or not all(
            isinstance(v, str) for v in mapping.values()
        ):
            raise ConfigError(
                f'{item_where}: map must be a table of downstream_input = "upstream_output", '
                f"got {mapping!r}"
            )
        if graph == upstream:
            raise ConfigError(f"{item_where}: graph {graph!r} cannot feed itself; fix from")
        if graph in links:
            raise ConfigError(
                f"{item_where}: graph {graph!r} already takes inputs from "
                f"{links[graph].upstream!r}; keep one entry per graph"
            )
        links[graph] = UpstreamLink(graph=graph, upstream=upstream, map=dict(mapping))
    for graph in links:
        chain = [graph]
        while chain[-1] in links:
            chain.append(links[chain[-1]].upstream)
            if chain[-1] in chain[:-1]:
                raise ConfigError(
                    f"{where}: inputs_from forms a cycle ({' <- '.join(chain)}); break it"
                )
    return list(links.values())


def _string(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _optional_string(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if raw.get(key) is None else _string(raw[key], key, where)


def _string_list(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value
