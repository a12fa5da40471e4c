"""Weight-space parity reads each weight once and streams (benchmarks/weight_streaming.py).

Counted, not timed: the reads of tensor bytes from the model files, and the memory numpy and
Python allocate while ``compare_weights`` runs (tracemalloc). The benchmark measures the peak
resident memory on a 336 MB model (docs/weights.md); these tests hold the property on small
chains, where reading the whole model into memory would show as a peak the size of the file.
"""

from __future__ import annotations

import importlib.util
import tracemalloc
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from pytest_onnxparity import compare_weights
from pytest_onnxparity.onnxfile import streamed
from tests.paths import REPO

WIDTH = 96  # a 36 KB float32 weight, a 9 KB int8 one: both read from the file when needed


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "weight_streaming", REPO / "benchmarks" / "weight_streaming.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def traced_peak(reference: Path, variant: Path) -> int:
    compare_weights(reference, variant, file_tier="int8")  # imports, outside the measurement
    tracemalloc.start()
    try:
        assert compare_weights(reference, variant, file_tier="int8").passed
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_each_weight_is_read_from_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, variant = load_benchmark().build_pair(tmp_path, layers=12, width=WIDTH)
    reads: Counter[tuple[str, int]] = Counter()
    read_bytes: Counter[str] = Counter()
    read_span = streamed.read_span

    def counted(path: Path, offset: int, target: memoryview) -> None:
        reads[(path.name, offset)] += 1
        read_bytes[path.name] += len(target)
        read_span(path, offset, target)

    monkeypatch.setattr(streamed, "read_span", counted)

    report = compare_weights(reference, variant, file_tier="int8")

    assert report.passed and len(report.comparisons) == 12
    # Each reference weight and each variant int8 tensor: one read each, no tensor twice.
    assert Counter(name for name, _ in reads) == {"model.onnx": 12, "model_int8.onnx": 12}
    assert set(reads.values()) == {1}
    assert read_bytes["model.onnx"] == 12 * WIDTH * WIDTH * 4
    assert read_bytes["model_int8.onnx"] == 12 * WIDTH * WIDTH


def test_memory_follows_the_largest_weight_not_the_model(tmp_path: Path) -> None:
    build_pair = load_benchmark().build_pair
    small = build_pair(tmp_path / "small", layers=10, width=WIDTH)
    large = build_pair(tmp_path / "large", layers=40, width=WIDTH)
    small_model, large_model = small[0].stat().st_size, large[0].stat().st_size

    small_peak, large_peak = traced_peak(*small), traced_peak(*large)

    # Four times the weights: the peak grows by their bookkeeping (names, records), not by their
    # bytes, and stays well under the model (reading the file whole makes it the file's size).
    assert large_peak - small_peak < 0.15 * (large_model - small_model)
    assert large_peak < 0.5 * large_model


def test_external_data_is_read_from_its_sidecar_one_tensor_at_a_time(tmp_path: Path) -> None:
    reference, variant = load_benchmark().build_pair(
        tmp_path, layers=40, width=WIDTH, external=True
    )
    peak = traced_peak(reference, variant)

    sidecar = (tmp_path / "model.onnx.data").stat().st_size
    assert peak < 0.5 * sidecar
