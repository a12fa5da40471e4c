"""Benchmark probe, loaded with ``-p phase_timer``: where a plugin run's time goes.

Writes ``$BENCH_PHASES`` (JSON) at the end of the run: wall and CPU seconds (``process_time``
counts every thread, onnxruntime's included) of pytest's phases, and within the tests the time
spent building sessions, running them, comparing outputs, making the input sets (synthesis, the
token tables' scan, real inputs read from files) and checking weights (weight-space parity). It
wraps the plugin's functions by name and skips any name the plugin no longer has.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_wall: dict[str, float] = defaultdict(float)
_cpu: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_marks: dict[str, tuple[float, float]] = {}


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


# Time spent in timed calls made inside the timed call running now, one entry per level: each
# label gets its exclusive time (a session opened while inputs are made counts as sessions).
_inner: list[list[float]] = []


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = _now()
        _inner.append([0.0, 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            wall, cpu = _now()
            inner_wall, inner_cpu = _inner.pop()
            spent_wall, spent_cpu = wall - start[0], cpu - start[1]
            _wall[name] += spent_wall - inner_wall
            _cpu[name] += spent_cpu - inner_cpu
            _calls[name] += 1
            if _inner:
                _inner[-1][0] += spent_wall
                _inner[-1][1] += spent_cpu

    return wrapper


def _wrap(module_name: str, owner_path: str, attribute: str, label: str) -> None:
    import importlib

    owner: Any = importlib.import_module(module_name)
    for part in filter(None, owner_path.split(".")):
        owner = getattr(owner, part, None)
        if owner is None:
            return
    if hasattr(owner, attribute):
        setattr(owner, attribute, _timed(label, getattr(owner, attribute)))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _marks["configure_start"] = _now()
    # Session building, inference and comparison inside the generated tests.
    _wrap("pytest_onnxparity.runtime.sessions", "", "open_session", "sessions")
    _wrap("pytest_onnxparity.runtime.sessions", "OnnxRunner", "run", "inference")
    _wrap("pytest_onnxparity.run.engine", "", "compare", "compare")
    _wrap("pytest_onnxparity.run.graph_inputs", "GraphInputs", "_synthesized", "inputs")
    _wrap("pytest_onnxparity.run.graph_inputs", "", "read_input_data", "inputs")
    _wrap("pytest_onnxparity.diagnose.weights", "", "weights_check", "weights")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    _marks["collection_start"] = _now()
    try:
        return (yield)
    finally:
        _marks["collection_end"] = _now()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    _marks["tests_start"] = _now()
    try:
        return (yield)
    finally:
        _marks["tests_end"] = _now()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    end = _now()
    marks = {**_marks, "end": end}

    def span(first: str, last: str) -> dict[str, float]:
        if first not in marks or last not in marks:
            return {"wall_s": 0.0, "cpu_s": 0.0}
        return {
            "wall_s": marks[last][0] - marks[first][0],
            "cpu_s": marks[last][1] - marks[first][1],
        }

    document = {
        # From interpreter start: Python, pytest and every plugin imported and parsed.
        "until_configure": {"cpu_s": marks["configure_start"][1]},
        # Every plugin's pytest_configure (ours: import onnx, discover the folder), session start.
        "configure": span("configure_start", "collection_start"),
        "collection": span("collection_start", "collection_end"),
        "tests": span("tests_start", "tests_end"),
        "finish": span("tests_end", "end"),
        "inside_tests": {
            name: {"wall_s": _wall[name], "cpu_s": _cpu[name], "calls": _calls[name]}
            for name in ("sessions", "inference", "compare", "inputs", "weights")
        },
    }
    path = os.environ.get("BENCH_PHASES")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
