"""What the health and coverage checks enforce, for each file: the ``[health]`` config table.

``[tool.onnxparity.health]`` (or ``[health]`` in the export folder's ``parity.toml``) holds the
check options (:data:`HEALTH_KEYS`) and the coverage gates
(:data:`pytest_onnxparity.diagnose.coverage.COVERAGE_KEYS`).
Two sub-tables override them key by key:

* ``[health.variants.<tag or tier>]`` for the files of one variant tag (``q4f16``) or tier
  (``int4``) — e.g. allow ``com.microsoft`` only where MatMulNBits is expected;
* ``[health.graphs.<graph>]`` for every file of one graph.

A file's options are the top table, then its tier's table, then its tag's, then its graph's; the
last one that sets a key wins. ``--parity-health-checks`` replaces ``checks`` everywhere.

The checks are opt-in: they run when the config has a health table (an empty one will do) or
``--parity-health-checks`` names some, so installing the plugin never changes a suite's tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_onnxparity.config.tables import ConfigError, check_keys
from pytest_onnxparity.diagnose.coverage import (
    COVERAGE_CHECK,
    COVERAGE_KEYS,
    CoverageOptions,
    parse_coverage_options,
)

HEALTH_CHECKS: tuple[str, ...] = (
    "checker",
    "opset",
    "domains",
    "initializers",
    "structure",
    "outputs",
)
"""The health checks, one test each per file of a graph."""

ALL_CHECKS: tuple[str, ...] = (*HEALTH_CHECKS, COVERAGE_CHECK)
"""Every check name ``checks`` and ``--parity-health-checks`` accept."""

HEALTH_KEYS = ("checks", "opset", "ir_version", "allowed_domains", "constant_output_ok")
"""The keys of ``[tool.onnxparity.health]`` that :func:`parse_health_options` reads."""

SCOPE_TABLES = ("variants", "graphs")
"""The sub-tables of ``[tool.onnxparity.health]`` that override it for some files."""

DEFAULT_DOMAIN = "ai.onnx"
CONFIG_TABLE = "[tool.onnxparity.health]"


@dataclass(frozen=True)
class HealthOptions:
    """What the health checks enforce. The defaults suit any model: every check runs, no opset,
    IR or domain constraint is enforced.

    ``checks`` names the checks that run (:data:`ALL_CHECKS`). ``opset`` and ``ir_version`` are
    inclusive ``(min, max)`` bounds on the ai.onnx opset and the IR version.
    ``allowed_domains`` lists operator domains (``"ai.onnx"`` or ``""`` for the default
    domain). ``constant_output_ok`` names outputs that may legitimately be constant; integer
    and bool outputs are never checked for constancy.
    """

    checks: tuple[str, ...] = ALL_CHECKS
    opset: tuple[int, int] | None = None
    ir_version: tuple[int, int] | None = None
    allowed_domains: tuple[str, ...] | None = None
    constant_output_ok: tuple[str, ...] = ()


def parse_health_options(raw: Mapping[str, Any], where: str) -> HealthOptions:
    """Validate one flat health table; ``where`` names its source in errors.

    ``opset`` and ``ir_version`` take ``[min, max]`` or one integer (exactly that version).
    The coverage keys are accepted here and validated by ``parse_coverage_options``.
    """
    check_keys(raw, (*HEALTH_KEYS, *COVERAGE_KEYS), where)
    checks = _string_tuple(raw, "checks", where, ALL_CHECKS)
    unknown = [check for check in checks if check not in ALL_CHECKS]
    if unknown:
        raise ConfigError(
            f"{where}: checks names unknown check {unknown[0]!r}; choose from "
            f"{', '.join(ALL_CHECKS)}"
        )
    domains = None
    if raw.get("allowed_domains") is not None:
        domains = tuple(domain(d) for d in _string_tuple(raw, "allowed_domains", where, ()))
        if not domains:
            raise ConfigError(
                f"{where}: allowed_domains is empty, which no graph can meet; list domains "
                f'(e.g. ["ai.onnx"]) or remove the key to allow any'
            )
    return HealthOptions(
        checks=tuple(dict.fromkeys(checks)),
        opset=_version_bounds(raw, "opset", where),
        ir_version=_version_bounds(raw, "ir_version", where),
        allowed_domains=domains,
        constant_output_ok=_string_tuple(raw, "constant_output_ok", where, ()),
    )


def domain(name: str) -> str:
    """An operator domain as the checks name it: ``""`` is ``ai.onnx``."""
    return DEFAULT_DOMAIN if name in ("", DEFAULT_DOMAIN) else name


def parse_check_list(text: str) -> tuple[str, ...]:
    """``--parity-health-checks``: ``checker,opset``, ``all`` or ``none`` (an empty tuple).

    Raises ValueError naming the unknown check and the known ones.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return ()
    if names == ["all"]:
        return ALL_CHECKS
    unknown = [name for name in names if name not in ALL_CHECKS]
    if unknown or not names:
        raise ValueError(
            f"unknown check {unknown[0] if unknown else text!r}; expected a comma list of "
            f"{', '.join(ALL_CHECKS)}, or all, or none"
        )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class FileOptions:
    """The resolved options of one file: which checks run and what they enforce."""

    health: HealthOptions = field(default_factory=HealthOptions)
    coverage: CoverageOptions = field(default_factory=CoverageOptions)

    @property
    def checks(self) -> tuple[str, ...]:
        return self.health.checks


@dataclass(frozen=True)
class HealthConfig:
    """The validated ``[health]`` table with its scopes; :meth:`for_file` resolves one file.

    The tables are kept as validated plain mappings because a file's options merge them key
    by key; ``checks_override`` (from ``--parity-health-checks``) replaces ``checks``.
    """

    top: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    graphs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    where: str = CONFIG_TABLE
    checks_override: tuple[str, ...] | None = None
    enabled: bool = False

    def for_file(self, graph: str, variant: str, tier: str) -> FileOptions:
        """Options of the file of ``variant`` (tag) and ``tier`` in ``graph``."""
        merged = {
            **self.top,
            **self.variants.get(tier, {}),
            **self.variants.get(variant, {}),
            **self.graphs.get(graph, {}),
        }
        if self.checks_override is not None:
            merged["checks"] = list(self.checks_override)
        return FileOptions(
            health=parse_health_options(merged, self.where),
            coverage=parse_coverage_options(merged, self.where),
        )

    def check_scopes(
        self, graphs: Sequence[str], tags: Sequence[str], tiers: Sequence[str]
    ) -> None:
        """A scope naming no graph, tag or tier of the folder is a typo: raise ConfigError."""
        for table, names, known in (
            ("graphs", self.graphs, list(graphs)),
            ("variants", self.variants, [*dict.fromkeys([*tags, *tiers])]),
        ):
            for name in names:
                if name not in known:
                    raise ConfigError(
                        f"{self.where} [{table}.{name}]: {name!r} is not a "
                        f"{'graph' if table == 'graphs' else 'variant tag or tier'} of the "
                        f"export folder; known: {', '.join(known) or 'none'}"
                    )


def parse_health_config(
    raw: Mapping[str, Any] | None,
    where: str,
    checks_override: tuple[str, ...] | None = None,
) -> HealthConfig:
    """Validate the whole ``[health]`` table, scopes included; errors name ``where`` and the key.

    ``raw`` is None when no config file has the table; ``checks_override`` is the value of
    ``--parity-health-checks`` (None when not given, empty for ``none``). Either a table or a
    non-empty override enables the checks.
    """
    enabled = bool(checks_override) if checks_override is not None else raw is not None
    raw = {} if raw is None else raw
    check_keys(raw, (*HEALTH_KEYS, *COVERAGE_KEYS, *SCOPE_TABLES), where)
    top = {key: value for key, value in raw.items() if key not in SCOPE_TABLES}
    _validate(top, where)
    scopes: dict[str, dict[str, Mapping[str, Any]]] = {}
    for table in SCOPE_TABLES:
        entries = raw.get(table, {})
        if not isinstance(entries, Mapping):
            raise ConfigError(
                f"{where}: {table} must be a table of {table}.<name> tables, got {entries!r}"
            )
        scopes[table] = {}
        for name, scope in entries.items():
            scope_where = f"{where} [{table}.{name}]"
            _validate(scope, scope_where)
            scopes[table][name] = dict(scope)
    return HealthConfig(
        top=top,
        variants=scopes["variants"],
        graphs=scopes["graphs"],
        where=where,
        checks_override=checks_override,
        enabled=enabled,
    )


def _validate(raw: Any, where: str) -> None:
    parse_health_options(raw, where)
    parse_coverage_options(raw, where)


def _string_tuple(
    raw: Mapping[str, Any], key: str, where: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    return tuple(value)


def _version_bounds(raw: Mapping[str, Any], key: str, where: str) -> tuple[int, int] | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        or value[0] > value[1]
    ):
        raise ConfigError(
            f"{where}: {key} must be a version or [min, max] with 1 <= min <= max "
            f"(e.g. {key} = [17, 21]), got {raw.get(key)!r}"
        )
    return (value[0], value[1])
