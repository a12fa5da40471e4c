"""The wire-format scan finds exactly the external-data locations onnx itself would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.onnxfile.protoscan import ProtoScanError, scan_format, scan_model
from tests.paths import EXAMPLE


def external(name: str, location: str, shape: tuple[int, ...] = (2,)) -> TensorProto:
    """A float tensor whose data lives in ``location`` (the file need not exist to be scanned)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def onnx_locations(model: onnx.ModelProto) -> set[str]:
    """What onnx's own helper reports (the ground truth the scan must match)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return {
        entry.value
        for tensor in _get_all_tensors(model)
        if uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def model_with_tensors_everywhere() -> onnx.ModelProto:
    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=external("then_w", "then.bin"))],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
        initializer=[external("else_w", "else.bin")],
    )
    sparse = helper.make_sparse_tensor(
        external("sparse_values", "sparse.bin"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "sparse_indices"),
        [2],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Constant", [], ["c"], value=external("const_w", "const.bin")),
        helper.make_node("Constant", [], ["s"], sparse_value=sparse),
        helper.make_node("Scale", ["y"], ["z"], domain="local"),
    ]
    inline = numpy_helper.from_array(np.ones(3, dtype=np.float32), "inline_w")
    graph = helper.make_graph(
        nodes,
        "main",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        initializer=[external("w", "weights.bin"), inline],
    )
    function = helper.make_function(
        "local",
        "Scale",
        ["x"],
        ["out"],
        [helper.make_node("Constant", [], ["k"], value=external("fn_w", "function.bin"))],
        [helper.make_opsetid("", 17)],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[function],
    )


def test_every_place_a_tensor_can_live_is_scanned_like_onnx_does(tmp_path: Path) -> None:
    model = model_with_tensors_everywhere()
    expected = onnx_locations(model)

    scan = scan_model(save(model, tmp_path / "model.onnx"))

    # onnx's helper does not walk sparse tensors; their values can live in a sidecar too, so the
    # scan (like discovery before it) names that file as well.
    assert set(scan.external_data_locations) == expected | {"sparse.bin"}
    assert expected >= {"weights.bin", "then.bin", "else.bin", "const.bin", "function.bin"}
    assert scan.has_graph and scan.has_opset_import


def test_external_entries_without_the_external_flag_are_ignored(tmp_path: Path) -> None:
    tensor = external("w", "stale.bin")
    tensor.data_location = TensorProto.DEFAULT
    graph = helper.make_graph([], "g", [], [], initializer=[tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    scan = scan_model(save(model, tmp_path / "model.onnx"))

    assert scan.external_data_locations == ()
    assert onnx_locations(model) == set()


def test_a_model_saved_by_onnx_with_a_sidecar_names_it(tmp_path: Path) -> None:
    weights = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="model.onnx.data")

    assert scan_model(path).external_data_locations == ("model.onnx.data",)


@pytest.mark.parametrize(
    "payload",
    [
        b"version https://git-lfs.github.com/spec/v1\n",  # a Git LFS pointer
        b"\x3a\xff\xff\xff\xff\x0f",  # a length far past the end
        b"\x08",  # a varint cut short
        b"\x00\x01",  # field number 0
    ],
)
def test_bytes_that_are_not_a_protobuf_raise(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(payload)

    with pytest.raises(ProtoScanError):
        scan_model(path)


def test_a_model_cut_between_fields_reports_what_is_missing(tmp_path: Path) -> None:
    model = model_with_tensors_everywhere()
    graph_only = onnx.ModelProto(ir_version=model.ir_version)
    graph_only.graph.CopyFrom(model.graph)

    scan = scan_model(save(graph_only, tmp_path / "model.onnx"))

    assert scan.has_graph and not scan.has_opset_import


def test_scanning_imports_neither_onnx_nor_numpy() -> None:
    code = (
        "import sys; from pytest_onnxparity.onnxfile import protoscan;"
        "from pytest_onnxparity.export import discovery;"
        "print([m for m in ('onnx', 'numpy', 'google.protobuf') if m in sys.modules])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def onnx_signature(path: Path) -> tuple[tuple[object, ...], tuple[object, ...]]:
    from pytest_onnxparity.onnxfile.signature import TensorSpec

    model = onnx.load(path, load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return (
        tuple(
            TensorSpec.from_value_info(v) for v in model.graph.input if v.name not in initializers
        ),
        tuple(TensorSpec.from_value_info(v) for v in model.graph.output),
    )


def test_signatures_read_without_onnx_match_onnx_own_reading(tmp_path: Path) -> None:
    from pytest_onnxparity.onnxfile.signature import read_signature

    unnamed = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", None, 3])
    negative = helper.make_tensor_value_info("n", TensorProto.INT64, [-1])
    unshaped = helper.make_tensor_value_info("s", TensorProto.BOOL, None)
    weight = numpy_helper.from_array(np.ones(3, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [unnamed, negative, unshaped, helper.make_tensor_value_info("w", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", None, 3])],
        initializer=[weight],
    )
    path = save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"
    )
    examples = sorted((EXAMPLE).glob("*.onnx"))

    for model in [path, *examples]:
        assert read_signature(str(model)) == onnx_signature(model), model
    inputs, _ = read_signature(str(path))
    assert [spec.name for spec in inputs] == ["x", "n", "s"]  # the initializer input is left out
    assert inputs[1].shape == (-1,) and inputs[2].shape is None


def _chain(*nodes: onnx.NodeProto, outputs: tuple[str, ...] = ("z",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in outputs],
        initializer=[numpy_helper.from_array(np.ones(2, dtype=np.float32), "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("nodes", "outputs", "problem"),
    [
        (
            [helper.make_node("Add", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
            ("z",),
            None,
        ),
        (
            [helper.make_node("Relu", ["y"], ["z"]), helper.make_node("Add", ["x", "w"], ["y"])],
            ("z",),
            "node 0 (Relu) reads 'y' before Add makes it: the nodes are not in topological order",
        ),
        (
            [helper.make_node("Relu", ["nowhere"], ["z"], name="r")],
            ("z",),
            "node 0 (Relu 'r') reads 'nowhere', which no node, input or initializer makes",
        ),
        (
            [helper.make_node("Relu", ["x"], ["z"])],
            ("z", "lost"),
            "graph output 'lost' is made by no node, input or initializer",
        ),
        (
            [helper.make_node("Clip", ["x", "", "w"], ["z"])],  # "" is an omitted optional input
            ("z",),
            None,
        ),
    ],
    ids=["in-order", "out-of-order", "dangling-input", "dangling-output", "optional-input"],
)
def test_the_scan_finds_how_the_main_graph_is_miswired(
    tmp_path: Path, nodes: list[onnx.NodeProto], outputs: tuple[str, ...], problem: str | None
) -> None:
    scan = scan_model(save(_chain(*nodes, outputs=outputs), tmp_path / "model.onnx"))

    assert scan.wiring_problem == problem


def test_subgraphs_may_read_outer_values_and_every_example_is_well_wired(tmp_path: Path) -> None:
    scan = scan_model(save(model_with_tensors_everywhere(), tmp_path / "model.onnx"))

    assert scan.wiring_problem is None
    for path in sorted(EXAMPLE.glob("*.onnx")):
        assert scan_model(path).wiring_problem is None, path


def test_the_format_scan_reads_ir_version_opsets_producer_and_ops_per_domain(
    tmp_path: Path,
) -> None:
    model = model_with_tensors_everywhere()
    model.producer_name, model.producer_version = "pytorch", "2.13.0"
    model.ir_version = 8

    found = scan_format(save(model, tmp_path / "model.onnx")).to_json()

    assert found["ir_version"] == 8
    assert (found["opset"], found["opset_imports"]) == (17, {"ai.onnx": 17, "local": 1})
    assert found["producer"] == "pytorch 2.13.0"
    # Subgraph and local-function nodes are counted; the custom domain stands apart.
    assert found["ops_by_domain"] == {
        "ai.onnx": {"Constant": 4, "Identity": 1, "If": 1},
        "local": {"Scale": 1},
    }


def test_the_format_of_the_example_int4_file_names_its_com_microsoft_ops() -> None:
    found = scan_format(EXAMPLE / "encoder.int4.onnx").to_json()
    reference = scan_format(EXAMPLE / "encoder.onnx").to_json()
    assert found["ops_by_domain"]["com.microsoft"] == {"MatMulNBits": 3}
    assert list(reference["ops_by_domain"]) == ["ai.onnx"]
    onnx_model = onnx.load(str(EXAMPLE / "encoder.onnx"), load_external_data=False)
    assert reference["ir_version"] == onnx_model.ir_version
    assert sum(reference["ops_by_domain"]["ai.onnx"].values()) == len(onnx_model.graph.node)
