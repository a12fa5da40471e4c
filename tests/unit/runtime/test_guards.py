"""Inputs too large to allocate are refused; an endless inference is stopped; a crash names
the model file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.runtime.inputs import InputError, check_input_budget
from pytest_onnxparity.runtime.sessions import ModelLoadError, SessionSettings, open_session


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
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1]),
        ],
        initializer=[numpy_helper.from_array(np.array([1.0], np.float32), "one")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[
            numpy_helper.from_array(np.array(2**62, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
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
