"""Benchmark probe, loaded with ``-p keep_sessions``: the engine never releases a graph's
sessions and arrays, to measure what releasing them saves. Not for real runs."""

from __future__ import annotations

from pytest_onnxparity.run.engine import ParityEngine


def _keep(self: ParityEngine, graph: object) -> None:
    return None


ParityEngine.release = _keep  # type: ignore[method-assign,assignment]
