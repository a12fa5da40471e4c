"""The terminal tables: a parity record's worst gate with a value that tells it from its limit,
and the line that suspects a reference every variant disagrees with."""

from __future__ import annotations

from typing import Any

from pytest_onnxparity.results.terminal import summary_lines, suspect_reference_lines


def parity_record(
    graph: str, variant: str, gates: list[dict[str, Any]], cosines: list[float]
) -> dict[str, Any]:
    return {
        "kind": "parity",
        "graph": graph,
        "variant": variant,
        "tier": variant,
        "input_set": {"name": "default"},
        "passed": all(gate["passed"] for gate in gates),
        "error": None,
        "parity": {
            "gates": gates,
            "outputs": [{"output": f"y{i}", "cosine": c} for i, c in enumerate(cosines)],
        },
    }


def gate(metric: str, value: float, limit: float, passed: bool) -> dict[str, Any]:
    return {"output": "y", "metric": metric, "value": value, "limit": limit, "passed": passed}


def test_the_worst_gate_shows_the_digits_that_tell_value_and_limit_apart() -> None:
    records = [
        parity_record("g", "fp16", [gate("min_cosine", 0.99999874, 0.99999, True)], [1.0]),
        parity_record("g", "int8", [gate("min_argmax_agreement", 0.805, 1.0, False)], [0.9]),
        parity_record("g", "int4", [gate("min_cosine", 0.99989, 0.9999, False)], [0.99989]),
    ]
    rows = summary_lines(records)[2:]
    assert [row.split("  ")[-1].strip() for row in rows] == [
        "y.min_cosine 0.999999 >= 0.99999",  # was "y.min_cosine 1 >= 1"
        "y.min_argmax_agreement 0.805 >= 1",
        "y.min_cosine 0.99989 >= 0.9999",  # was "1 >= 1" for a failing gate
    ]


def test_a_reference_every_variant_disagrees_with_is_the_suspect() -> None:
    unrelated = [gate("min_cosine", 0.02, 0.99, False)]
    records = [parity_record("encoder", tag, unrelated, [0.02, -0.3]) for tag in ("fp16", "int8")]
    assert suspect_reference_lines(records) == [
        "every variant of encoder fails with cosine <= 0.5 on every output (at most 0.02): the "
        "reference is the suspect (weights not loaded? inputs mapped to the wrong arguments?), "
        "not the variants"
    ]


def test_one_unrelated_variant_among_drifting_ones_leaves_the_reference_alone() -> None:
    records = [
        parity_record("encoder", "fp16", [gate("min_cosine", 0.02, 0.99, False)], [0.02]),
        parity_record("encoder", "int8", [gate("min_cosine", 0.9, 0.99, False)], [0.9]),
    ]
    assert suspect_reference_lines(records) == []
