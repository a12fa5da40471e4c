"""Reading and validating TOML tables: one-line errors that name the file, the table and the
allowed keys, and the small value checkers every ``[table]`` parser shares."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the key."""


def read_toml_table(path: Path, table: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The table at ``table`` in the TOML file, or None when the file or table is absent."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}); fix the syntax") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot be read ({error.strerror or type(error).__name__}); fix its "
            "permissions or remove it"
        ) from None
    node: Any = document
    for key in table:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


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


def optional_int(
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


# Synthesized values must stay finite in float32 (and their span in float64): a range past
# that makes every input inf, and every comparison NaN.
FLOAT_RANGE_LIMIT = 1e38
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def optional_range(raw: Mapping[str, Any], key: str, where: str) -> tuple[float, float] | None:
    value = raw.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not value[0] <= value[1]  # also refuses NaN
    ):
        raise ConfigError(f"{where}: {key} must be [low, high] with low <= high, got {value!r}")
    if not all(abs(v) <= FLOAT_RANGE_LIMIT for v in value):
        raise ConfigError(
            f"{where}: {key} must lie within [-{FLOAT_RANGE_LIMIT:g}, {FLOAT_RANGE_LIMIT:g}] "
            f"(finite in float32), got {value!r}; narrow the range"
        )
    return (value[0], value[1])


def int_range(raw: Mapping[str, Any], where: str) -> tuple[int, int] | None:
    value = optional_range(raw, "int_range", where)
    if value is None:
        return None
    if not all(isinstance(v, int) for v in value):
        raise ConfigError(f"{where}: int_range must hold integers, got {list(value)!r}")
    check_int64(value, f"{where}: int_range")
    return (int(value[0]), int(value[1]))


def check_int64(values: Sequence[Any], where: str) -> None:
    """Integers that an int64 input can hold (a TOML integer is unbounded in Python)."""
    if not all(INT64_MIN <= v <= INT64_MAX for v in values if isinstance(v, int)):
        raise ConfigError(
            f"{where} must lie within int64 [{INT64_MIN}, {INT64_MAX}], got {list(values)!r}; "
            "narrow the range"
        )


def int_mapping(raw: Any, where: str, minimum: int) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table of NAME = INTEGER, got {raw!r}")
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return dict(raw)


def string_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError(f"{where}: expected a list of strings, got {raw!r}")
    return raw


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
