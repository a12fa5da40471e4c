"""Tests for the model kit in fixtures/: tiny models, their exports and onnxruntime variants."""

from __future__ import annotations

from pathlib import Path

import make_example
import modelkit
import numpy as np
import onnx
import pytest

ALL_MODELS = tuple(modelkit.MODELS)
ALL_VARIANTS = ("fp32", "fp16", "int8", "int4", "qdq")
COMMITTED_EXAMPLE = Path(make_example.__file__).parent / "example"


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kit model with every variant, built once per session."""
    return modelkit.make_export_folder(
        tmp_path_factory.mktemp("exports"), models=ALL_MODELS, variants=ALL_VARIANTS
    )


def model_path(export_dir: Path, model: str, variant: str = "fp32") -> Path:
    return export_dir / modelkit.variant_filename(model, variant)


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(path).graph.node}


def torch_inputs(model: str) -> dict[str, np.ndarray]:
    module = modelkit.build_model(model)
    return {name: tensor.numpy() for name, tensor in module.example_inputs(seed=3).items()}


@pytest.mark.parametrize("model", ALL_MODELS)
def test_fp32_export_matches_torch_within_1e_4(export_dir: Path, model: str) -> None:
    inputs = torch_inputs(model)
    expected = modelkit.reference_outputs(modelkit.build_model(model), inputs)
    actual = modelkit.run_onnx(model_path(export_dir, model), inputs)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=0, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("variant", ALL_VARIANTS[1:])
@pytest.mark.parametrize("model", ALL_MODELS)
def test_variant_keeps_io_names_and_runs_close_to_fp32(
    export_dir: Path, model: str, variant: str
) -> None:
    fp32 = onnx.load(model_path(export_dir, model))
    path = model_path(export_dir, model, variant)
    assert modelkit.io_names(onnx.load(path)) == modelkit.io_names(fp32)
    inputs = modelkit.signature_inputs(path, seed=5)
    expected = modelkit.run_onnx(model_path(export_dir, model), inputs)
    actual = modelkit.run_onnx(path, inputs)
    for name, value in expected.items():
        assert actual[name].dtype == np.float32
        # Loose on purpose: this checks the variant is the same network, not its accuracy.
        np.testing.assert_allclose(actual[name], value, rtol=0, atol=0.1, err_msg=name)


@pytest.mark.parametrize(
    ("variant", "expected_ops"),
    [
        ("int8", {"MatMulInteger", "DynamicQuantizeLinear"}),
        ("int4", {"MatMulNBits"}),
        ("qdq", {"QuantizeLinear", "DequantizeLinear"}),
    ],
)
@pytest.mark.parametrize("model", ALL_MODELS)
def test_quantized_variant_contains_its_quantized_ops(
    export_dir: Path, model: str, variant: str, expected_ops: set[str]
) -> None:
    assert expected_ops <= op_types(model_path(export_dir, model, variant))


@pytest.mark.parametrize("model", ALL_MODELS)
def test_int4_variant_leaves_no_float_matmul(export_dir: Path, model: str) -> None:
    assert "MatMul" in op_types(model_path(export_dir, model))
    assert "MatMul" not in op_types(model_path(export_dir, model, "int4"))


@pytest.mark.parametrize("model", ALL_MODELS)
def test_fp16_variant_stores_float16_initializers_behind_float32_io(
    export_dir: Path, model: str
) -> None:
    graph = onnx.load(model_path(export_dir, model, "fp16")).graph
    initializer_types = {tensor.data_type for tensor in graph.initializer}
    assert onnx.TensorProto.FLOAT16 in initializer_types
    assert onnx.TensorProto.FLOAT not in initializer_types
    float_io = [v for v in [*graph.input, *graph.output] if v.name != "lengths"]
    assert {v.type.tensor_type.elem_type for v in float_io} == {onnx.TensorProto.FLOAT}


def test_exported_initializers_keep_module_parameter_names(export_dir: Path) -> None:
    names = {tensor.name for tensor in onnx.load(model_path(export_dir, "mlp")).graph.initializer}
    assert {"layers.0.weight", "layers.0.bias", "layers.4.weight"} <= names


def test_export_rejects_inputs_out_of_forward_order(tmp_path: Path) -> None:
    module = modelkit.TinyEncoder()
    inputs = module.example_inputs()
    swapped = {"lengths": inputs["lengths"], "features": inputs["features"]}
    with pytest.raises(ValueError, match=r"enc\.onnx: example_inputs keys .* must match"):
        modelkit.export_onnx(module, tmp_path / "enc.onnx", swapped, module.output_names)


def test_encoder_masks_frames_past_each_length(export_dir: Path) -> None:
    inputs = torch_inputs("encoder")
    inputs["lengths"] = np.array([10, 4], dtype=np.int64)
    hidden = modelkit.run_onnx(model_path(export_dir, "encoder"), inputs)["hidden"]
    assert np.all(hidden[0, 10:] == 0) and np.any(hidden[0, :10] != 0)
    assert np.all(hidden[1, 4:] == 0) and np.any(hidden[1, :4] != 0)


def test_external_data_lands_in_one_sidecar(export_dir: Path, tmp_path: Path) -> None:
    src = model_path(export_dir, "encoder")
    dst = modelkit.save_with_external_data(src, tmp_path / "encoder.onnx")
    sidecar = tmp_path / "encoder.onnx.data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.onnx", "encoder.onnx.data"]
    graph = onnx.load(dst, load_external_data=False).graph
    locations = {
        entry.value
        for tensor in graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    assert locations == {"encoder.onnx.data"}
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer)
    assert sidecar.stat().st_size > dst.stat().st_size
    inputs = torch_inputs("encoder")
    expected = modelkit.run_onnx(src, inputs)
    actual = modelkit.run_onnx(dst, inputs)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, atol=1e-7)


def test_external_data_rewrite_replaces_the_sidecar(export_dir: Path, tmp_path: Path) -> None:
    src = model_path(export_dir, "mlp")
    modelkit.save_with_external_data(src, tmp_path / "mlp.onnx", location="weights.bin")
    first = (tmp_path / "weights.bin").read_bytes()
    modelkit.save_with_external_data(src, tmp_path / "mlp.onnx", location="weights.bin")
    assert (tmp_path / "weights.bin").read_bytes() == first


@pytest.mark.parametrize(("mode", "factor"), [("zero", None), ("scale", None), ("noise", 0.5)])
def test_damaged_initializer_changes_outputs(
    export_dir: Path, tmp_path: Path, mode: str, factor: float | None
) -> None:
    src = model_path(export_dir, "classifier")
    dst = modelkit.damage_initializer(
        src, tmp_path / "damaged.onnx", "head.2.weight", mode=mode, factor=factor
    )
    inputs = torch_inputs("classifier")
    clean = modelkit.run_onnx(src, inputs)["logits"]
    damaged = modelkit.run_onnx(dst, inputs)["logits"]
    assert np.abs(damaged - clean).max() > 1e-3


def test_damage_without_a_match_lists_the_candidates(export_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"none float initializers match 'nope'.*layers\.0\.bias"):
        modelkit.damage_initializer(model_path(export_dir, "mlp"), tmp_path / "d.onnx", "nope")


def test_damage_with_several_matches_names_them(export_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"3 \(\[.*\]\) float initializers match 'weight'"):
        modelkit.damage_initializer(model_path(export_dir, "mlp"), tmp_path / "d.onnx", "weight")


def test_damage_zero_refuses_a_factor(export_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'zero' takes no factor"):
        modelkit.damage_initializer(
            model_path(export_dir, "mlp"), tmp_path / "d.onnx", "layers.0.weight", factor=3.0
        )


def test_export_folder_mixes_name_separators_like_real_folders(tmp_path: Path) -> None:
    root = modelkit.make_export_folder(tmp_path, variants=("fp32", "int8"))
    assert sorted(p.name for p in root.iterdir()) == [
        "classifier.onnx",
        "classifier_int8.onnx",
        "encoder.int8.onnx",
        "encoder.onnx",
    ]


def test_export_folder_rejects_unknown_variant(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown variants \['int3'\]"):
        modelkit.make_export_folder(tmp_path, variants=("fp32", "int3"))


def test_reference_npz_is_reproducible_and_loads(tmp_path: Path) -> None:
    inputs = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    outputs = {"logits": np.ones((2, 10), dtype=np.float32)}
    first = modelkit.save_reference_npz(tmp_path / "a.npz", inputs, outputs)
    second = modelkit.save_reference_npz(tmp_path / "b.npz", inputs, outputs)
    assert first.read_bytes() == second.read_bytes()
    with np.load(first) as data:
        assert data.files == ["input.x", "output.logits"]
        np.testing.assert_array_equal(data["input.x"], inputs["x"])


def onnx_structure(path: Path) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model without its weights, and the weights by name."""
    model = onnx.load(path)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    del model.graph.initializer[:]
    return model, weights


def assert_close_arrays(committed: np.ndarray, fresh: np.ndarray, where: str) -> None:
    """Equal up to the last bits a CPU's float kernels may change (and one rounding step of a
    quantized integer); shapes and dtypes exactly."""
    assert (committed.dtype, committed.shape) == (fresh.dtype, fresh.shape), where
    if np.issubdtype(committed.dtype, np.floating):
        np.testing.assert_allclose(fresh, committed, rtol=1e-5, atol=1e-6, err_msg=where)
    else:
        difference = np.abs(fresh.astype(np.int64) - committed.astype(np.int64))
        assert difference.max(initial=0) <= 1, where


def test_committed_example_is_up_to_date(tmp_path: Path) -> None:
    """Graph structure exactly, weights and recordings up to float-kernel noise: the bytes of a
    regenerated example differ between CPUs (AVX2 vs AVX-512 torch kernels)."""
    written = make_example.make_example(tmp_path)
    stale = "fixtures/example is stale: regenerate it with: python fixtures/make_example.py"
    for fresh_path in written:
        relative = fresh_path.relative_to(tmp_path)
        committed_path = COMMITTED_EXAMPLE / relative
        assert committed_path.exists(), f"{relative} missing; {stale}"
        if fresh_path.suffix == ".onnx":
            committed, committed_weights = onnx_structure(committed_path)
            fresh, fresh_weights = onnx_structure(fresh_path)
            assert committed == fresh, f"{relative}: graph differs; {stale}"
            assert list(committed_weights) == list(fresh_weights), f"{relative}; {stale}"
            pairs = [(n, committed_weights[n], fresh_weights[n]) for n in committed_weights]
        else:
            with np.load(committed_path) as old, np.load(fresh_path) as new:
                assert old.files == new.files, f"{relative}; {stale}"
                pairs = [(key, old[key], new[key]) for key in old.files]
        for name, old_array, new_array in pairs:
            assert_close_arrays(old_array, new_array, f"{relative}:{name}; {stale}")


def test_the_example_check_ignores_float_kernel_noise_but_not_a_changed_weight(
    tmp_path: Path,
) -> None:
    weight = np.linspace(-1, 1, 12, dtype=np.float32)
    assert_close_arrays(weight, weight + np.float32(6e-8), "noise")
    with pytest.raises(AssertionError):
        assert_close_arrays(weight, weight * np.float32(1.01), "changed")
    with pytest.raises(AssertionError):
        assert_close_arrays(np.int8([1, 2]), np.int8([1, 4]), "requantized")


def test_example_references_record_every_graph_input_and_output() -> None:
    for graph in make_example.EXAMPLE_MODELS:
        fp32 = onnx.load(COMMITTED_EXAMPLE / modelkit.variant_filename(graph, "fp32"))
        inputs, outputs = modelkit.io_names(fp32)
        with np.load(COMMITTED_EXAMPLE / "reference" / f"{graph}.npz") as data:
            assert data.files == [f"input.{n}" for n in inputs] + [f"output.{n}" for n in outputs]
            if graph == "encoder":
                assert data["input.features"].shape == (2, 50, 16)
