"""Whichever ONNX Runtime distribution is installed is used; none installed is one line."""

from __future__ import annotations

import sys

import pytest

from pytest_onnxparity.runtime.ort import (
    MISSING,
    OnnxRuntimeMissingError,
    import_onnxruntime,
    require_onnxruntime,
)


def test_the_installed_onnxruntime_is_found_and_imported() -> None:
    require_onnxruntime()
    assert import_onnxruntime() is sys.modules["onnxruntime"]


def test_no_onnxruntime_is_one_line_naming_the_cpu_and_gpu_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an uninstalled module looks like

    with pytest.raises(OnnxRuntimeMissingError) as missing:
        require_onnxruntime()
    with pytest.raises(OnnxRuntimeMissingError):
        import_onnxruntime()

    assert str(missing.value) == MISSING
    assert "\n" not in MISSING
    assert "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)" in MISSING
