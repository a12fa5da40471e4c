"""References end to end, through pytester: each kind chosen per graph in config, on the command
line or by a conftest hook; real and upstream inputs; the record -> run-without-torch round trip.

The export folder is built in this session: a tiny encoder (its torch module, TorchScript and
pickled checkpoint) and a decoder fed by the encoder's outputs, each with an int8 variant.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import modelkit
import numpy as np
import pytest
import torch

from pytest_onnxparity.references.recorded import (
    RecordedSet,
    read_recorded,
    write_npz,
    write_recorded,
)
from pytest_onnxparity.runtime.inputs import InputSet
from tests.conftest import RunPytest
from tests.paths import EXAMPLE
from tests.torch_models import TinyDecoder

FIXTURES = Path(modelkit.__file__).parent
# Put first on PYTHONPATH, it makes any import of torch fail, as on a CI machine without it.
NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError("No module named 'torch' (blocked)", name="torch")

    sys.meta_path.insert(0, NoTorch())
    """
)
CONFTEST_IMPORTS = f"""
import sys
sys.path.insert(0, {str(FIXTURES)!r})
import modelkit
import numpy as np
"""


@pytest.fixture
def run(run: RunPytest, pytester: pytest.Pytester) -> RunPytest:
    """Runs here take ``pytester.path`` as their rootdir, wherever the export folder is."""
    return lambda *args: run("--rootdir", str(pytester.path), *args)


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``export/`` (encoder + decoder, fp32 + int8), ``refs/`` (the encoder's TorchScript and
    pickled module) and ``release-changed/`` (an encoder retrained with another seed)."""
    root = tmp_path_factory.mktemp("kit")
    export = modelkit.make_export_folder(
        root / "export", models=("encoder",), variants=("fp32", "int8")
    )
    modelkit.export_onnx(
        TinyDecoder(),
        export / "decoder.onnx",
        {"encoder_hidden": torch.zeros(2, 5, 32), "lengths": torch.tensor([5, 3])},
        ["scores"],
        dynamic_axes={"encoder_hidden": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}},
    )
    modelkit.quantize_int8_dynamic(export / "decoder.onnx", export / "decoder.int8.onnx")
    refs = root / "refs"
    refs.mkdir()
    encoder = modelkit.build_model("encoder")
    torch.jit.trace(encoder, tuple(encoder.example_inputs().values())).save(
        str(refs / "encoder.pt")
    )
    torch.save(encoder, refs / "encoder_module.pt")
    changed = root / "release-changed"
    changed.mkdir()
    modelkit.export_model(modelkit.build_model("encoder", seed=1), changed / "encoder.onnx")
    shutil.copy(export / "decoder.onnx", changed / "decoder.onnx")
    return root


@pytest.fixture
def export(kit: Path, pytester: pytest.Pytester) -> Path:
    """A private copy of the kit's export folder, with ``refs/`` beside it in the test dir."""
    shutil.copytree(kit / "refs", pytester.path / "refs")
    return Path(shutil.copytree(kit / "export", pytester.path / "export"))


def run_without_torch(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    blocker = pytester.mkdir("no-torch")
    (blocker / "sitecustomize.py").write_text(NO_TORCH)
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rA", "--rootdir", str(pytester.path), *args
    )


def records(path: Path) -> dict[str, dict[str, Any]]:
    document = json.loads(path.read_text())
    return {record["nodeid"].split("::", 1)[1]: record for record in document["records"]}


def hook_conftest(pytester: pytest.Pytester, body: str) -> None:
    pytester.makeconftest(CONFTEST_IMPORTS + textwrap.dedent(body))


def encoder_arrays(seed: int, frames: int = 12, batch: int = 1) -> dict[str, np.ndarray]:
    tensors = modelkit.build_model("encoder").example_inputs(batch=batch, seed=seed, frames=frames)
    return {name: tensor.numpy() for name, tensor in tensors.items()}


# --------------------------------------------------------------------------------------------
# A torch module from conftest.py
# --------------------------------------------------------------------------------------------

MODULE_HOOK = """
def pytest_onnxparity_reference(graph, config):
    if graph == "encoder":
        return modelkit.build_model("encoder")
"""


def test_a_torch_module_from_the_conftest_hook_gates_every_file_of_its_graph(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    hook_conftest(pytester, MODULE_HOOK)
    out = pytester.path / "results.json"
    result = run("--onnx-dir", str(export), "-v", "--parity-json", str(out))
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines_random(
        ["PASSED *encoder::parity?fp32?", "PASSED *encoder::parity?int8?"]
    )
    found = records(out)
    assert found["encoder::parity[fp32]"]["reference"] == "torch module TinyEncoder (modelkit.py)"
    assert found["decoder::parity[int8]"]["reference"] == "fp32 (decoder.onnx)"
    hidden = found["encoder::parity[fp32]"]["parity"]["outputs"][0]
    assert hidden["output"] == "hidden" and hidden["max_abs"] < 1e-5


def test_a_damaged_variant_fails_against_the_torch_module_named_in_the_title(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    hook_conftest(pytester, MODULE_HOOK)
    modelkit.damage_initializer(
        export / "encoder.onnx", export / "encoder.int8.onnx", "hidden_proj.weight", "scale", 3.0
    )
    result = run("--onnx-dir", str(export), "-k", "encoder")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*encoder[[]int8[]] vs torch module TinyEncoder (modelkit.py) on inputs default: "
            "* gate(s) failed"
        ]
    )


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (
            'return modelkit.build_model("mlp")',
            "*encoder[[]*[]] vs torch module TinyMLP (modelkit.py) on inputs default: reference "
            "torch module TinyMLP (modelkit.py): it takes 1 argument(s) ([[]'x'[]]) but is given "
            "2 from the graph's inputs; list the ONNX input for each argument in "
            "[[]references.<graph>[]] inputs",
        ),
        (
            "def broken(features, lengths):\n    raise ZeroDivisionError('boom')\nreturn broken",
            "*reference callable * (conftest.py) raised ZeroDivisionError on input set "
            "'default': boom; call it on these inputs in conftest.py to debug*",
        ),
        (
            "class Swapped(modelkit.TinyEncoder):\n"
            "    def forward(self, features, lengths):\n"
            "        return super().forward(features, lengths)[::-1]\n"
            "return Swapped()",
            "*encoder.int8.onnx vs torch module *Swapped (conftest.py): output 'hidden': variant "
            "shape [[]4, 16, 32[]] != "
            "reference shape [[]4, 16, 12[]]; re-export the variant with the reference's output "
            "shapes; or, if the reference returns its outputs in another order or layout, map "
            "them in [[]references.encoder[]] outputs",
        ),
        (
            'raise RuntimeError("no model")',
            "*the pytest_onnxparity_reference hook raised RuntimeError for graph 'encoder' at "
            "conftest.py:*: no model; fix the hook (conftest.py:*)",
        ),
        (
            "return 42",
            "*the pytest_onnxparity_reference hook returned a int for 'encoder'; return an "
            "nn.Module or callable, (module, InputMapping), or None",
        ),
    ],
    ids=["argument-count", "raises", "outputs-swapped", "hook-raises", "not-callable"],
)
def test_a_broken_module_reference_fails_each_test_with_one_line(
    run: RunPytest, pytester: pytest.Pytester, export: Path, hook: str, message: str
) -> None:
    body = textwrap.indent(hook, "    ")
    hook_conftest(
        pytester,
        'def pytest_onnxparity_reference(graph, config):\n    if graph != "encoder":\n'
        f"        return None\n{body}\n",
    )
    result = run("--onnx-dir", str(export), "-k", "encoder and int8")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


def test_an_input_mapping_from_the_hook_lines_up_a_module_with_other_parameter_names(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    hook_conftest(
        pytester,
        """
        from pytest_onnxparity.references.config import InputMapping

        class Swapped:
            def __init__(self):
                self.model = modelkit.build_model("encoder")

            def __call__(self, lens, feats):
                import torch
                with torch.inference_mode():
                    hidden, logits = self.model(torch.from_numpy(feats), torch.from_numpy(lens))
                return {"logits": logits.numpy(), "hidden": hidden.numpy()}

        def pytest_onnxparity_reference(graph, config):
            if graph == "encoder":
                return Swapped(), InputMapping(arguments={"feats": "features", "lens": "lengths"})
        """,
    )
    result = run("--onnx-dir", str(export), "-k", "encoder")
    result.assert_outcomes(passed=3)


# --------------------------------------------------------------------------------------------
# TorchScript and checkpoints from config, without user code
# --------------------------------------------------------------------------------------------

TORCHSCRIPT_PYPROJECT = """
[tool.onnxparity.references.encoder]
path = "refs/encoder.pt"
"""


def test_a_torchscript_file_named_in_pyproject_is_the_reference(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    pytester.makepyprojecttoml(TORCHSCRIPT_PYPROJECT)
    result = run("--onnx-dir", str(export), "-v")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "onnxparity references: *encoder vs torchscript refs/encoder.pt*",
            "PASSED *encoder::parity?fp32?",
        ]
    )


def test_a_pickled_checkpoint_needs_the_explicit_opt_in(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    (export / "parity.toml").write_text(
        '[references.encoder]\nkind = "checkpoint"\npath = "../refs/encoder_module.pt"\n'
    )
    refused = run("--onnx-dir", str(export), "-k", "encoder and int8")
    refused.assert_outcomes(passed=1, failed=1)
    refused.stdout.fnmatch_lines(
        [
            "*encoder_module.pt: holds a pickled module, and unpickling it runs code from the "
            "file; if you trust it, set allow_pickle = true in *parity.toml "
            "[[]references.encoder[]] or pass --parity-allow-pickle"
        ]
    )
    allowed = run("--onnx-dir", str(export), "-k", "encoder", "--parity-allow-pickle", "-v")
    allowed.assert_outcomes(passed=3)
    allowed.stdout.fnmatch_lines(["PASSED *encoder::parity?int8?"])


# --------------------------------------------------------------------------------------------
# Recording, and gating on the recording without torch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "written", "set_id", "xdist"),
    [
        ("--parity-record", "encoder.npz", "", ("-n", "2")),
        ("--parity-record=test-data", "encoder/", "-test_data_set_0", ()),
    ],
    ids=["npz", "test-data"],
)
def test_recorded_torchscript_outputs_gate_the_export_on_a_machine_without_torch(
    run: RunPytest,
    pytester: pytest.Pytester,
    export: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    written: str,
    set_id: str,
    xdist: tuple[str, ...],
) -> None:
    pytester.makepyprojecttoml(TORCHSCRIPT_PYPROJECT)
    recording = run("--onnx-dir", str(export), option)
    recording.assert_outcomes(passed=5)
    recording.stdout.fnmatch_lines(
        [
            "*onnxparity record*",
            "decoder: onnx fp32 (decoder.onnx) on 1 input set(s) recorded to *",
            f"encoder: torchscript encoder.pt on 1 input set(s) recorded to "
            f"{export / 'reference'}/{written}",
            f"gate on them without torch: pytest --onnx-dir {export} --parity-recorded",
        ]
    )
    modelkit.damage_initializer(
        export / "encoder.onnx", export / "encoder.int8.onnx", "hidden_proj.weight", "scale", 3.0
    )
    gate = run_without_torch(
        pytester, monkeypatch, "--onnx-dir", str(export), "--parity-recorded", *xdist
    )
    gate.assert_outcomes(passed=4, failed=2)  # the damaged variant fails in weight space too
    gate.stdout.fnmatch_lines_random(
        [
            f"PASSED *encoder::parity?fp32{set_id}?",
            f"FAILED *encoder::parity?int8{set_id}? - *",
            f"PASSED *decoder::parity?fp32{set_id}?",
            "*encoder[[]int8[]] vs recorded reference/encoder* on inputs *: * gate(s) failed",
        ]
    )


def test_a_torchscript_reference_on_a_machine_without_torch_fails_naming_the_extra(
    pytester: pytest.Pytester, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyprojecttoml(TORCHSCRIPT_PYPROJECT)
    result = run_without_torch(pytester, monkeypatch, "--onnx-dir", str(export))
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*encoder[[]*[]] vs torchscript refs/encoder.pt on inputs default: torch is not "
            "installed, and the TorchScript reference encoder.pt needs it: pip install torch "
            "(the CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
            " (or gate on outputs recorded with --parity-record, which need no torch)"
        ]
    )


def test_recording_writes_every_input_set_with_its_reference_outputs(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    hook_conftest(pytester, MODULE_HOOK)
    result = run("--onnx-dir", str(export), "--parity-record", "--parity-sweep", "frames=8,12")
    result.assert_outcomes(passed=8)
    sets = read_recorded(export / "reference" / "encoder.npz")
    assert [s.name for s in sets] == ["frames=8", "frames=12"]
    module = modelkit.build_model("encoder")
    for recorded in sets:
        expected = modelkit.reference_outputs(module, dict(recorded.inputs.arrays))
        np.testing.assert_allclose(
            recorded.outputs["hidden"], expected["hidden"], rtol=1e-6, atol=1e-7
        )
    again = run("--onnx-dir", str(export), "--parity-recorded", "-v")
    again.assert_outcomes(passed=10)  # now decoder.onnx is gated against its recording too
    again.stdout.fnmatch_lines(["PASSED *encoder::parity?int8-frames=12?"])


def make_corrupt_pb(export: Path) -> None:
    (recorded,) = read_recorded(EXAMPLE / "reference" / "encoder.npz")
    written = write_recorded(export / "reference" / "encoder", [recorded])
    (written[0] / "input_0.pb").write_bytes(b"\x08\xff\xff junk")


def make_missing_output(export: Path) -> None:
    (recorded,) = read_recorded(EXAMPLE / "reference" / "encoder.npz")
    partial = RecordedSet(recorded.inputs, {"hidden": recorded.outputs["hidden"]})
    write_npz(export / "reference" / "encoder.npz", [partial])


def make_junk_npz(export: Path) -> None:
    (export / "reference").mkdir()
    (export / "reference" / "encoder.npz").write_bytes(b"junk")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            make_junk_npz,
            "*reference?encoder.npz: not a readable .npz file (not a zip archive); "
            "re-record it with --parity-record",
        ),
        (
            make_corrupt_pb,
            "*test_data_set_0?input_0.pb: not a serialized onnx.TensorProto *; "
            "re-record it with --parity-record",
        ),
        (
            make_missing_output,
            "*encoder.npz (set 'default'): no recorded output(s) "
            "[[]'logits'[]] (it has [[]'hidden'[]]); re-record it with --parity-record or list "
            "them in skip_outputs",
        ),
    ],
    ids=["junk-npz", "corrupt-pb", "missing-output"],
)
def test_a_broken_recording_fails_each_test_naming_the_file_and_the_fix(
    run: RunPytest, pytester: pytest.Pytester, export: Path, damage: Any, message: str
) -> None:
    damage(export)
    result = run("--onnx-dir", str(export), "--parity-recorded", "-k", "encoder")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


# --------------------------------------------------------------------------------------------
# Other ONNX references: a second folder, other session settings
# --------------------------------------------------------------------------------------------


def test_a_previous_release_folder_is_the_reference_of_every_graph(
    run: RunPytest, pytester: pytest.Pytester, export: Path, kit: Path
) -> None:
    result = run("--onnx-dir", str(export), "--parity-reference-dir", str(kit / "release-changed"))
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        ["*encoder[[]fp32[]] vs onnx release-changed/ (encoder.onnx) on inputs default: *failed"]
    )
    same = run("--onnx-dir", str(export), "--parity-reference-dir", str(kit / "export"))
    same.assert_outcomes(passed=6)


def test_a_release_folder_missing_a_graph_names_the_file_to_export(
    run: RunPytest, pytester: pytest.Pytester, export: Path, kit: Path
) -> None:
    (export / "extra.onnx").write_bytes((export / "decoder.onnx").read_bytes())
    (export / "extra.int8.onnx").write_bytes((export / "decoder.int8.onnx").read_bytes())
    result = run(
        "--onnx-dir",
        str(export),
        "--parity-reference-dir",
        str(kit / "release-changed"),
        "-k",
        "extra and int8",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*{kit / 'release-changed' / 'extra.onnx'}: no such file in the reference folder; "
            "export extra.onnx there or point --parity-reference-dir at the right release"
        ]
    )


def test_the_same_graph_with_graph_optimisation_off_is_a_reference(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    (export / "parity.toml").write_text(
        '[references.encoder]\nkind = "provider"\ngraph_optimization_level = "disable"\n'
    )
    out = pytester.path / "r.json"
    result = run("--onnx-dir", str(export), "-k", "encoder", "--parity-json", str(out))
    result.assert_outcomes(passed=3)
    record = records(out)["encoder::parity[fp32]"]
    assert record["reference"] == "onnx opt=disable (encoder.onnx)"
    assert record["parity"]["passed"]


# --------------------------------------------------------------------------------------------
# Real inputs and upstream graphs
# --------------------------------------------------------------------------------------------

INPUTS_HOOK = """
def pytest_onnxparity_inputs(graph, config):
    if graph != "encoder":
        return None
    model = modelkit.build_model("encoder")
    return {
        name: {k: v.numpy() for k, v in model.example_inputs(batch=1, seed=seed).items()}
        for name, seed in (("speech", 1), ("silence", 2))
    }
"""


def test_real_inputs_from_a_hook_and_a_file_are_test_ids_beside_the_synthesized_ones(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    hook_conftest(pytester, INPUTS_HOOK)
    write_npz(
        export / "clips.npz",
        [RecordedSet(InputSet("default", "", None, {}, encoder_arrays(5)), {})],
    )
    (export / "parity.toml").write_text('[references.encoder]\ninput_data = ["clips.npz"]\n')
    out = pytester.path / "r.json"
    result = run(
        "--onnx-dir",
        str(export),
        "-k",
        "encoder and int8",
        "-v",
        "--parity-json",
        str(out),
    )
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "PASSED *encoder::parity?int8?",
            "PASSED *encoder::parity?int8-clips?",
            "PASSED *encoder::parity?int8-speech?",
            "PASSED *encoder::parity?int8-silence?",
        ]
    )
    found = records(out)
    assert (
        found["encoder::parity[int8-speech]"]["input_set"]["source"]
        == "hook pytest_onnxparity_inputs"
    )
    assert found["encoder::parity[int8-clips]"]["input_set"]["shapes"]["features"] == [1, 12, 16]
    (export / "parity.toml").write_text("[references.encoder]\nsynthesize = false\n")
    real_only = run("--onnx-dir", str(export), "-k", "encoder and int8")
    real_only.assert_outcomes(passed=3)


def test_hook_inputs_that_do_not_fit_the_graph_fail_naming_the_hook_and_the_fix(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    hook_conftest(
        pytester,
        """
        def pytest_onnxparity_inputs(graph, config):
            if graph == "encoder":
                return {"features": np.zeros((1, 4, 16)), "lengths": np.array([4])}
        """,
    )
    result = run("--onnx-dir", str(export), "-k", "encoder")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest_onnxparity_inputs hook for 'encoder': input set 'hook' input 'features' is "
            "float64, the graph takes float32; save it as float32"
        ]
    )


def test_the_decoder_runs_on_the_encoder_outputs_declared_in_config(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    (export / "parity.toml").write_text(
        textwrap.dedent(
            """
            [[references.inputs_from]]
            graph = "decoder"
            from = "encoder"
            map = { encoder_hidden = "hidden" }
            """
        )
    )
    out = pytester.path / "r.json"
    result = run(
        "--onnx-dir",
        str(export),
        "--parity-sweep",
        "frames=8,12",
        "-v",
        "--parity-json",
        str(out),
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines_random(
        ["PASSED *decoder::parity?int8-frames=8?", "PASSED *decoder::parity?int8-frames=12?"]
    )
    record = records(out)["decoder::parity[int8-frames=12]"]
    assert record["input_set"]["source"] == "encoder outputs (onnx fp32 (encoder.onnx))"
    assert record["input_set"]["shapes"] == {"encoder_hidden": [4, 12, 32], "lengths": [4]}


# --------------------------------------------------------------------------------------------
# The parity_reference fixture, and bad configuration
# --------------------------------------------------------------------------------------------


def test_a_user_test_picks_another_reference_with_the_parity_reference_fixture(
    run: RunPytest, pytester: pytest.Pytester, export: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parity(graph="encoder", variant="int8")
        def test_int8_against_torchscript(parity_case, parity_reference, assert_parity):
            reference = parity_reference("encoder", kind="torchscript", path="refs/encoder.pt")
            assert reference.description == "torchscript encoder.pt"
            expected = reference.outputs(parity_case.inputs)
            assert_parity(expected, parity_case.variant_outputs(), tier="int8")

        def test_the_configured_reference(parity_reference):
            assert parity_reference("decoder").description == "onnx fp32 (decoder.onnx)"

        def test_a_bad_table(parity_reference):
            parity_reference("encoder", kind="pytorch")
        """
    )
    result = run(
        "--onnx-dir",
        str(export),
        "test_a_user_test_picks_another_reference_with_the_parity_reference_fixture.py",
    )
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*parity_reference: parity_reference('encoder') [[]references.encoder[]]: kind "
            "'pytorch' is not one of*"
        ]
    )


@pytest.mark.parametrize(
    ("table", "args", "message"),
    [
        (
            '[references.encodr]\npath = "x.onnx"\n',
            (),
            "*parity.toml [[]references.encodr[]]: no graph 'encodr' in the export folder; "
            "graphs are decoder, encoder",
        ),
        (
            '[references.encoder]\nkind = "pytorch"\n',
            (),
            "*parity.toml [[]references.encoder[]]: kind 'pytorch' is not one of onnx, *",
        ),
        (
            '[[references.inputs_from]]\ngraph = "decoder"\nfrom = "nope"\n',
            (),
            "*no graph 'nope' in the export folder*",
        ),
        (
            "",
            ("--parity-recorded", "--parity-reference-dir", "."),
            "*--parity-recorded and "
            "--parity-reference-dir both replace every graph's reference; pass one of them",
        ),
        (
            "",
            ("--parity-reference-dir", "nowhere"),
            "*--parity-reference-dir *nowhere: no such "
            "directory; pass the export folder to compare with*",
        ),
        ("", ("--parity-record", "tar"), "*argument --parity-record: invalid choice: 'tar'*"),
    ],
    ids=["unknown-graph", "unknown-kind", "unknown-upstream", "two-references", "no-dir", "layout"],
)
def test_bad_reference_settings_are_usage_errors(
    run: RunPytest,
    pytester: pytest.Pytester,
    export: Path,
    table: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    if table:
        (export / "parity.toml").write_text(table)
    result = run("--onnx-dir", str(export), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
