"""The ``[sequence]`` config table: gates, clip source, variant sets, overrides, normalisation.

Validated once into a frozen :class:`SequenceOptions`; every error is a
:class:`~pytest_onnxparity.config.tables.ConfigError` naming the table, the key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pytest_onnxparity.config.tables import ConfigError, check_keys, sub_table
from pytest_onnxparity.speech.audio.source import SOURCE_KEYS, ClipSource, parse_clip_source
from pytest_onnxparity.speech.sequence.gates import RATE_GATES, SequenceGates
from pytest_onnxparity.speech.sequence.pipeline import REFERENCE_TAG
from pytest_onnxparity.speech.transcripts import TextNormalization, parse_normalization

GATE_KEYS = tuple(item.name for item in fields(SequenceGates))
SEQUENCE_KEYS = (
    *GATE_KEYS,
    *SOURCE_KEYS,
    "graphs",
    "variant_sets",
    "overrides",
    "normalization",
    "reference_gates",
)


@dataclass(frozen=True)
class SequenceOptions:
    """The validated ``[sequence]`` table.

    ``variant_sets`` maps a set name to the variant tag of each graph role (``"fp32"`` is the
    graph's reference; a role a set leaves out uses its reference), or to one tag for every role
    when ``graphs`` is not listed (the adapter's ``graphs`` name the roles then). Without any
    set, each tag that every graph has is a set (``sequence_run.resolve_variant_sets``).
    ``overrides`` holds per-set gate limits over ``gates``. ``reference_gates`` are the fp32
    ONNX set's limits against the upstream (PyTorch) pipeline, when a conftest gives one
    (``pytest_onnxparity_reference_pipeline``): identical tokens unless the table relaxes them.
    """

    gates: SequenceGates = field(default_factory=SequenceGates)
    normalization: TextNormalization = field(default_factory=TextNormalization)
    source: ClipSource | None = None
    graphs: tuple[str, ...] = ()
    variant_sets: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)
    overrides: Mapping[str, SequenceGates] = field(default_factory=dict)
    reference_gates: SequenceGates = field(default_factory=SequenceGates)

    def gates_for(self, variant_set: str) -> SequenceGates:
        """The gates of ``variant_set``: its override if it has one, else the table's."""
        return self.overrides.get(variant_set, self.gates)

    def to_json(self) -> dict[str, Any]:
        return {
            "gates": self.gates.to_json(),
            "normalization": self.normalization.to_json(),
            "source": None if self.source is None else self.source.to_json(),
            "graphs": list(self.graphs),
            "variant_sets": {
                name: roles if isinstance(roles, str) else dict(roles)
                for name, roles in self.variant_sets.items()
            },
            "overrides": {name: gates.to_json() for name, gates in self.overrides.items()},
            "reference_gates": self.reference_gates.to_json(),
        }


def parse_sequence_options(raw: Mapping[str, Any], where: str) -> SequenceOptions:
    """Validate the raw ``[sequence]`` table; ``where`` names it in errors (file and table).

    Example::

        [tool.onnxparity.sequence]
        clips_dir = "tests/data/clips"      # or dataset = "openslr/librispeech_asr", ...
        limit = 20
        sample_rate = 16000
        graphs = ["encoder", "decoder_init", "decoder_step"]
        variant_sets = { int8 = "int8", mixed = { decoder_init = "int4", decoder_step = "int4" } }
        require_token_equality = false
        max_forced_argmax_mismatches = 2
        max_wer = 0.02
        normalization = { remove = ["<unk>"] }
        overrides = { mixed = { max_wer = 0.05 } }
        reference_gates = { require_token_equality = true }   # fp32 ONNX vs PyTorch

    A variant set given as one tag (``int8 = "int8"``) uses that tag for every graph of the
    pipeline (``graphs``, or the adapter's ``graphs`` attribute).
    """
    check_keys(raw, SEQUENCE_KEYS, where)
    gates = _gates(raw, where)
    graphs = tuple(_string_list(raw.get("graphs", []), f"{where}: graphs"))
    variant_sets = _variant_sets(sub_table(raw, "variant_sets", where), graphs, where)
    overrides = {}
    for name, table_value in sub_table(raw, "overrides", where).items():
        override_where = f"{where} overrides.{name}"
        # Without variant_sets the sets are the folder's tags, known only once it is
        # discovered: the names are checked then (``sequence_run.resolve_variant_sets``).
        if variant_sets and name not in variant_sets:
            raise ConfigError(
                f"{override_where}: no variant set {name!r}; define it in variant_sets "
                f"(defined: {', '.join(variant_sets) or 'none'})"
            )
        check_keys(table_value, GATE_KEYS, override_where)
        overrides[name] = _gates({**gates.to_json(), **table_value}, override_where)
    reference_where = f"{where} reference_gates"
    reference_table = sub_table(raw, "reference_gates", where)
    check_keys(reference_table, GATE_KEYS, reference_where)
    return SequenceOptions(
        gates=gates,
        reference_gates=_gates(reference_table, reference_where),
        normalization=parse_normalization(
            sub_table(raw, "normalization", where), f"{where} normalization"
        ),
        source=parse_clip_source({key: raw[key] for key in SOURCE_KEYS if key in raw}, where),
        graphs=graphs,
        variant_sets=variant_sets,
        overrides=overrides,
    )


def _gates(raw: Mapping[str, Any], where: str) -> SequenceGates:
    values: dict[str, Any] = {}
    for item in fields(SequenceGates):
        if item.name not in raw or raw[item.name] is None:
            continue
        value = raw[item.name]
        if item.name.startswith("require_"):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {item.name} must be true or false, got {value!r}")
        elif item.name in RATE_GATES:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}: {item.name} must be a number >= 0, got {value!r}")
            value = float(value)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: {item.name} must be an integer >= 0, got {value!r}")
        values[item.name] = value
    return SequenceGates(**values)


def _variant_sets(
    raw: Mapping[str, Any], graphs: tuple[str, ...], where: str
) -> dict[str, str | dict[str, str]]:
    sets: dict[str, str | dict[str, str]] = {}
    for name, value in raw.items():
        set_where = f"{where} variant_sets.{name}"
        if isinstance(value, str) and value:
            # One tag for every graph; expanded here when graphs are listed, else once the
            # pipeline's graphs are known (the adapter's ``graphs``).
            sets[name] = dict.fromkeys(graphs, value) if graphs else value
            continue
        if not isinstance(value, Mapping) or not all(
            isinstance(tag, str) and tag for tag in value.values()
        ):
            raise ConfigError(
                f"{set_where}: expected a tag string or a table of graph = tag, got {value!r}"
            )
        if graphs:
            check_keys(value, graphs, set_where)
            # A role a set leaves out keeps its reference graph (mixed sets name only what
            # they change).
            sets[name] = {role: value.get(role, REFERENCE_TAG) for role in graphs}
        else:
            sets[name] = dict(value)
    return sets


def _string_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise ConfigError(f"{where} must be a list of non-empty strings, got {raw!r}")
    return list(raw)
