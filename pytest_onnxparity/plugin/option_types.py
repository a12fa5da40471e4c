"""The ``type=`` parsers of the command-line options: each option string parsed once into an
object, with a usage error (``argparse.ArgumentTypeError``) that pytest reports naming the flag.

Only the standard library at import time: options are declared in every pytest process, with
or without an export folder. The core parser a flag needs is imported when the flag is used.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _usage_error(parse: Callable[[], T], *errors: type[Exception]) -> T:
    """Run a core parser, turning its error into a usage error with the same message."""
    try:
        return parse()
    except errors as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_scoped_tolerance(text: str) -> Any:
    """``--parity-tolerance [SCOPE:]KEY=VALUE``."""
    from pytest_onnxparity.config.tolerances import ToleranceError, parse_scoped_tolerance

    return _usage_error(lambda: parse_scoped_tolerance(text), ToleranceError)


def parse_dim(text: str) -> tuple[str, int]:
    """``NAME=SIZE`` for a named dynamic dimension, e.g. ``T=97``."""
    name, equals, size = text.partition("=")
    if not equals or not name or not size.isdecimal() or int(size) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE with SIZE >= 1, got {text!r}")
    return name, int(size)


def parse_sweep(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=S1,S2,...``: one input set per size, each a separate test id."""
    name, equals, sizes = text.partition("=")
    parts = sizes.split(",")
    if not equals or not name or not all(p.isdecimal() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected NAME=S1,S2,... with sizes >= 1 (e.g. T=64,80,97), got {text!r}"
        )
    return name, tuple(int(p) for p in parts)


def parse_margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    # ``not value >= 1`` also rejects NaN; an infinite margin would suggest infinite limits.
    if not value >= 1.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a margin >= 1 (e.g. 1.5), got {text!r}")
    return value


def parse_non_negative_int(text: str) -> int:
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def parse_positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def parse_localize_dir(text: str) -> Path:
    """``--parity-localize-dir DIR``: a folder (created if missing) for the drift plots."""
    path = Path(text).resolve()
    if not text or (path.exists() and not path.is_dir()):
        raise argparse.ArgumentTypeError(f"expected a folder for the drift plots, got {text!r}")
    return path


def parse_fail_spec(text: str) -> Any:
    """``--parity-baseline-fail``: the regression rules of a baseline comparison."""
    from pytest_onnxparity.results.baseline import parse_fail_spec as parse

    return parse(text)


def parse_health_checks(text: str) -> tuple[str, ...]:
    """``--parity-health-checks``: a comma list of checks, ``all`` or ``none``."""
    from pytest_onnxparity.diagnose.health.config import parse_check_list

    return _usage_error(lambda: parse_check_list(text), ValueError)


def parse_on_off(text: str) -> bool:
    """``--parity-weights on|off`` (true/false, yes/no, 1/0 too)."""
    from pytest_onnxparity.compare.weight_space.limits import parse_switch

    return _usage_error(lambda: parse_switch(text), ValueError)


def parse_suite_choice(text: str) -> str:
    """``--parity-suite NAME|PATH``: a shipped suite's name or a path to a suite ``.toml``."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a suite name (see --parity-suites) or a path")
    return text


def parse_speed_budget(text: str) -> Any:
    """``--parity-speed-budget [SCOPE:]METRIC<=LIMIT[x]``."""
    from pytest_onnxparity.speed.budgets import BudgetError
    from pytest_onnxparity.speed.verdict import speed_budget

    return _usage_error(lambda: speed_budget(text, "--parity-speed-budget"), BudgetError)


def parse_size_budget(text: str) -> Any:
    """``--parity-size-budget [SCOPE:]METRIC<=LIMIT``."""
    from pytest_onnxparity.speed.budgets import BudgetError
    from pytest_onnxparity.speed.sizes import size_budget

    return _usage_error(lambda: size_budget(text, "--parity-size-budget"), BudgetError)


def parse_clips_dir(text: str) -> Path:
    """``--parity-clips DIR``: an existing folder of wav/flac clips (relative to the cwd)."""
    path = Path(text).resolve()
    if not text or not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a folder of .wav/.flac clips with .txt transcripts, got {text!r}"
        )
    return path


def parse_dataset(text: str) -> str:
    """``--parity-dataset NAME_OR_PATH``: a local audiofolder (made absolute) or a hub name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a dataset folder or a hub dataset name")
    path = Path(text)
    return str(path.resolve()) if path.is_dir() else text


def parse_clips_limit(text: str) -> int:
    """``--parity-clips-limit N``: the first N clips only (N >= 1)."""
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of clips >= 1, got {text!r}")
    return int(text)
