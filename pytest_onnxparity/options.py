"""Command-line options: declared in one group, each string parsed once into an object.

Parsers raise ``argparse.ArgumentTypeError`` so pytest reports a usage error naming the flag.
This module imports only the standard library: it is loaded with the plugin.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class ScopedTolerance:
    """``--parity-tolerance [SCOPE:]KEY=VALUE``: one limit, for everything or for one scope.

    SCOPE is a tier (``int8``), a variant tag (``q4f16``), a graph (``encoder``),
    ``graph/variant`` or ``graph/variant/output``.
    """

    scope: str | None
    key: str
    value: float | int

    @property
    def specificity(self) -> int:
        """0 for everything, 1 for a tier/variant/graph, then one more per ``/`` level."""
        return 0 if self.scope is None else 1 + self.scope.count("/")

    def applies_to(self, tier: str, graph: str, variant: str, output: str) -> bool:
        return self.scope is None or self.scope in {
            tier,
            variant,
            graph,
            f"{graph}/{variant}",
            f"{graph}/{variant}/{output}",
        }


def parse_scoped_tolerance(text: str) -> ScopedTolerance:
    from pytest_onnxparity.tolerances import ToleranceError, validate_layer

    scope, _, assignment = text.rpartition(":")
    key, equals, value = assignment.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(
            f"expected [SCOPE:]KEY=VALUE like 'int8:rel_l2=0.05', got {text!r}"
        )
    integer_key = key in ("argmax_axis", "topk") and value.lstrip("-").isdecimal()
    raw: Any = int(value) if integer_key else value
    try:
        layer = validate_layer({key: raw}, "--parity-tolerance")
    except ToleranceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return ScopedTolerance(scope or None, key, layer[key])


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


def add_options(parser: Any) -> None:
    """Register every option in the ``onnxparity`` group, with ini mirrors where CI needs them."""
    group = parser.getgroup("onnxparity", "ONNX parity gates (pytest-onnxparity)")
    group.addoption(
        "--onnx-dir",
        metavar="DIR",
        help="export folder to discover *.onnx graphs and variants in; generates parity tests",
    )
    parser.addini("parity_onnx_dir", "default for --onnx-dir", default=None)
    group.addoption(
        "--parity-json", metavar="PATH", help="write every measured number to this JSON file"
    )
    parser.addini("parity_json", "default for --parity-json", default=None)
    group.addoption(
        "--parity-tolerance",
        action="append",
        default=[],
        type=parse_scoped_tolerance,
        metavar="[SCOPE:]KEY=VALUE",
        help="override a limit: rel_l2=0.05, int8:max_abs=0.02, encoder/int4:min_cosine=0.97",
    )
    group.addoption(
        "--parity-dim",
        action="append",
        default=[],
        type=parse_dim,
        metavar="NAME=SIZE",
        help="size of a named dynamic dimension, e.g. T=97 (overrides config dims)",
    )
    group.addoption(
        "--parity-sweep",
        action="append",
        default=[],
        type=parse_sweep,
        metavar="NAME=S1,S2",
        help="test each size of a dynamic dimension as its own test id, e.g. T=64,80,97,128",
    )
    group.addoption(
        "--parity-seed", type=parse_non_negative_int, metavar="N", help="input seed (default 0)"
    )
    group.addoption(
        "--parity-provider",
        action="append",
        default=[],
        metavar="NAME",
        help="ONNX Runtime execution provider, repeatable in priority order (default CPU)",
    )
    group.addoption(
        "--parity-threads",
        type=parse_non_negative_int,
        metavar="N",
        help="intra-op threads per session (default 0 = onnxruntime's choice)",
    )
    parser.addini("parity_threads", "default for --parity-threads", default=None)
    group.addoption(
        "--parity-graph-opt",
        choices=GRAPH_OPT_LEVELS,
        help="graph optimisation level of every session (default all)",
    )
    group.addoption(
        "--parity-deterministic",
        action="store_true",
        default=None,
        help="bit-stable CPU mode: deterministic kernels, one thread, sequential execution",
    )
    group.addoption(
        "--parity-suggest",
        metavar="PATH",
        help="write a parity.toml snippet with measured errors x margin, to calibrate limits",
    )
    group.addoption(
        "--parity-suggest-margin",
        type=parse_margin,
        default=1.5,
        metavar="X",
        help="margin applied by --parity-suggest (default 1.5)",
    )
    _add_localize_options(group, parser)
    _add_health_options(group, parser)
    _add_results_options(group, parser)
    _add_sequence_options(group, parser)


def _add_localize_options(group: Any, parser: Any) -> None:
    """Localization: which layer of a variant drifts (``localize_plugin``)."""
    from pytest_onnxparity.localize_plugin import parse_localize_dir

    group.addoption(
        "--parity-localize",
        action="store_true",
        default=False,
        help="localize every parity test: per-tensor drift of each variant against its "
        "reference, in the failure message, the JSON results and a drift plot per graph "
        "([localize] auto = true does it for failing tests only)",
    )
    group.addoption(
        "--parity-localize-dir",
        type=parse_localize_dir,
        metavar="DIR",
        help="folder for the drift-by-depth plots (default: the --parity-json folder, "
        "else a new temporary folder)",
    )


def _add_results_options(group: Any, parser: Any) -> None:
    """Results: the metadata block, its Markdown, and baselines (``reporter``, ``baseline``)."""
    from pytest_onnxparity.baseline import DEFAULT_FAIL_SPEC, parse_fail_spec

    group.addoption(
        "--parity-metadata",
        metavar="PATH",
        help="write the parity metadata block (graph IO, parity per graph x variant, "
        "multi-clip parity, toolchain) to ship beside the graphs; keys sorted for diffs",
    )
    parser.addini("parity_metadata", "default for --parity-metadata", default=None)
    group.addoption(
        "--parity-markdown",
        metavar="PATH",
        help="write the metadata block as Markdown tables for a README or model card (also "
        "appended to $GITHUB_STEP_SUMMARY when set)",
    )
    parser.addini("parity_markdown", "default for --parity-markdown", default=None)
    group.addoption(
        "--parity-baseline",
        metavar="OLD.json",
        help="compare this run with a stored --parity-json or --parity-metadata file; a metric "
        "worse than --parity-baseline-fail allows fails the session",
    )
    parser.addini("parity_baseline", "default for --parity-baseline", default=None)
    group.addoption(
        "--parity-baseline-fail",
        type=parse_fail_spec,
        metavar="SPEC",
        help="how much worse each metric may get: METRIC:Nx, METRIC:+N%%, METRIC:+Npp or "
        f"METRIC:+N, comma-separated (default {DEFAULT_FAIL_SPEC})",
    )
    parser.addini("parity_baseline_fail", "default for --parity-baseline-fail", default=None)


def _add_health_options(group: Any, parser: Any) -> None:
    """Graph health and quantization coverage checks (``health_plugin``)."""
    from pytest_onnxparity.health_plugin import parse_health_checks

    group.addoption(
        "--parity-health-checks",
        type=parse_health_checks,
        metavar="LIST",
        help="run these health checks on every file of the export folder, one test each: a "
        "comma list of checker, opset, domains, initializers, structure, outputs, coverage; "
        "'all' or 'none' (default: a [health] config table turns all of them on)",
    )


def _add_sequence_options(group: Any, parser: Any) -> None:
    """Sequence gates of a pipeline adapter over clips (``sequence_plugin``)."""
    from pytest_onnxparity.sequence_plugin import (
        parse_clips_dir,
        parse_clips_limit,
        parse_dataset,
    )

    group.addoption(
        "--parity-clips",
        type=parse_clips_dir,
        metavar="DIR",
        help="run the sequence gates on this folder of wav/flac clips with same-stem .txt "
        "transcripts (overrides [sequence] clips_dir/dataset)",
    )
    group.addoption(
        "--parity-dataset",
        type=parse_dataset,
        metavar="NAME_OR_PATH",
        help="run the sequence gates on a Hugging Face dataset: a local audiofolder or a hub "
        "name; split, columns and streaming come from [sequence]",
    )
    group.addoption(
        "--parity-clips-limit",
        type=parse_clips_limit,
        metavar="N",
        help="only the first N clips (overrides [sequence] limit)",
    )
    group.addoption(
        "--parity-variant-set",
        action="append",
        default=[],
        metavar="NAME",
        help="gate only this variant set of the pipeline (repeatable; default: every set)",
    )
