"""Sequence gates: run an encoder/decoder pipeline on clips and compare a variant set's tokens
and transcripts with the reference's.

The user writes a :class:`PipelineAdapter`: given the loaded graphs of one variant set and one
clip, it returns the decoded token ids (and text, if it has a tokenizer). The plugin runs it
once for the reference graphs (cached) and once per variant set, optionally again under teacher
forcing, and hands the results to :func:`compare_clip` and :func:`evaluate_sequence`.

Aggregates are corpus-level: WER is total word edits over total reference words, and the count
gates (argmax mismatches, token edits) are totals over all clips; every number is also kept per
clip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_onnxparity.results.terminal import table
from pytest_onnxparity.speech.sequence.clip_compare import ClipComparison

TABLE_ROW_LIMIT = 30


TEXT_CELL_WIDTH = 32

CHECK_NAME = "sequence"
CLIP_CHECK_NAME = "sequence-clip"


def per_clip_table(
    comparisons: Sequence[ClipComparison], limit: int = TABLE_ROW_LIMIT
) -> list[str]:
    """Lines of the per-clip table: clip, duration, reference vs variant transcript, match,
    WER against the reference, token edits, first divergence.

    Past ``limit`` rows only clips that differ are listed (the JSON results hold all).
    """
    shown = list(comparisons)
    if len(shown) > limit:
        shown = [c for c in comparisons if not c.tokens_equal or c.transcript_match is False]
    omitted = len(comparisons) - min(len(shown), limit)
    rows = [
        [
            c.clip_id,
            f"{c.duration_s:.2f}",
            _transcript_cell(c.reference_text, c.reference_tokens),
            _transcript_cell(c.variant_text, c.variant_tokens),
            _match_cell(c),
            "-" if c.wer_vs_reference is None else number_text(c.wer_vs_reference.rate),
            str(c.token_edits),
            "-" if c.first_divergence is None else str(c.first_divergence),
        ]
        for c in shown[:limit]
    ]
    headers = ["clip", "dur_s", "reference", "variant", "match", "wer", "edits", "diverges"]
    lines = table(headers, rows)
    if omitted:
        lines.append(f"... {omitted} more clips (all of them in the JSON results)")
    return lines


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per variant set from the run's ``sequence`` records: clips, equal tokens,
    teacher-forced argmax mismatches, corpus WER/CER against the reference and WER against
    ground truth (the set's and the reference's), and the verdict."""
    rows = []
    for record in records:
        if record.get("kind") != "check" or record.get("check") != CHECK_NAME:
            continue
        corpus = (record.get("details") or {}).get("corpus")
        if not corpus:
            rows.append([record["variant"] or "-", "0", "-", "-", "-", "-", "-", _status(record)])
            continue
        equal = corpus["clips"] - corpus["token_mismatched_clips"]
        forced = corpus["argmax_mismatches_forced"]
        truth = _rate_cell(corpus["wer_vs_truth"])
        reference_truth = _rate_cell(corpus["reference_wer_vs_truth"])
        rows.append(
            [
                record["variant"],
                str(corpus["clips"]),
                f"{equal}/{corpus['clips']}",
                "-" if forced is None else str(forced),
                _rate_cell(corpus["wer_vs_reference"]),
                _rate_cell(corpus["cer_vs_reference"]),
                f"{truth} / {reference_truth}",
                _status(record),
            ]
        )
    if not rows:
        return []
    headers = [
        "variant set",
        "clips",
        "tokens equal",
        "forced argmax",
        "wer",
        "cer",
        "wer vs truth (set / ref)",
        "status",
    ]
    return table(headers, rows)


def _rate_cell(counts: Mapping[str, Any] | None) -> str:
    if counts is None or counts.get("rate") is None:
        return "-"
    return f"{counts['rate']:.4f}".rstrip("0").rstrip(".") if counts["rate"] else "0"


def _status(record: Mapping[str, Any]) -> str:
    return "PASS" if record["passed"] else "FAIL"


def number_text(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def clip_list(ids: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(ids[:shown])
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"clips {head}{more}"


def _transcript_cell(text: str | None, tokens: Sequence[int]) -> str:
    cell = text if text is not None else "[" + " ".join(str(t) for t in tokens) + "]"
    cell = " ".join(cell.split())
    return cell if len(cell) <= TEXT_CELL_WIDTH else cell[: TEXT_CELL_WIDTH - 3] + "..."


def _match_cell(comparison: ClipComparison) -> str:
    match = comparison.transcript_match
    if match is None:
        match = comparison.tokens_equal
    return "yes" if match else "NO"
