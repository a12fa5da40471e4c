"""Reference kinds on tiny models built in this session: ONNX, another folder, other session
settings, a torch module, its TorchScript, checkpoints, recorded outputs, and upstream graphs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelkit
import numpy as np
import pytest
import torch
from torch import nn

from pytest_onnxparity.compare.parity import compare
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import tier_default
from pytest_onnxparity.onnxfile.signature import TensorSpec, read_signature
from pytest_onnxparity.references.base import (
    TORCH_EXTRA,
    ReferenceError,
    TorchMissingError,
    require_torch,
)
from pytest_onnxparity.references.callable import CallableReference
from pytest_onnxparity.references.config import (
    InputMapping,
    ReferenceSpec,
    UpstreamLink,
    parse_reference_layers,
    parse_reference_options,
)
from pytest_onnxparity.references.onnx import OnnxReference
from pytest_onnxparity.references.opening import open_reference
from pytest_onnxparity.references.recorded import (
    RecordedSet,
    read_recorded,
    write_npz,
    write_recorded,
)
from pytest_onnxparity.references.replay import RecordedReference, record_outputs
from pytest_onnxparity.references.settings import (
    ReferenceSettings,
    check_graph_names,
    recorded_path,
)
from pytest_onnxparity.references.torch_files import load_torch_checkpoint, load_torchscript
from pytest_onnxparity.run.real_inputs import (
    check_input_set,
    combine_input_sets,
    input_data_names,
    input_sets_from_hook,
    read_input_data,
    run_upstream,
)
from pytest_onnxparity.runtime.inputs import InputSet
from pytest_onnxparity.runtime.sessions import SessionSettings, open_session
from tests.paths import EXAMPLE, REPO
from tests.torch_models import TinyDecoder

ENCODER_INPUTS = ("features", "lengths")
ENCODER_OUTPUTS = ("hidden", "logits")
SETTINGS = SessionSettings()


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """encoder.onnx + encoder.int8.onnx + decoder.onnx, and the encoder's TorchScript."""
    root = modelkit.make_export_folder(
        tmp_path_factory.mktemp("exports"), models=("encoder",), variants=("fp32", "int8")
    )
    decoder = TinyDecoder()
    hidden = torch.zeros(2, 5, 32)
    modelkit.export_onnx(
        decoder,
        root / "decoder.onnx",
        {"encoder_hidden": hidden, "lengths": torch.tensor([5, 3])},
        ["scores"],
        dynamic_axes={"encoder_hidden": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}},
    )
    encoder = modelkit.build_model("encoder")
    traced = torch.jit.trace(encoder, tuple(encoder.example_inputs().values()))
    traced.save(str(root / "encoder.pt"))
    return root


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Second folders: an identical earlier release and one with retrained weights."""
    same = tmp_path_factory.mktemp("release-same")
    changed = tmp_path_factory.mktemp("release-changed")
    modelkit.export_model(modelkit.build_model("encoder", seed=0), same / "encoder.onnx")
    modelkit.export_model(modelkit.build_model("encoder", seed=1), changed / "encoder.onnx")
    return {"same": same, "changed": changed}


def encoder_set(name: str = "default", seed: int = 3, frames: int = 12) -> InputSet:
    arrays = {
        key: value.numpy()
        for key, value in modelkit.TinyEncoder().example_inputs(seed=seed, frames=frames).items()
    }
    return InputSet(name=name, source="test", seed=seed, dims={"frames": frames}, arrays=arrays)


def encoder_reference(exports: Path, spec: ReferenceSpec, **kwargs: Any) -> Any:
    return open_reference(
        spec,
        fp32_path=exports / "encoder.onnx",
        settings=SETTINGS,
        graph_inputs=ENCODER_INPUTS,
        graph_outputs=ENCODER_OUTPUTS,
        **kwargs,
    )


def gate(reference: dict[str, np.ndarray], path: Path, inputs: InputSet, tier: str) -> bool:
    variant = open_session(path, SETTINGS).run(inputs.arrays)
    return compare(reference, variant, lambda _: tier_default(tier)).passed


def callable_reference(function: Callable[..., Any], **kwargs: Any) -> CallableReference:
    kwargs.setdefault("graph_inputs", ENCODER_INPUTS)
    kwargs.setdefault("graph_outputs", ENCODER_OUTPUTS)
    return CallableReference(function, "test callable", **kwargs)


# --------------------------------------------------------------------------------------------
# ONNX references
# --------------------------------------------------------------------------------------------


def test_default_reference_is_the_graphs_own_fp32_file(exports: Path) -> None:
    reference = encoder_reference(exports, ReferenceSpec())
    assert reference.description == "onnx fp32 (encoder.onnx)"
    assert reference.input_sets() is None
    inputs = encoder_set()
    expected = modelkit.run_onnx(exports / "encoder.onnx", inputs.arrays)
    actual = reference.outputs(inputs)
    assert list(actual) == list(ENCODER_OUTPUTS)
    for name in ENCODER_OUTPUTS:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-6, atol=1e-7)
    assert gate(actual, exports / "encoder.int8.onnx", inputs, "int8")


def test_a_run_that_frees_its_arena_gives_the_same_outputs(exports: Path) -> None:
    runner = open_session(exports / "encoder.int8.onnx", SETTINGS)
    arrays = encoder_set("a").arrays

    freed = runner.run(arrays, free_arena=True)
    kept = runner.run(arrays)

    assert list(freed) == list(kept)
    for name in kept:
        np.testing.assert_allclose(freed[name], kept[name], rtol=1e-6, atol=1e-7)


def test_a_session_without_an_arena_runs_without_freeing_it(exports: Path) -> None:
    import onnxruntime as ort

    from pytest_onnxparity.runtime.sessions import OnnxRunner

    path = exports / "encoder.int8.onnx"
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False  # onnxruntime then refuses to shrink "cpu:0"
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    runner = OnnxRunner(path, SETTINGS, session)
    arrays = encoder_set("a").arrays

    freed = runner.run(arrays, free_arena=True)

    assert not runner.can_free_arena
    expected = open_session(path, SETTINGS).run(arrays)
    for name in expected:
        np.testing.assert_allclose(freed[name], expected[name], rtol=1e-6, atol=1e-7)


def test_onnx_reference_runs_each_input_set_once_and_reruns_changed_arrays(exports: Path) -> None:
    reference = OnnxReference(open_session(exports / "encoder.onnx", SETTINGS))
    first = encoder_set("a")
    reference.outputs(first)
    reference.outputs(first)
    assert reference.calls == 1
    reference.outputs(encoder_set("a", seed=4))
    assert reference.calls == 2


def test_other_dir_reference_is_the_same_file_name_in_the_second_folder(
    exports: Path, releases: dict[str, Path]
) -> None:
    inputs = encoder_set()
    same = encoder_reference(
        exports, ReferenceSpec(kind="other-dir"), reference_dir=releases["same"]
    )
    assert same.description == f"onnx {releases['same'].name}/ (encoder.onnx)"
    assert gate(same.outputs(inputs), exports / "encoder.onnx", inputs, "fp32")
    changed = encoder_reference(exports, ReferenceSpec(kind="other-dir", path=releases["changed"]))
    assert not gate(changed.outputs(inputs), exports / "encoder.onnx", inputs, "int8")


def test_other_dir_reference_without_the_file_names_it_and_the_fix(
    exports: Path, tmp_path: Path
) -> None:
    with pytest.raises(ReferenceError) as info:
        encoder_reference(exports, ReferenceSpec(kind="other-dir"), reference_dir=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'encoder.onnx'}: no such file in the reference folder; export "
        "encoder.onnx there or point --parity-reference-dir at the right release"
    )


def test_other_dir_reference_without_a_folder_asks_for_the_option(exports: Path) -> None:
    with pytest.raises(ReferenceError, match="pass --parity-reference-dir or set path"):
        encoder_reference(exports, ReferenceSpec(kind="other-dir"))


def test_provider_reference_runs_the_same_file_with_graph_optimisation_off(
    exports: Path,
) -> None:
    spec = ReferenceSpec(kind="provider", graph_optimization_level="disable")
    reference = encoder_reference(exports, spec)
    assert reference.description == "onnx opt=disable (encoder.onnx)"
    assert reference.runner.settings.graph_optimization_level == "disable"
    inputs = encoder_set()
    assert gate(reference.outputs(inputs), exports / "encoder.onnx", inputs, "fp32")


def test_provider_reference_under_the_variants_own_settings_is_refused(exports: Path) -> None:
    spec = ReferenceSpec(kind="provider", providers=("CPUExecutionProvider",))
    with pytest.raises(ReferenceError, match="compares the graph with itself"):
        encoder_reference(exports, spec)


def test_provider_reference_on_a_missing_provider_says_what_to_install(exports: Path) -> None:
    spec = ReferenceSpec(kind="provider", providers=("NoSuchExecutionProvider",))
    with pytest.raises(ReferenceError, match=r"^reference execution provider\(s\) .*install"):
        encoder_reference(exports, spec)


# --------------------------------------------------------------------------------------------
# Callable references: torch modules and plain callables
# --------------------------------------------------------------------------------------------


def test_torch_module_reference_matches_its_export_and_gates_the_int8_variant(
    exports: Path,
) -> None:
    reference = encoder_reference(
        exports, ReferenceSpec(kind="module"), module=modelkit.build_model("encoder")
    )
    assert reference.description == "torch module TinyEncoder (modelkit.py)"
    inputs = encoder_set()
    outputs = reference.outputs(inputs)
    assert all(isinstance(value, np.ndarray) for value in outputs.values())
    assert gate(outputs, exports / "encoder.onnx", inputs, "fp32")
    assert gate(outputs, exports / "encoder.int8.onnx", inputs, "int8")


def test_module_kind_without_a_module_from_conftest_says_to_return_one(exports: Path) -> None:
    with pytest.raises(ReferenceError, match=r"return an nn\.Module or callable"):
        encoder_reference(exports, ReferenceSpec(kind="module"))


class Recorder(nn.Module):
    """Notes how it was called; returns the encoder's outputs shapes filled with zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, bool, str]] = []

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.seen.append(
            (torch.is_inference_mode_enabled(), self.training, type(features).__name__)
        )
        return features[..., :1] * 0, lengths


def test_torch_modules_run_in_eval_and_inference_mode_once_per_input_set() -> None:
    module = Recorder().train()
    reference = callable_reference(module)
    reference.outputs(encoder_set("a"))
    reference.outputs(encoder_set("a"))
    reference.outputs(encoder_set("b", seed=5))
    assert module.seen == [(True, False, "Tensor")] * 2
    assert reference.calls == 2


def test_keyword_mapping_calls_parameters_by_name() -> None:
    def forward(lens: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return feats * 2, lens

    mapping = InputMapping(arguments={"feats": "features", "lens": "lengths"})
    inputs = encoder_set()
    outputs = callable_reference(forward, mapping=mapping).outputs(inputs)
    np.testing.assert_array_equal(outputs["hidden"], inputs.arrays["features"] * 2)
    np.testing.assert_array_equal(outputs["logits"], inputs.arrays["lengths"])


def test_positional_mapping_passes_onnx_inputs_in_the_given_order() -> None:
    def forward(lens: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return feats, lens

    mapping = InputMapping(arguments=("lengths", "features"))
    outputs = callable_reference(forward, mapping=mapping).outputs(encoder_set())
    assert outputs["hidden"].dtype == np.float32
    assert outputs["logits"].dtype == np.int64


class HuggingFaceStyle(nn.Module):
    """``forward(features, lengths=None, **kwargs)``, as Hugging Face models are written."""

    def forward(self, features: Any, lengths: Any = None, **kwargs: Any) -> Any:
        assert not kwargs, kwargs
        return features * 2, lengths


def test_a_forward_with_optional_arguments_and_kwargs_takes_the_inputs_by_name() -> None:
    inputs = encoder_set()

    outputs = callable_reference(HuggingFaceStyle()).outputs(inputs)

    np.testing.assert_array_equal(outputs["hidden"], inputs.arrays["features"] * 2)
    np.testing.assert_array_equal(outputs["logits"], inputs.arrays["lengths"])


def test_inputs_a_forward_does_not_name_go_to_its_kwargs() -> None:
    seen: dict[str, Any] = {}

    def forward(features: Any, mask: Any = None, **kwargs: Any) -> Any:
        seen.update(kwargs, mask=mask)
        return features, features

    callable_reference(forward).outputs(encoder_set())

    assert sorted(seen) == ["lengths", "mask"] and seen["mask"] is None


def test_names_beat_positions_when_a_forward_lists_the_inputs_in_another_order() -> None:
    def forward(lengths: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return features, lengths

    outputs = callable_reference(forward).outputs(encoder_set())

    assert outputs["hidden"].dtype == np.float32 and outputs["logits"].dtype == np.int64


def test_a_scripted_forward_takes_the_inputs_by_name() -> None:
    class Scaled(nn.Module):
        def forward(self, lengths: torch.Tensor, features: torch.Tensor) -> Any:
            return features * 3, lengths

    inputs = encoder_set()

    outputs = callable_reference(torch.jit.script(Scaled())).outputs(inputs)

    np.testing.assert_allclose(outputs["hidden"], inputs.arrays["features"] * 3)


def test_a_kwargs_forward_whose_required_argument_is_no_input_is_called_by_position() -> None:
    def forward(x: Any, **kwargs: Any) -> Any:
        assert not kwargs
        return x, x

    with pytest.raises(
        ReferenceError, match=r"it takes 1 argument\(s\) \(\['x'\]\) but is given 2"
    ):
        callable_reference(forward).outputs(encoder_set())


def test_argument_count_mismatch_says_how_to_map_inputs() -> None:
    reference = callable_reference(modelkit.build_model("mlp"))
    with pytest.raises(ReferenceError) as info:
        reference.outputs(encoder_set())
    assert str(info.value) == (
        "reference test callable: it takes 1 argument(s) (['x']) but is given 2 from the "
        "graph's inputs; list the ONNX input for each argument in [references.<graph>] inputs"
    )


def test_mapping_to_an_input_the_graph_lacks_is_an_error_at_construction() -> None:
    with pytest.raises(ReferenceError, match=r"inputs \['feature'\] are not inputs of the graph"):
        callable_reference(lambda x: x, mapping=InputMapping(arguments=("feature",)))


def test_keyword_mapping_to_a_missing_parameter_is_an_error() -> None:
    with pytest.raises(ReferenceError, match=r"no parameter\(s\) \['feats'\]"):
        callable_reference(
            lambda x, y: (x, y), mapping=InputMapping(arguments={"feats": "features"})
        )


def test_returning_fewer_values_than_outputs_names_the_fix() -> None:
    reference = callable_reference(lambda features, lengths: features)
    with pytest.raises(ReferenceError) as info:
        reference.outputs(encoder_set())
    assert str(info.value) == (
        "reference test callable returned 1 value(s) but 2 output name(s) ['hidden', 'logits'] "
        "are expected; name each returned value in [references.<graph>] outputs ('_' drops one)"
    )


def test_an_underscore_output_name_drops_a_returned_value() -> None:
    reference = callable_reference(
        lambda features, lengths: (lengths, features, features),
        mapping=InputMapping(outputs=("_", "hidden", "logits")),
    )
    assert list(reference.outputs(encoder_set())) == ["hidden", "logits"]


def test_a_dict_return_is_matched_by_key_and_foreign_keys_are_ignored() -> None:
    reference = callable_reference(
        lambda features, lengths: {"logits": features, "loss": 0.0, "hidden": features}
    )
    assert sorted(reference.outputs(encoder_set())) == ["hidden", "logits"]


def test_a_graph_output_the_reference_does_not_give_is_an_error() -> None:
    reference = callable_reference(lambda features, lengths: {"hidden": features})
    with pytest.raises(ReferenceError, match=r"gives no output\(s\) \['logits'\].*skip_outputs"):
        reference.outputs(encoder_set())
    skipping = callable_reference(
        lambda features, lengths: {"hidden": features}, skip_outputs=("logits",)
    )
    assert list(skipping.outputs(encoder_set())) == ["hidden"]


def test_naming_an_output_the_graph_lacks_is_an_error() -> None:
    reference = callable_reference(
        lambda features, lengths: (features, lengths),
        mapping=InputMapping(outputs=("hidden", "logit")),
    )
    with pytest.raises(ReferenceError, match=r"outputs \['logit'\] are not outputs of the graph"):
        reference.outputs(encoder_set())


def test_a_nested_output_asks_for_a_flattening_wrapper() -> None:
    reference = callable_reference(lambda features, lengths: (features, (features, lengths)))
    with pytest.raises(ReferenceError, match=r"output 'logits' is a nested tuple"):
        reference.outputs(encoder_set())


def test_a_plain_callable_gets_numpy_arrays() -> None:
    seen: list[type] = []

    def forward(features: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(type(features))
        return features, lengths

    callable_reference(forward).outputs(encoder_set())
    assert seen == [np.ndarray]


def broken_reference(features: np.ndarray, lengths: np.ndarray) -> None:
    raise ZeroDivisionError("division by zero\nsecond line")


def test_a_reference_that_raises_gives_one_line_naming_its_file() -> None:
    with pytest.raises(ReferenceError) as info:
        callable_reference(broken_reference).outputs(encoder_set("clip-1"))
    assert str(info.value) == (
        "reference test callable raised ZeroDivisionError on input set 'clip-1': division by "
        "zero; call it on these inputs in test_references.py to debug, or fix "
        "[references.<graph>] inputs"
    )


# --------------------------------------------------------------------------------------------
# TorchScript and checkpoints
# --------------------------------------------------------------------------------------------


def test_torchscript_reference_loads_without_user_code_and_matches_the_export(
    exports: Path,
) -> None:
    spec = ReferenceSpec(kind="torchscript", path=exports / "encoder.pt")
    reference = encoder_reference(exports, spec)
    assert reference.description == "torchscript encoder.pt"
    inputs = encoder_set()
    assert gate(reference.outputs(inputs), exports / "encoder.onnx", inputs, "fp32")


class Scaled(nn.Module):
    def forward(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        return x * factor


def test_torchscript_int_parameters_receive_python_numbers(tmp_path: Path) -> None:
    torch.jit.script(Scaled()).save(str(tmp_path / "scaled.pt"))
    reference = load_torchscript(
        tmp_path / "scaled.pt", graph_inputs=("x", "factor"), graph_outputs=("y",)
    )
    arrays = {"x": np.ones(3, np.float32), "factor": np.array(3, np.int64)}
    outputs = reference.outputs(InputSet("default", "test", None, {}, arrays))
    np.testing.assert_array_equal(outputs["y"], np.full(3, 3.0, np.float32))


class Stateful(nn.Module):
    """A wrapper like silero's: its forward keeps state, its ``inner`` is the pure graph."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Scaled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x, 2)


def test_a_torchscript_submodule_can_be_the_reference(tmp_path: Path) -> None:
    torch.jit.script(Stateful()).save(str(tmp_path / "wrapped.pt"))
    reference = load_torchscript(
        tmp_path / "wrapped.pt",
        submodule="inner",
        graph_inputs=("x", "factor"),
        graph_outputs=("y",),
    )
    assert reference.description == "torchscript wrapped.pt::inner"
    arrays = {"x": np.ones(2, np.float32), "factor": np.array(5)}
    outputs = reference.outputs(InputSet("default", "test", None, {}, arrays))
    np.testing.assert_array_equal(outputs["y"], np.full(2, 5.0, np.float32))
    with pytest.raises(ReferenceError, match=r"no submodule 'model' \(children: \['inner'\]\)"):
        load_torchscript(tmp_path / "wrapped.pt", submodule="model")


def test_a_file_that_is_not_torchscript_points_to_the_checkpoint_kind(tmp_path: Path) -> None:
    torch.save(modelkit.build_model("mlp"), tmp_path / "mlp.pt")
    with pytest.raises(ReferenceError, match=r'mlp\.pt: not a TorchScript archive .*"checkpoint"'):
        load_torchscript(tmp_path / "mlp.pt")


def test_a_missing_torchscript_file_names_the_path_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ReferenceError, match=r"nope\.pt: no such TorchScript file; fix path"):
        load_torchscript(tmp_path / "nope.pt")


def test_a_pickled_module_is_refused_unless_allow_pickle_is_set(tmp_path: Path) -> None:
    torch.save(modelkit.build_model("mlp"), tmp_path / "mlp.pt")
    with pytest.raises(ReferenceError) as info:
        load_torch_checkpoint(tmp_path / "mlp.pt", allow_pickle=False, where="parity.toml [x]")
    assert str(info.value) == (
        f"{tmp_path / 'mlp.pt'}: holds a pickled module, and unpickling it runs code from the "
        "file; if you trust it, set allow_pickle = true in parity.toml [x] or pass "
        "--parity-allow-pickle"
    )
    reference = load_torch_checkpoint(
        tmp_path / "mlp.pt", allow_pickle=True, graph_inputs=("x",), graph_outputs=("logits",)
    )
    x = np.ones((2, 16), np.float32)
    expected = modelkit.reference_outputs(modelkit.build_model("mlp"), {"x": x})
    outputs = reference.outputs(InputSet("default", "test", None, {}, {"x": x}))
    np.testing.assert_allclose(outputs["logits"], expected["logits"], rtol=1e-6, atol=1e-7)


def test_a_state_dict_checkpoint_says_to_build_the_module_in_conftest(tmp_path: Path) -> None:
    torch.save(modelkit.build_model("mlp").state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ReferenceError, match=r"holds a state_dict, not a module; build"):
        load_torch_checkpoint(tmp_path / "weights.pt", allow_pickle=False)


def test_a_torchscript_checkpoint_is_loaded_as_torchscript(exports: Path) -> None:
    reference = encoder_reference(
        exports, ReferenceSpec(kind="checkpoint", path=exports / "encoder.pt")
    )
    assert reference.description == "torchscript encoder.pt"


def test_without_torch_torch_references_name_the_extra_to_install(
    exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TorchMissingError) as info:
        require_torch()
    assert TORCH_EXTRA in str(info.value)
    spec = ReferenceSpec(kind="torchscript", path=exports / "encoder.pt")
    with pytest.raises(TorchMissingError, match=r"TorchScript reference encoder\.pt needs it"):
        encoder_reference(exports, spec)


RUN_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")

    sys.meta_path.insert(0, NoTorch())
    from pathlib import Path
    from pytest_onnxparity.compare.parity import compare
    from pytest_onnxparity.references.replay import RecordedReference
    from pytest_onnxparity.runtime.sessions import SessionSettings, open_session
    from pytest_onnxparity.config.tolerances import tier_default

    recorded, variant = Path(sys.argv[1]), Path(sys.argv[2])
    reference = RecordedReference.load(
        recorded, graph_inputs=["features", "lengths"], graph_outputs=["hidden", "logits"]
    )
    runner = open_session(variant, SessionSettings())
    verdicts = {}
    for inputs in reference.input_sets():
        result = compare(reference.outputs(inputs), runner.run(inputs.arrays),
                         lambda _: tier_default("int8"))
        verdicts[inputs.name] = result.passed
    print(json.dumps({"torch": "torch" in sys.modules, "description": reference.description,
                      "verdicts": verdicts}))
    """
)


@pytest.mark.parametrize("target", ["encoder.npz", "encoder"])
def test_recorded_torch_outputs_gate_a_variant_without_torch(
    exports: Path, tmp_path: Path, target: str
) -> None:
    reference = encoder_reference(
        exports, ReferenceSpec(kind="module"), module=modelkit.build_model("encoder")
    )
    sets = record_outputs(reference, [encoder_set("short", frames=6), encoder_set("long", 4, 20)])
    written = write_recorded(tmp_path / "reference" / target, sets)
    assert written[0].is_relative_to(tmp_path / "reference")
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_WITHOUT_TORCH,
            str(tmp_path / "reference" / target),
            str(exports / "encoder.int8.onnx"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout)
    assert report["torch"] is False
    assert report["description"] == f"recorded reference/{target}"
    names = ["short", "long"] if target.endswith(".npz") else ["test_data_set_0", "test_data_set_1"]
    assert report["verdicts"] == dict.fromkeys(names, True)


# --------------------------------------------------------------------------------------------
# Recorded references
# --------------------------------------------------------------------------------------------


def test_the_bundled_recording_gates_the_bundled_int8_encoder() -> None:
    reference = RecordedReference.load(
        EXAMPLE / "reference" / "encoder.npz",
        graph_inputs=ENCODER_INPUTS,
        graph_outputs=ENCODER_OUTPUTS,
    )
    assert reference.description == "recorded reference/encoder.npz"
    (inputs,) = reference.input_sets() or []
    assert inputs.source == "recorded encoder.npz"
    assert gate(reference.outputs(inputs), EXAMPLE / "encoder.int8.onnx", inputs, "int8")


def test_a_recorded_reference_refuses_inputs_other_than_those_recorded() -> None:
    reference = RecordedReference.load(EXAMPLE / "reference" / "encoder.npz")
    with pytest.raises(ReferenceError, match=r"input 'features' differs from the one recorded"):
        reference.outputs(encoder_set("default"))
    with pytest.raises(ReferenceError, match=r"no recorded set 'other' \(it has \['default'\]\)"):
        reference.outputs(encoder_set("other"))


def test_a_recording_missing_a_graph_output_names_the_file_and_the_fix(tmp_path: Path) -> None:
    (recorded,) = read_recorded(EXAMPLE / "reference" / "encoder.npz")
    partial = RecordedSet(recorded.inputs, {"hidden": recorded.outputs["hidden"]})
    write_npz(tmp_path / "encoder.npz", [partial])
    with pytest.raises(ReferenceError) as info:
        RecordedReference.load(tmp_path / "encoder.npz", graph_outputs=ENCODER_OUTPUTS)
    assert str(info.value) == (
        f"{tmp_path / 'encoder.npz'} (set 'default'): no recorded output(s) ['logits'] (it has "
        "['hidden']); re-record it with --parity-record or list them in skip_outputs"
    )
    skipping = RecordedReference.load(
        tmp_path / "encoder.npz", graph_outputs=ENCODER_OUTPUTS, skip_outputs=("logits",)
    )
    assert list(skipping.outputs(partial.inputs)) == ["hidden"]


def test_an_inputs_only_file_cannot_be_a_reference(tmp_path: Path) -> None:
    write_npz(tmp_path / "clips.npz", [RecordedSet(encoder_set(), {})])
    with pytest.raises(ReferenceError, match=r"holds inputs but no outputs.*input_data"):
        RecordedReference.load(tmp_path / "clips.npz")


def test_a_corrupt_recording_surfaces_as_a_reference_error(tmp_path: Path) -> None:
    (tmp_path / "encoder.npz").write_bytes(b"junk")
    spec = ReferenceSpec(kind="recorded", path=tmp_path / "encoder.npz")
    with pytest.raises(ReferenceError, match=r"encoder\.npz: not a readable \.npz file"):
        open_reference(spec, fp32_path=None, settings=SETTINGS, graph_inputs=(), graph_outputs=())


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

BASE = Path("/project")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({}, ReferenceSpec()),
        ({"path": "refs/enc.pt"}, ReferenceSpec(kind="torchscript", path=BASE / "refs/enc.pt")),
        (
            {"path": "reference/enc.npz"},
            ReferenceSpec(kind="recorded", path=BASE / "reference/enc.npz"),
        ),
        ({"path": "reference/enc"}, ReferenceSpec(kind="recorded", path=BASE / "reference/enc")),
        ({"path": "old/enc.onnx"}, ReferenceSpec(kind="onnx", path=BASE / "old/enc.onnx")),
        ({"kind": "other-dir", "path": "v1"}, ReferenceSpec(kind="other-dir", path=BASE / "v1")),
        (
            {"kind": "provider", "graph_optimization_level": "disable"},
            ReferenceSpec(kind="provider", graph_optimization_level="disable"),
        ),
        (
            {"kind": "module", "inputs": ["lengths", "features"], "outputs": ["_", "hidden"]},
            ReferenceSpec(
                kind="module",
                mapping=InputMapping(("lengths", "features"), ("_", "hidden")),
            ),
        ),
        (
            {"kind": "module", "inputs": {"feats": "features"}},
            ReferenceSpec(kind="module", mapping=InputMapping({"feats": "features"})),
        ),
        (
            {"kind": "checkpoint", "path": "m.pt", "allow_pickle": True, "submodule": "net"},
            ReferenceSpec(
                kind="checkpoint", path=BASE / "m.pt", allow_pickle=True, submodule="net"
            ),
        ),
        (
            {"input_data": "clips.npz", "synthesize": False},
            ReferenceSpec(input_data=(BASE / "clips.npz",), synthesize=False),
        ),
    ],
)
def test_reference_tables_parse_into_specs(table: dict[str, Any], expected: ReferenceSpec) -> None:
    spec = parse_reference_options({"encoder": table}, "parity.toml", BASE)["encoder"]
    assert spec == ReferenceSpec(
        **{**expected.__dict__, "where": "parity.toml [references.encoder]"}
    )
    json.dumps(spec.to_json())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "onnx", "pth": "x"}, "unknown key 'pth'; allowed keys: kind, path, inputs"),
        ({"kind": "pytorch"}, "kind 'pytorch' is not one of onnx, other-dir, provider"),
        ({"path": "model.bin"}, "cannot tell the reference kind of model.bin; add kind ="),
        ({"kind": "torchscript"}, "kind 'torchscript' needs path = \"...\""),
        ({"kind": "provider"}, "kind 'provider' needs providers = [...] or graph_optimization"),
        ({"kind": "module", "path": "x.pt"}, "kind 'module' takes no path; remove it"),
        ({"kind": "onnx", "allow_pickle": True}, "allow_pickle applies to kind checkpoint, not"),
        (
            {"kind": "recorded", "path": "r.npz", "inputs": ["x"]},
            "inputs applies to kind torchscript",
        ),
        ({"kind": "onnx", "graph_optimization_level": "max"}, "graph_optimization_level 'max'"),
        ({"kind": "module", "inputs": "x"}, "inputs must be a list of strings, got 'x'"),
        (
            {"kind": "checkpoint", "path": "m.pt", "allow_pickle": "yes"},
            "allow_pickle must be true or false",
        ),
        ("onnx", "expected a table of kind, path"),
    ],
)
def test_invalid_reference_tables_name_the_table_and_the_fix(table: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_reference_options({"encoder": table}, "parity.toml", BASE)
    assert str(info.value).startswith("parity.toml [references.encoder]: ")
    assert message in str(info.value)


def test_inputs_from_attaches_an_upstream_link_to_the_downstream_graph() -> None:
    raw = {
        "decoder_init": {"kind": "module"},
        "inputs_from": [
            {"graph": "decoder_init", "from": "encoder", "map": {"encoder_hidden": "hidden"}},
            {"graph": "decoder_step", "from": "decoder_init"},
        ],
    }
    specs = parse_reference_options(raw, "pyproject.toml", BASE)
    assert specs["decoder_init"].kind == "module"
    assert specs["decoder_init"].inputs_from == UpstreamLink(
        "decoder_init", "encoder", {"encoder_hidden": "hidden"}
    )
    assert specs["decoder_step"].kind == "onnx"
    assert specs["decoder_step"].inputs_from == UpstreamLink("decoder_step", "decoder_init")
    assert "encoder" not in specs


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ([{"graph": "a", "from": "b", "via": 1}], "unknown key 'via'; allowed keys: graph, from"),
        ([{"graph": "a"}], 'missing from = "<graph name>"'),
        ([{"graph": "a", "from": "a"}], "graph 'a' cannot feed itself"),
        ([{"graph": "a", "from": "b"}, {"graph": "a", "from": "c"}], "already takes inputs"),
        ([{"graph": "a", "from": "b"}, {"graph": "b", "from": "a"}], "forms a cycle (a <- b <- a)"),
        ([{"graph": "a", "from": "b", "map": {"x": 1}}], "map must be a table"),
        ({"graph": "a"}, "expected a list of {graph, from, map} tables"),
    ],
)
def test_invalid_inputs_from_entries_are_config_errors(links: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_reference_options({"inputs_from": links}, "parity.toml", BASE)
    assert "[[references.inputs_from]]" in str(info.value)
    assert message in str(info.value)


# --------------------------------------------------------------------------------------------
# Real inputs and upstream graphs
# --------------------------------------------------------------------------------------------


def test_upstream_encoder_outputs_become_the_decoders_inputs(exports: Path) -> None:
    encoder = OnnxReference(open_session(exports / "encoder.onnx", SETTINGS))
    decoder_inputs, _ = read_signature(str(exports / "decoder.onnx"))
    link = UpstreamLink("decoder", "encoder", {"encoder_hidden": "hidden"})
    upstream_sets = [encoder_set("a"), encoder_set("b", seed=4, frames=7)]
    (first, second) = run_upstream(link, encoder, upstream_sets, decoder_inputs)
    assert (first.name, second.name) == ("a", "b")
    assert first.source == "encoder outputs (onnx fp32 (encoder.onnx))"
    np.testing.assert_allclose(
        first.arrays["encoder_hidden"],
        encoder.outputs(upstream_sets[0])["hidden"],
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_array_equal(second.arrays["lengths"], upstream_sets[1].arrays["lengths"])
    check_input_set(second, decoder_inputs, "decoder")
    decoder = callable_reference(
        TinyDecoder(), graph_inputs=("encoder_hidden", "lengths"), graph_outputs=("scores",)
    )
    assert gate(decoder.outputs(second), exports / "decoder.onnx", second, "fp32")


def test_upstream_without_a_value_for_a_downstream_input_says_to_map_it(exports: Path) -> None:
    encoder = OnnxReference(open_session(exports / "encoder.onnx", SETTINGS))
    decoder_inputs, _ = read_signature(str(exports / "decoder.onnx"))
    with pytest.raises(ReferenceError, match=r"no value for decoder input 'encoder_hidden'"):
        run_upstream(UpstreamLink("decoder", "encoder"), encoder, [encoder_set()], decoder_inputs)
    filled = run_upstream(
        UpstreamLink("decoder", "encoder"),
        encoder,
        [encoder_set()],
        decoder_inputs,
        extra_arrays={"encoder_hidden": np.zeros((2, 12, 32), np.float32)},
    )
    assert not filled[0].arrays["encoder_hidden"].any()


SPECS = (
    TensorSpec("features", "float32", ("batch", "frames", 16)),
    TensorSpec("lengths", "int64", ("batch",)),
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"features": np.zeros((1, 4, 16))},
            "input 'features' is float64, the graph takes float32",
        ),
        (
            {"features": np.zeros((1, 4, 8), np.float32)},
            "has shape [1, 4, 8], the graph takes features: float32[batch, frames, 16]",
        ),
        ({"mask": np.zeros(1)}, "has inputs ['features', 'lengths', 'mask'] but the graph takes"),
    ],
)
def test_real_input_sets_that_do_not_fit_the_graph_are_named(
    change: dict[str, np.ndarray], message: str
) -> None:
    inputs = encoder_set()
    arrays = {**inputs.arrays, **change}
    with pytest.raises(ReferenceError) as info:
        check_input_set(InputSet("clip", "hook", None, {}, arrays), SPECS, "conftest.py")
    assert str(info.value).startswith("conftest.py: input set 'clip' ")
    assert message in str(info.value)


def test_hook_inputs_become_named_sets() -> None:
    arrays = encoder_set().arrays
    assert [s.name for s in input_sets_from_hook("encoder", arrays, "hook")] == ["hook"]
    named = input_sets_from_hook("encoder", {"clip1": arrays, "clip2": arrays}, "hook")
    assert [s.name for s in named] == ["clip1", "clip2"]
    listed = input_sets_from_hook("encoder", [arrays, arrays], "hook")
    assert [s.name for s in listed] == ["hook0", "hook1"]
    with pytest.raises(ReferenceError, match="the input hook returned ndarray for 'encoder'"):
        input_sets_from_hook("encoder", np.zeros(3), "hook")


def test_combined_input_sets_keep_order_and_refuse_a_reused_name() -> None:
    synthesized = [encoder_set("default"), encoder_set("frames=8")]
    real = [InputSet("clip1", "hook conftest.py", None, {}, encoder_set().arrays)]
    assert [s.name for s in combine_input_sets(synthesized, real)] == [
        "default",
        "frames=8",
        "clip1",
    ]
    clash = [InputSet("default", "recorded clips.npz", None, {}, encoder_set().arrays)]
    with pytest.raises(
        ReferenceError, match=r"input set 'default' comes from both test and recorded clips\.npz"
    ):
        combine_input_sets(synthesized, clash)


def test_input_data_files_become_sets_named_after_the_file(exports: Path, tmp_path: Path) -> None:
    write_npz(tmp_path / "clips.npz", [RecordedSet(encoder_set(frames=9), {})])
    write_recorded(
        tmp_path / "more", [RecordedSet(encoder_set("a"), {}), RecordedSet(encoder_set("b"), {})]
    )
    spec = ReferenceSpec(input_data=(tmp_path / "clips.npz", tmp_path / "more"))
    sets = read_input_data(spec, SPECS)
    assert [s.name for s in sets] == ["clips", "more.test_data_set_0", "more.test_data_set_1"]
    assert sets[0].source == "recorded clips.npz"
    assert sets[0].arrays["features"].shape == (2, 9, 16)


def test_input_data_that_does_not_fit_the_graph_names_the_file(tmp_path: Path) -> None:
    arrays = {"features": np.zeros((1, 4, 16))}
    write_npz(tmp_path / "clips.npz", [RecordedSet(InputSet("default", "", None, {}, arrays), {})])
    spec = ReferenceSpec(
        input_data=(tmp_path / "clips.npz",), where="parity.toml [references.encoder]"
    )
    with pytest.raises(ReferenceError) as info:
        read_input_data(spec, SPECS)
    assert str(info.value).startswith(
        f"parity.toml [references.encoder] input_data {tmp_path / 'clips.npz'}: input set 'clips' "
    )


def test_input_data_names_are_known_before_any_array_is_loaded(tmp_path: Path) -> None:
    write_npz(tmp_path / "clips.npz", [RecordedSet(encoder_set(), {})])
    write_npz(
        tmp_path / "two.npz", [RecordedSet(encoder_set("a"), {}), RecordedSet(encoder_set("b"), {})]
    )
    spec = ReferenceSpec(input_data=(tmp_path / "clips.npz", tmp_path / "two.npz"))
    assert input_data_names(spec) == ["clips", "two.a", "two.b"]
    assert input_data_names(spec) == [s.name for s in read_input_data(spec, SPECS)]


# --------------------------------------------------------------------------------------------
# The run's reference settings: config layers and the command line
# --------------------------------------------------------------------------------------------


def test_the_folder_table_of_a_graph_replaces_the_projects_whole() -> None:
    project = {
        "encoder": {"kind": "torchscript", "path": "refs/enc.pt", "inputs": ["features"]},
        "decoder": {"kind": "module"},
        "inputs_from": [{"graph": "decoder", "from": "encoder"}],
    }
    folder = {"encoder": {"path": "reference/encoder.npz"}}
    specs = parse_reference_layers(
        [(project, "pyproject.toml", Path("/project")), (folder, "parity.toml", Path("/out"))]
    )
    assert specs["encoder"] == ReferenceSpec(
        kind="recorded",
        path=Path("/out/reference/encoder.npz"),
        where="parity.toml [references.encoder]",
    )
    assert specs["decoder"].kind == "module"
    assert specs["decoder"].inputs_from == UpstreamLink("decoder", "encoder")


def test_the_command_line_replaces_every_graphs_reference_but_keeps_its_inputs() -> None:
    configured = ReferenceSpec(
        kind="torchscript",
        path=Path("/p/enc.pt"),
        input_data=(Path("/p/clips.npz"),),
        synthesize=False,
    )
    other_dir = ReferenceSettings({"encoder": configured}, reference_dir=Path("/releases/v1"))
    spec = other_dir.spec("encoder")
    assert (spec.kind, spec.path, spec.where) == (
        "other-dir",
        Path("/releases/v1"),
        "--parity-reference-dir",
    )
    assert (spec.input_data, spec.synthesize) == (configured.input_data, False)
    recorded = ReferenceSettings({"encoder": configured}, recorded_dir=Path("/out/reference"))
    assert recorded.spec("encoder") == ReferenceSpec(
        kind="recorded", path=Path("/out/reference/encoder.npz"), where="--parity-recorded"
    )
    assert ReferenceSettings().spec("decoder").is_default_reference


def test_allow_pickle_on_the_command_line_opts_in_every_checkpoint_only() -> None:
    specs = {
        "a": ReferenceSpec(kind="checkpoint", path=Path("/m.pt")),
        "b": ReferenceSpec(kind="torchscript", path=Path("/m.jit")),
    }
    settings = ReferenceSettings(specs, allow_pickle=True)
    assert settings.spec("a").allow_pickle
    assert not settings.spec("b").allow_pickle
    assert not ReferenceSettings(specs).spec("a").allow_pickle


def test_the_reference_hook_is_asked_only_where_nothing_else_chose_the_reference() -> None:
    settings = ReferenceSettings(
        {
            "module": ReferenceSpec(kind="module"),
            "inputs-only": ReferenceSpec(input_data=(Path("/c.npz"),)),
            "torchscript": ReferenceSpec(kind="torchscript", path=Path("/m.pt")),
        }
    )
    assert settings.asks_hook("module")
    assert settings.asks_hook("inputs-only")
    assert settings.asks_hook("unconfigured")
    assert not settings.asks_hook("torchscript")
    assert not ReferenceSettings(recorded_dir=Path("/r")).asks_hook("unconfigured")


def test_a_recording_is_found_in_either_layout(tmp_path: Path) -> None:
    assert recorded_path(tmp_path, "encoder") == tmp_path / "encoder.npz"
    (tmp_path / "encoder").mkdir()
    assert recorded_path(tmp_path, "encoder") == tmp_path / "encoder"
    (tmp_path / "encoder.npz").touch()
    assert recorded_path(tmp_path, "encoder") == tmp_path / "encoder.npz"


def test_a_table_for_a_graph_the_folder_lacks_is_a_config_error() -> None:
    specs = parse_reference_options({"encodr": {}}, "parity.toml", BASE)
    with pytest.raises(ConfigError) as info:
        check_graph_names(specs, ["encoder", "decoder"])
    assert str(info.value) == (
        "parity.toml [references.encodr]: no graph 'encodr' in the export folder; graphs are "
        "decoder, encoder"
    )


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        (ReferenceSpec(kind="torchscript", path=Path("/a/refs/enc.pt")), "torchscript refs/enc.pt"),
        (
            ReferenceSpec(
                kind="torchscript", path=Path("/silero/silero_vad.jit"), submodule="_model"
            ),
            "torchscript silero/silero_vad.jit::_model",
        ),
        (
            ReferenceSpec(kind="provider", graph_optimization_level="disable"),
            "provider opt=disable",
        ),
        (
            ReferenceSpec(kind="provider", providers=("CUDAExecutionProvider",)),
            "provider CUDA",
        ),
        (ReferenceSpec(kind="module"), "module"),
    ],
)
def test_a_spec_has_a_short_label_for_titles(spec: ReferenceSpec, label: str) -> None:
    assert spec.label == label
