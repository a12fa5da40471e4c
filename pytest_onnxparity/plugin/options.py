"""Command-line options: declared in one group, each string parsed once into an object.

Parsers raise ``argparse.ArgumentTypeError`` so pytest reports a usage error naming the flag.
Numeric ini keys are typed (``type="int"``): pytest reads ``parity_threads = 2`` from a native
``[tool.pytest]`` table as it is and ``"2"`` from an ini file, and names the key when it is not
an integer.
This module imports only the standard library: it is loaded with the plugin.
"""

from __future__ import annotations

from typing import Any

from pytest_onnxparity.plugin.option_types import (
    parse_clips_dir,
    parse_clips_limit,
    parse_dataset,
    parse_dim,
    parse_fail_spec,
    parse_health_checks,
    parse_localize_dir,
    parse_margin,
    parse_non_negative_int,
    parse_on_off,
    parse_positive_int,
    parse_scoped_tolerance,
    parse_size_budget,
    parse_speed_budget,
    parse_suite_choice,
    parse_sweep,
)

GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
INI_SUITE = "parity_suite"


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
    parser.addini("parity_threads", "default for --parity-threads", type="int", default=None)
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
        help="write limits from measured errors x margin per input set (parity.toml tables, or "
        "[tool.onnxparity] ones for a pyproject.toml), never for damaged variants",
    )
    group.addoption(
        "--parity-suggest-force",
        action="store_true",
        default=False,
        help="let --parity-suggest replace a file it did not write",
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
    _add_weights_options(group, parser)
    _add_speed_options(group, parser)
    _add_results_options(group, parser)
    _add_suite_options(group, parser)
    _add_references_options(group, parser)
    _add_sequence_options(group, parser)


def _add_localize_options(group: Any, parser: Any) -> None:
    """Localization: which node of a variant is damaged (``localize_plugin``)."""
    group.addoption(
        "--parity-localize",
        action="store_true",
        default=False,
        help="localize every parity test: the damaged nodes of each variant and its "
        "per-tensor drift against the reference, in the failure message, the JSON results "
        "and a plot per graph ([localize] auto = true does it for failing tests only)",
    )
    group.addoption(
        "--parity-localize-dir",
        type=parse_localize_dir,
        metavar="DIR",
        help="folder for the drift-and-damage plots (default: the --parity-json folder, "
        "else a new temporary folder)",
    )


def _add_results_options(group: Any, parser: Any) -> None:
    """Results: the metadata block, its Markdown, and baselines (``reporter``, ``baseline``)."""

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
        "--parity-model-index",
        metavar="PATH",
        help="write the Hugging Face Hub's model-index (WER/CER of each pipeline against ground "
        "truth) as YAML front matter (.json: JSON); validated with huggingface_hub if installed",
    )
    parser.addini("parity_model_index", "default for --parity-model-index", default=None)
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
        "METRIC:+N, comma-separated (default: each error statistic 2x, wer and cer +0.5pp)",
    )
    parser.addini("parity_baseline_fail", "default for --parity-baseline-fail", default=None)


def _add_health_options(group: Any, parser: Any) -> None:
    """Graph health and quantization coverage checks (``health_plugin``)."""
    group.addoption(
        "--parity-health-checks",
        type=parse_health_checks,
        metavar="LIST",
        help="run these health checks on every file of the export folder, one test each: a "
        "comma list of checker, opset, domains, initializers, structure, outputs, coverage; "
        "'all' or 'none' (default: a [health] config table turns all of them on)",
    )


def _add_weights_options(group: Any, parser: Any) -> None:
    """Weight-space parity (``weights_plugin``), on by default."""
    group.addoption(
        "--parity-weights",
        type=parse_on_off,
        metavar="on|off",
        help="weight-space parity: one weights[<variant>] test per variant file comparing each "
        "dequantized weight with the reference's, before inference (default on; [weights] "
        "tunes it)",
    )
    parser.addini("parity_weights", "default for --parity-weights (on or off)", default=None)


def _add_suite_options(group: Any, parser: Any) -> None:
    """Ready-made suites (``suites_plugin``): start a run from a shipped declarative suite."""
    group.addoption(
        "--parity-suite",
        type=parse_suite_choice,
        metavar="NAME|PATH",
        help="start from a ready-made suite (embedding, classifier, encoder-decoder-asr, "
        "streaming-vad) or a suite .toml; your [tool.onnxparity] and parity.toml override it",
    )
    parser.addini(INI_SUITE, "default for --parity-suite (a name, or a path from the rootdir)")
    group.addoption(
        "--parity-suites",
        action="store_true",
        default=False,
        help="list the ready-made suites (or explain --parity-suite's) with what they check and "
        "their tolerances per precision tier, and exit",
    )


def _add_speed_options(group: Any, parser: Any) -> None:
    """Speed and size gates (``speed_plugin``): budgets, repeats and warm-up of the timings."""

    group.addoption(
        "--parity-speed-budget",
        action="append",
        default=[],
        type=parse_speed_budget,
        metavar="[SCOPE:]METRIC<=LIMIT[x]",
        help="time every graph file and gate it: latency_ms<=40, rtf<=0.3, or relative to the "
        "reference timed in the same run: int4:latency_ms<=0.7x (recommended on shared CI)",
    )
    parser.addini(
        "parity_speed_budgets", "speed budgets, one per line", type="linelist", default=[]
    )
    group.addoption(
        "--parity-size-budget",
        action="append",
        default=[],
        type=parse_size_budget,
        metavar="[SCOPE:]METRIC<=LIMIT",
        help="gate variant bundles (unscoped or TIER/TAG:) or files (GRAPH[/TAG]:) on size: "
        "size_mb<=450, int4:ratio>=3.5, encoder/int8:size_mb<=0.3x",
    )
    parser.addini("parity_size_budgets", "size budgets, one per line", type="linelist", default=[])
    group.addoption(
        "--parity-timing",
        action="store_true",
        default=False,
        help="time every graph file even without speed budgets (for --benchmark-json and "
        "--benchmark-compare)",
    )
    parser.addini("parity_timing", "default for --parity-timing", type="bool", default=False)
    group.addoption(
        "--parity-timing-repeats",
        type=parse_positive_int,
        metavar="N",
        help="timed rounds per figure; the median is gated (default 5)",
    )
    parser.addini(
        "parity_timing_repeats", "default for --parity-timing-repeats", type="int", default=None
    )
    group.addoption(
        "--parity-timing-warmup",
        type=parse_non_negative_int,
        metavar="N",
        help="untimed rounds before the timed ones (default 1)",
    )
    parser.addini(
        "parity_timing_warmup", "default for --parity-timing-warmup", type="int", default=None
    )


def _add_references_options(group: Any, parser: Any) -> None:
    """References: what each graph's variants are compared with (``references_plugin``)."""
    group.addoption(
        "--parity-reference-dir",
        metavar="DIR",
        help="compare every graph with the file at the same relative path in DIR (e.g. the "
        "previous release) instead of its own fp32 file",
    )
    group.addoption(
        "--parity-record",
        nargs="?",
        const="npz",
        choices=("npz", "test-data"),
        metavar="npz|test-data",
        help="after the run, write each tested graph's reference outputs and inputs to "
        "<onnx-dir>/reference/ (<graph>.npz, or <graph>/test_data_set_N/ with "
        "--parity-record=test-data), for --parity-recorded runs without torch",
    )
    group.addoption(
        "--parity-recorded",
        action="store_true",
        default=None,
        help="use the outputs recorded in <onnx-dir>/reference/ as every graph's reference "
        "(needs no torch)",
    )
    parser.addini("parity_recorded", "default for --parity-recorded", type="bool", default=False)
    group.addoption(
        "--parity-allow-pickle",
        action="store_true",
        default=False,
        help="allow checkpoint references saved whole with torch.save; unpickling runs code "
        "from the file (same as allow_pickle = true in [references.<graph>])",
    )


def _add_sequence_options(group: Any, parser: Any) -> None:
    """Sequence gates of a pipeline adapter over clips (``sequence_plugin``)."""
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
