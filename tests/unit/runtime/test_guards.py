"""Inputs too large to allocate are refused; an endless inference is stopped; a crash names
the model file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.runtime.inputs import InputError, check_input_budget
from pytest_onnxparity.runtime.sessions import ModelLoadError, SessionSettings, open_session
from tests.onnx_models import endless_loop_model


def test_an_input_set_over_the_budget_names_the_dim_and_the_option() -> None:
    spec = TensorSpec("features", "float32", ("batch", "frames", 16))
    shapes = {"features": (1, 10**11, 16)}

    with pytest.raises(InputError) as error:
        check_input_budget("encoder", [spec], shapes, {"batch": 1, "frames": 10**11}, 10**9)

    assert "--parity-dim NAME=SIZE (now batch=1, frames=100000000000)" in str(error.value)
    check_input_budget("encoder", [spec], {"features": (1, 16, 16)}, {"frames": 16}, 10**9)


def test_a_static_shape_over_the_budget_asks_for_real_inputs() -> None:
    spec = TensorSpec("pixels", "float32", (1, 3, 10**11, 16))

    with pytest.raises(InputError, match="its shape is static: supply real inputs"):
        check_input_budget("classifier", [spec], {"pixels": (1, 3, 10**11, 16)}, {}, 10**9)


def _endless_loop(path: Path) -> Path:
    onnx.save(endless_loop_model(), str(path))
    return path


@pytest.mark.parametrize("free_arena", [False, True])
def test_an_endless_inference_is_stopped_at_the_limit(tmp_path: Path, free_arena: bool) -> None:
    runner = open_session(_endless_loop(tmp_path / "loop.onnx"), SessionSettings(run_timeout_s=0.3))

    with pytest.raises(ModelLoadError, match=r"loop\.onnx: inference ran past the 0\.3 s limit"):
        runner.run({"x": np.zeros(1, np.float32)}, free_arena=free_arena)


def test_a_native_crash_names_the_model_being_loaded(tmp_path: Path) -> None:
    script = (
        "import ctypes\n"
        "from pytest_onnxparity.runtime.crash_names import call_naming\n"
        "call_naming('/exports/model_fp16.onnx', 'loading', ctypes.string_at, 0)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "<onnxparity loading /exports/model_fp16.onnx>" in completed.stderr
