"""The numbers of a record: a parity record's output statistics, a check's top-level numbers, and
the nested totals a few known checks (``sequence``, timing) carry, under the names baselines
and the metadata block use."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

SIGNIFICANT_DIGITS = 4


WORST_IS_MAX = ("max_abs", "max_abs_rel", "mean_abs", "p99_abs", "rel_l2")


WORST_IS_MIN = ("cosine", "argmax_agreement", "topk_overlap")


SUMMED = ("argmax_mismatches", "nonfinite_in_variant", "nonfinite_in_reference")


NONFINITE_COUNTS = ("nonfinite_in_variant", "nonfinite_in_reference")


OUTPUT_STATS = (*WORST_IS_MAX, *WORST_IS_MIN, *SUMMED)


# Corpus totals of the sequence check whose word/character error counts are read as rates,
# under the names baselines use (``wer:+0.5pp``).
SEQUENCE_RATES = {
    "wer_vs_reference": "wer",
    "cer_vs_reference": "cer",
    "wer_vs_truth": "wer_vs_truth",
    "reference_wer_vs_truth": "reference_wer_vs_truth",
    "cer_vs_truth": "cer_vs_truth",
    "reference_cer_vs_truth": "reference_cer_vs_truth",
}


def scalar_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level numbers and booleans of a check's details (nested values stay in records)."""
    return {
        key: value
        for key, value in details.items()
        if isinstance(value, bool) or is_finite_number(value)
    }


def sequence_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """Corpus totals of a ``sequence`` check: clips, transcript matches, token edits, WER/CER,
    against the reference it was gated on; under ``against``, the same against every other
    reference it was reported against (``{"pytorch": {...}}``)."""
    numbers = _corpus_numbers(details.get("corpus") or {})
    others = {
        name: _corpus_numbers(other.get("corpus") or {})
        for name, other in (details.get("against") or {}).items()
        if isinstance(other, Mapping)
    }
    if others:
        numbers["against"] = others
    return numbers


def _corpus_numbers(corpus: Mapping[str, Any]) -> dict[str, Any]:
    numbers = _sequence_counts(corpus)
    clips, mismatched = numbers.get("clips"), numbers.get("transcript_mismatched_clips")
    if isinstance(clips, int) and isinstance(mismatched, int):
        numbers["transcripts_matching"] = clips - mismatched
    return numbers


def clip_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """One clip of a ``sequence-clip`` check: its WER/CER, token edits and matches (and under
    ``against`` the same against every other reference)."""
    numbers = _sequence_counts(details.get("clip") or {})
    others = {
        name: _sequence_counts(other.get("clip") or {})
        for name, other in (details.get("against") or {}).items()
        if isinstance(other, Mapping)
    }
    if others:
        numbers["against"] = others
    return numbers


def sequence_about(details: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``sequence`` number is measured against and how: the reference, the clip source,
    the text normalisation (strings for the card, not numbers)."""
    about = {
        key: details[key]
        for key in ("reference", "reference_label", "clip_source", "tier")
        if isinstance(details.get(key), str)
    }
    normalization = details.get("normalization") or {}
    if isinstance(normalization.get("description"), str):
        about["normalization"] = normalization["description"]
    if isinstance(details.get("files"), Mapping):
        about["files"] = dict(details["files"])
    if isinstance(details.get("dataset"), Mapping):
        about["dataset"] = dict(details["dataset"])
    return about


def _sequence_counts(counts: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers and booleans as they are; word/character error counts as their rate."""
    numbers: dict[str, Any] = {}
    for key, value in counts.items():
        if isinstance(value, Mapping):
            if key in SEQUENCE_RATES and is_finite_number(value.get("rate")):
                numbers[SEQUENCE_RATES[key]] = value["rate"]
        elif isinstance(value, bool) or is_finite_number(value):
            numbers[key] = value
    return numbers


def timing_numbers(details: Mapping[str, Any]) -> dict[str, Any]:
    """A ``latency`` or ``rtf`` check: the median figure under its metric's name
    (``latency_ms``, ``rtf``), the reference's figure, the ratio to it (the median of the
    interleaved pairs, with their IQR, when it was timed in pairs), the rounds and the threads."""
    measurement = details.get("measurement") or {}
    metric, value = measurement.get("metric"), measurement.get("value")
    if not isinstance(metric, str) or not is_finite_number(value):
        return scalar_numbers(details)
    numbers: dict[str, Any] = {metric: value}
    reference = (details.get("reference") or {}).get("value")
    if is_finite_number(reference):
        numbers[f"reference_{metric}"] = reference
        if reference:
            numbers["vs_reference"] = value / reference
    paired = details.get("paired") or {}
    if is_finite_number(paired.get("median")):
        numbers["vs_reference"] = paired["median"]
        if is_finite_number(paired.get("iqr")):
            numbers["vs_reference_iqr"] = paired["iqr"]
    for key in ("repeats", "warmup"):
        if is_finite_number(measurement.get(key)):
            numbers[key] = measurement[key]
    threads = (details.get("context") or {}).get("intra_op_threads")
    if is_finite_number(threads):
        numbers["intra_op_threads"] = threads
    return numbers


CHECK_NUMBERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "sequence": sequence_numbers,
    "sequence-clip": clip_numbers,
    "latency": timing_numbers,
    "rtf": timing_numbers,
}


def check_numbers(check: str, details: Mapping[str, Any]) -> dict[str, Any]:
    return CHECK_NUMBERS.get(check, scalar_numbers)(details)


def timing_about(details: Mapping[str, Any]) -> dict[str, Any]:
    """How a timing was measured: the budgets it was held to, the timer, whether the reference
    was timed in interleaved rounds."""
    about: dict[str, Any] = {}
    budgets = [b.get("budget") for b in details.get("budgets") or () if isinstance(b, Mapping)]
    if budgets:
        about["budgets"] = ", ".join(str(budget) for budget in budgets)
    timer = (details.get("measurement") or {}).get("timer")
    if isinstance(timer, str):
        about["timer"] = timer
    if details.get("paired"):
        about["paired"] = "interleaved rounds, median pairwise ratio"
    if isinstance(details.get("not_enforced"), str):
        about["not_enforced"] = details["not_enforced"]
    return about


CHECK_ABOUT: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "sequence": sequence_about,
    "sequence-clip": sequence_about,
    "latency": timing_about,
    "rtf": timing_about,
}


def check_about(check: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """The strings that say what a check's numbers are measured against (may be empty)."""
    reader = CHECK_ABOUT.get(check)
    return {} if reader is None else reader(details)


def round_number(metric: str, value: Any) -> Any:
    """4 significant digits; for cosine-like rates, 4 significant digits of ``1 - value``."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return value
    if metric in WORST_IS_MIN and 0.0 < value < 1.0:
        distance = 1.0 - value
        return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(distance)))
    if value == 0.0:
        return 0.0
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def is_finite_number(value: object) -> bool:
    """An int or float that is finite (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
