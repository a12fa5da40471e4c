"""The card's sequence sections: per variant set × reference (PyTorch, fp32 ONNX) the corpus
numbers published ASR cards show (transcript matches, argmax mismatches as n/N free-running and
teacher-forced, first-step agreement, token Levenshtein, WER, CER, WER against ground truth),
then the same per clip. Pure: reads the metadata block's ``sequence`` and ``sequence-clip``
checks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pytest_onnxparity.results.markdown_cells import (
    NONE,
    fraction,
    markdown_table,
    number,
    pass_text,
    percent,
    yes_no,
)

SEQUENCE_CHECK = "sequence"
CLIP_CHECK = "sequence-clip"
REFERENCE_LABELS = {"fp32": "fp32 ONNX", "pytorch": "PyTorch"}
CLIP_ROWS_SHOWN = 40
"""Past this many per-clip rows, only the clips that differ are listed (the JSON has all)."""


def sequence_sets(graphs: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(graph, set, checks)`` of every variant set with a ``sequence`` check."""
    for graph_name, graph in graphs.items():
        for tag, variant in graph.get("variants", {}).items():
            checks = variant.get("checks") or {}
            if SEQUENCE_CHECK in checks:
                yield graph_name, tag, checks


def _comparisons(check: Mapping[str, Any]) -> Iterator[tuple[str, bool, Mapping[str, Any]]]:
    """``(reference, gated, numbers)``: the gated reference first, then each reported one."""
    about = check.get("about") or {}
    yield str(about.get("reference", "fp32")), True, check
    for name, numbers in sorted((check.get("against") or {}).items()):
        yield name, False, numbers


def _label(reference: str, gated: bool) -> str:
    label = REFERENCE_LABELS.get(reference, reference)
    return f"{label} (gated)" if gated else f"{label} (reported)"


def sequence_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per variant set × reference."""
    rows = []
    for _, tag, checks in sequence_sets(graphs):
        check = checks[SEQUENCE_CHECK]
        tier = (check.get("about") or {}).get("tier", "")
        for reference, gated, numbers in _comparisons(check):
            clips = numbers.get("clips")
            steps = numbers.get("reference_steps")
            mismatched = numbers.get("token_mismatched_clips")
            truth = numbers.get("wer_vs_truth")
            reference_truth = numbers.get("reference_wer_vs_truth")
            rows.append(
                [
                    tag,
                    tier,
                    _label(reference, gated),
                    pass_text(check) if gated else "reported",
                    number("clips", clips),
                    fraction(numbers.get("transcripts_matching"), clips),
                    fraction(
                        None if mismatched is None or clips is None else clips - mismatched, clips
                    ),
                    fraction(numbers.get("first_step_agreeing_clips"), clips),
                    _edits(numbers.get("token_edits"), numbers.get("reference_tokens")),
                    fraction(numbers.get("argmax_mismatches_free"), steps),
                    fraction(numbers.get("argmax_mismatches_forced"), steps),
                    percent(numbers.get("wer")),
                    percent(numbers.get("cer")),
                    NONE
                    if truth is None
                    else f"{percent(truth)} (reference {percent(reference_truth)})",
                ]
            )
    headers = [
        "variant set",
        "tier",
        "against",
        "status",
        "clips",
        "transcripts match",
        "token-exact clips",
        "first step agrees",
        "token Levenshtein",
        "argmax mismatches",
        "teacher-forced argmax mismatches",
        "WER",
        "CER",
        "WER vs ground truth",
    ]
    return markdown_table(headers, rows, right=11)


def _edits(edits: Any, tokens: Any) -> str:
    if edits is None:
        return NONE
    return f"{edits} of {tokens} tokens" if tokens is not None else str(edits)


def sequence_notes(graphs: Mapping[str, Any]) -> list[str]:
    """Where the clips came from and how transcripts were normalised, once per distinct pair."""
    notes: dict[str, None] = {}
    for _, _, checks in sequence_sets(graphs):
        about = checks[SEQUENCE_CHECK].get("about") or {}
        parts = []
        if about.get("clip_source"):
            parts.append(f"clips: {about['clip_source']}")
        if about.get("normalization"):
            parts.append(f"WER/CER normalisation: {about['normalization']}")
        if parts:
            notes["; ".join(parts)] = None
    explained = (
        "*gated*: the set's tests hold it to that reference; *reported*: measured against it, "
        "not gated. Argmax mismatches are decoder steps whose argmax differs from the "
        "reference's, out of the reference's steps; teacher-forced ones feed the variant the "
        "reference's tokens. Token Levenshtein is the edit distance between the token sequences."
    )
    return [*(f"{note}." for note in notes), explained] if notes else []


def clip_table(graphs: Mapping[str, Any]) -> list[str]:
    """One row per clip × variant set × reference: transcript match (Y/N), WER, CER, token
    Levenshtein, first divergence and argmax mismatches."""
    rows = []
    differing = []
    for _, tag, checks in sequence_sets(graphs):
        clips = (checks.get(CLIP_CHECK) or {}).get("items") or {}
        reference = str((checks[SEQUENCE_CHECK].get("about") or {}).get("reference", "fp32"))
        for clip_id, item in clips.items():
            compared = [(reference, True, item)]
            compared += [
                (name, False, n) for name, n in sorted((item.get("against") or {}).items())
            ]
            for name, gated, numbers in compared:
                row = [
                    clip_id,
                    tag,
                    _label(name, gated),
                    yes_no(numbers.get("transcript_match", numbers.get("tokens_equal"))),
                    percent(numbers.get("wer")),
                    percent(numbers.get("cer")),
                    number("token_edits", numbers.get("token_edits")),
                    number("first_divergence", numbers.get("first_divergence")),
                    fraction(numbers.get("argmax_mismatches_free"), numbers.get("reference_steps")),
                ]
                rows.append(row)
                if numbers.get("tokens_equal") is False or numbers.get("transcript_match") is False:
                    differing.append(row)
    note = []
    if len(rows) > CLIP_ROWS_SHOWN:
        note = [
            "",
            f"{len(rows) - len(differing)} of {len(rows)} clip rows match their reference "
            "exactly and are left out; every clip is in the JSON results.",
        ]
        rows = differing
    headers = [
        "clip",
        "variant set",
        "against",
        "transcript match",
        "WER",
        "CER",
        "token Levenshtein",
        "first divergence",
        "argmax mismatches",
    ]
    table = markdown_table(headers, rows, right=5)
    return [*table, *note] if table else note[1:]
