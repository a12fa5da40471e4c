"""The graph index: who reads a tensor, looking through ops that pass a weight on unchanged."""

from __future__ import annotations

from onnx import TensorProto, helper

from pytest_onnxparity.onnxfile.graph import GraphIndex


def weight_read_through_a_transpose_and_a_dequantize() -> GraphIndex:
    weight = helper.make_tensor("w", TensorProto.INT8, [2, 2], [1, 2, 3, 4])
    nodes = [
        helper.make_node("Transpose", ["w"], ["w_t"], name="transpose"),
        helper.make_node("DequantizeLinear", ["w_t", "scale"], ["w_f"], name="dequantize"),
        helper.make_node("MatMul", ["x", "w_f"], ["y"], name="matmul"),
        helper.make_node("Add", ["w", "x"], ["z"], name="add"),
    ]
    graph = helper.make_graph(nodes, "g", [], [], initializer=[weight])
    return GraphIndex.of(helper.make_model(graph))


def test_reads_look_through_pass_through_ops_but_not_dequantize_unless_asked() -> None:
    index = weight_read_through_a_transpose_and_a_dequantize()
    assert sorted((node.name, slot) for node, slot in index.reads("w")) == [
        ("add", 0),
        ("dequantize", 0),
    ]
    through = index.reads("w", through_dequantize=True)
    assert sorted((node.name, slot) for node, slot in through) == [("add", 0), ("matmul", 1)]


def test_final_users_are_the_op_types_behind_dequantize_and_pass_through_ops() -> None:
    assert weight_read_through_a_transpose_and_a_dequantize().final_users("w") == {"MatMul", "Add"}
