"""The argument parser of ``python -m pytest_onnxparity`` and its dispatch.

Exit status: 0 done, 1 a regression (``compare``), 2 a usage error or a file that cannot be
used (one line on stderr naming it and the fix), as pytest's own command line does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_onnxparity.cli.commands import (
    FORMATS,
    CommandError,
    Outcome,
    compare_runs,
    render,
    suggest,
)
from pytest_onnxparity.results.baseline import SPEC_USAGE, parse_fail_spec

PROG = "python -m pytest_onnxparity"
USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Work on stored pytest-onnxparity results (--parity-json or "
        "--parity-metadata files) without running pytest.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render_parser = commands.add_parser(
        "render", help="print a results file as the run's table, Markdown or metadata block"
    )
    render_parser.add_argument("results", type=Path, metavar="RESULTS.json")
    render_parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: the onnxparity section of the run's terminal summary (default); markdown: "
        "the --parity-markdown tables; metadata: the --parity-metadata block",
    )
    _add_output(render_parser)

    compare_parser = commands.add_parser(
        "compare", help="the baseline verdict of NEW against OLD (exit 1 on a regression)"
    )
    compare_parser.add_argument("old", type=Path, metavar="OLD.json")
    compare_parser.add_argument("new", type=Path, metavar="NEW.json")
    compare_parser.add_argument(
        "--fail",
        type=parse_fail_spec,
        metavar="SPEC",
        help=f"how much worse each metric may get, as --parity-baseline-fail ({SPEC_USAGE})",
    )

    suggest_parser = commands.add_parser(
        "suggest", help="a parity.toml snippet: the measured errors of a results file x margin"
    )
    suggest_parser.add_argument("results", type=Path, metavar="RESULTS.json")
    suggest_parser.add_argument(
        "--margin", type=_margin, default=1.5, metavar="X", help="default 1.5"
    )
    _add_output(suggest_parser)
    suggest_parser.add_argument(
        "--force",
        action="store_true",
        help="let --output replace a file that suggest did not write (as --parity-suggest-force)",
    )
    return parser


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="write to PATH (atomically) instead of printing",
    )


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}") from None
    if not value >= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def run(arguments: argparse.Namespace) -> Outcome:
    if arguments.command == "render":
        return render(arguments.results, arguments.format)
    if arguments.command == "compare":
        return compare_runs(arguments.old, arguments.new, arguments.fail)
    return suggest(arguments.results, arguments.margin, arguments.output, arguments.force)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        outcome = run(arguments)
    except CommandError as error:
        sys.stderr.write(f"{PROG}: {error}\n")
        return USAGE_ERROR
    output: Path | None = getattr(arguments, "output", None)
    if output is None:
        sys.stdout.write(outcome.text)
    else:
        from pytest_onnxparity.files.atomic import write_text_atomic

        write_text_atomic(output, outcome.text)
        sys.stderr.write(f"{PROG}: {arguments.command} written to {output}\n")
    return outcome.status
