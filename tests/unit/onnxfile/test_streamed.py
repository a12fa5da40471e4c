"""load_streamed keeps a model's structure and reads each inline tensor as onnx.load would."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.onnxfile.dequantize import TensorReadError, read_array
from pytest_onnxparity.onnxfile.graph import GraphIndex
from pytest_onnxparity.onnxfile.protoscan import ProtoScanError
from pytest_onnxparity.onnxfile.streamed import DEFERRED_MIN_BYTES, is_deferred, load_streamed

ELEMENTS = 4096  # every type below takes at least DEFERRED_MIN_BYTES at this size


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    floats = rng.standard_normal(ELEMENTS)
    return {
        "float32": floats.astype(np.float32).reshape(64, 64),
        "float64": floats.reshape(4, 1024),
        "float16": floats.astype(np.float16),
        "bfloat16": floats.astype(ml_dtypes.bfloat16),
        "int8": rng.integers(-128, 128, ELEMENTS, dtype=np.int8),
        "uint8": rng.integers(0, 256, ELEMENTS, dtype=np.uint8),
        "int4": rng.integers(-8, 8, 2 * DEFERRED_MIN_BYTES).astype(ml_dtypes.int4),
        "int64": rng.integers(-(2**40), 2**40, ELEMENTS, dtype=np.int64),
        "bool": rng.integers(0, 2, DEFERRED_MIN_BYTES).astype(bool),
        "small": floats[:8].astype(np.float32),
    }


def model_with_weights_everywhere() -> onnx.ModelProto:
    """Initializers of many types, a large Constant in an If branch, a small one beside it."""
    values = arrays()
    initializers = [numpy_helper.from_array(array, name) for name, array in values.items()]
    branch_value = numpy_helper.from_array(values["float32"] * 2, "branch_w")
    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=branch_value)],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [64, 64])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["float32"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [64, 64])],
    )
    nodes = [
        helper.make_node("If", ["flag"], ["out"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(values["small"])),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [64, 64])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save_model(model_with_weights_everywhere(), str(path))
    return path


def test_every_tensor_reads_the_same_values_as_from_onnx_load(model_path: Path) -> None:
    streamed = GraphIndex.of(load_streamed(model_path), constants=True)
    loaded = GraphIndex.of(onnx.load(str(model_path)), constants=True)

    assert list(streamed.initializers) == list(loaded.initializers)
    for name, tensor in loaded.initializers.items():
        expected = read_array(tensor, model_path.parent)
        actual = read_array(streamed.initializers[name], model_path.parent)
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
        assert np.array_equal(actual.view(np.uint8), expected.view(np.uint8)), name


def test_large_tensors_stay_in_the_file_and_small_ones_in_the_structure(
    model_path: Path,
) -> None:
    model = load_streamed(model_path)
    index = GraphIndex.of(model, constants=True)

    deferred = {name for name, tensor in index.initializers.items() if is_deferred(tensor)}
    assert deferred == set(arrays()) - {"small"} | {"t"}  # "t": the If branch's Constant
    assert model.ByteSize() < model_path.stat().st_size / 20
    assert [node.op_type for node in model.graph.node] == ["If", "Constant"]


def test_tensors_in_external_data_are_left_to_their_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save_model(
        model_with_weights_everywhere(),
        str(path),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    index = GraphIndex.of(load_streamed(path), constants=True)

    tensor = index.initializers["float32"]
    assert tensor.data_location == TensorProto.EXTERNAL and not is_deferred(tensor)
    assert np.array_equal(read_array(tensor, tmp_path), arrays()["float32"])


def test_a_model_file_cut_short_after_loading_names_the_tensor(model_path: Path) -> None:
    index = GraphIndex.of(load_streamed(model_path), constants=True)
    with model_path.open("r+b") as handle:
        handle.truncate(100)

    with pytest.raises(TensorReadError, match=r"cannot read tensor 'bool' .*run again"):
        read_array(index.initializers["bool"], model_path.parent)


def test_a_file_that_is_no_protobuf_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")

    with pytest.raises(ProtoScanError, match=r"model\.onnx: not a readable ONNX protobuf"):
        load_streamed(path)
