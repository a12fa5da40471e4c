"""The commands of ``python -m pytest_onnxparity``, each reading files and returning its text.

Every rendering comes from ``results``: the terminal table of ``report_lines`` (what a pytest
run prints in its ``onnxparity`` section), ``render_markdown`` and ``build_metadata`` (what
``--parity-markdown`` and ``--parity-metadata`` write), ``compare`` (what ``--parity-baseline``
decides) and ``results.suggest`` (what ``--parity-suggest`` writes: limits per input set, none
for a damaged, NaN, errored, outlier or weight-failing variant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.results.baseline import (
    DEFAULT_FAIL_SPEC,
    BaselineError,
    RegressionRule,
    compare,
    parse_fail_spec,
    read_baseline,
)
from pytest_onnxparity.results.markdown import render_markdown
from pytest_onnxparity.results.metadata import METADATA_SCHEMA, build_metadata, dumps_stable
from pytest_onnxparity.results.suggest import SuggestError, check_destination
from pytest_onnxparity.results.suggest import suggest as suggest_limits
from pytest_onnxparity.results.terminal import report_lines

FORMATS = ("table", "markdown", "metadata")


class CommandError(ValueError):
    """A command cannot do what it was asked; the message names the file and the fix."""


@dataclass(frozen=True)
class Outcome:
    """What a command prints (or writes) and the process's exit status."""

    text: str
    status: int = 0


def read_document(path: Path) -> dict[str, Any]:
    """A results file (``--parity-json``) or a metadata block (``--parity-metadata``)."""
    try:
        return read_baseline(path, what="results file")
    except BaselineError as error:
        raise CommandError(str(error)) from None


def as_metadata(document: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata block of a results file, or the block itself."""
    if document.get("schema") == METADATA_SCHEMA:
        return dict(document)
    return build_metadata(document)


def render(path: Path, output_format: str) -> Outcome:
    """``render RESULTS``: the terminal table, the Markdown tables or the metadata block."""
    document = read_document(path)
    if output_format == "markdown":
        return Outcome(render_markdown(as_metadata(document)))
    if output_format == "metadata":
        return Outcome(dumps_stable(as_metadata(document)))
    if document.get("schema") == METADATA_SCHEMA:
        raise CommandError(
            f"{path}: a metadata block keeps no per-test records for the table; render it with "
            "--format markdown, or render the --parity-json file of the same run"
        )
    workers = (document.get("run") or {}).get("workers") or {}
    lines = report_lines(document.get("records") or [], workers)
    return Outcome("\n".join(lines) + "\n" if lines else "no records\n")


def compare_runs(old_path: Path, new_path: Path, rules: Sequence[RegressionRule] | None) -> Outcome:
    """``compare OLD NEW``: NEW against the baseline OLD; a regression exits 1. ``rules``
    None means the defaults (``--parity-baseline-fail``'s)."""
    old, new = read_document(old_path), read_document(new_path)
    chosen = tuple(rules) if rules is not None else parse_fail_spec(DEFAULT_FAIL_SPEC)
    comparison = compare(as_metadata(old), as_metadata(new), chosen, str(old_path))
    if rules is None:  # the default rules: one that matches nothing is not news
        comparison = dataclasses.replace(comparison, unmatched_rules=())
    lines = comparison.lines(fail_option="--fail")
    return Outcome("\n".join(lines) + "\n", 1 if comparison.failed else 0)


def suggest(
    path: Path, margin: float, destination: Path | None = None, force: bool = False
) -> Outcome:
    """``suggest RESULTS``: what ``--parity-suggest`` writes, measured errors × ``margin`` per
    input set, in ``destination``'s form (``pyproject.toml``: ``[tool.onnxparity…]``); never
    over a file it did not write unless ``force``."""
    document = read_document(path)
    if document.get("schema") == METADATA_SCHEMA:
        raise CommandError(
            f"{path}: a metadata block keeps rounded numbers; suggest limits from the "
            "--parity-json file of the run"
        )
    if destination is not None:
        try:
            check_destination(destination, force, flag="--output", force_flag="--force")
        except SuggestError as error:
            raise CommandError(str(error)) from None
    suggestion = suggest_limits(document.get("records") or [], margin)
    return Outcome(suggestion.render(destination or Path("parity.toml")))
