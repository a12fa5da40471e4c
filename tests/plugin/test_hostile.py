"""Bad input, careless or hostile: every class gets an exit code and one line naming the file and
the fix, never a traceback, never a silent pass (docs/reliability.md lists the classes).

Each case builds its damage on a private copy of the example export, runs pytest on it
in-process and checks the exit code, the message and that no frame of pytest, pluggy or the
plugin was printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import RunPytest
from tests.onnx_models import endless_loop_model
from tests.paths import EXAMPLE

OK = pytest.ExitCode.OK
FAILED = pytest.ExitCode.TESTS_FAILED
USAGE = pytest.ExitCode.USAGE_ERROR

# A traceback is any of these; a one-line failure (pytrace=False) has none of them.
TRACEBACK_MARKS = ("Traceback", "INTERNALERROR", "site-packages/", "_pytest/", "pluggy/")


@dataclass(frozen=True)
class Case:
    """One class of bad input: ``setup(export, pytester)`` damages the copy and returns the
    command line; the run must end with ``exit_code`` and print ``lines`` (fnmatch)."""

    name: str
    setup: Callable[[Path, pytest.Pytester], list[str]]
    exit_code: pytest.ExitCode
    lines: tuple[str, ...]
    check: Callable[[Path, pytest.Pytester], None] | None = field(default=None)


def _dir(export: Path, *args: str) -> list[str]:
    # One argument: pytest takes the value of a "--onnx-dir PATH" pair for a test path when it
    # picks the rootdir, and the project files of these cases live in pytester's folder.
    return [f"--onnx-dir={export}", *args]


def _config(export: Path, text: str | bytes, *args: str) -> list[str]:
    target = export / "parity.toml"
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")
    return _dir(export, *args)


def _edit(
    path: Path, change: Callable[[onnx.ModelProto], None], target: Path | None = None
) -> None:
    model = onnx.load(path)
    change(model)
    onnx.save(model, str(target or path))


def _set_ir(model: onnx.ModelProto) -> None:
    model.ir_version = 99


def _set_opset(model: onnx.ModelProto) -> None:
    model.opset_import[0].version = 99


def _add_unknown_op(model: onnx.ModelProto) -> None:
    model.graph.node.insert(
        0, helper.make_node("Frobnicate", ["pixels"], ["unused"], domain="com.example")
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))


def _reverse_nodes(model: onnx.ModelProto) -> None:
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))


def _dangle(model: onnx.ModelProto) -> None:
    model.graph.node[1].input[0] = "nowhere"


def _rename_input(model: onnx.ModelProto) -> None:
    old = model.graph.input[0].name
    model.graph.input[0].name = "images"
    for node in model.graph.node:
        node.input[:] = ["images" if name == old else name for name in node.input]


def _empty_folder(export: Path, _: pytest.Pytester) -> list[str]:
    (export.parent / "empty").mkdir()
    return ["--onnx-dir", str(export.parent / "empty")]


def _bad_bytes(export: Path, _: pytest.Pytester) -> list[str]:
    (export / "classifier_int8.onnx").write_text("this is not a model")
    return _dir(export, "-k", "classifier and int8")


def _truncated(export: Path, _: pytest.Pytester) -> list[str]:
    model = export / "encoder.int4.onnx"
    model.write_bytes(model.read_bytes()[:500])
    return _dir(export, "-k", "encoder and int4")


def _empty_file(export: Path, _: pytest.Pytester) -> list[str]:
    (export / "classifier_int8.onnx").write_bytes(b"")
    return _dir(export, "-k", "classifier and int8")


def _external(export: Path, name: str = "classifier_int8.onnx") -> Path:
    import modelkit

    target = export / name
    modelkit.save_with_external_data(export / "classifier.onnx", target)
    return Path(str(target) + ".data")


def _missing_sidecar(export: Path, _: pytest.Pytester) -> list[str]:
    _external(export).unlink()
    return _dir(export, "-k", "classifier and int8")


def _linked_sidecar(export: Path, _: pytest.Pytester) -> list[str]:
    sidecar = _external(export)
    elsewhere = export.parent / "elsewhere.data"
    shutil.move(sidecar, elsewhere)
    sidecar.symlink_to(elsewhere)
    return _dir(export, "-k", "classifier and int8")


def _sidecar_out_of_bounds(export: Path, _: pytest.Pytester) -> list[str]:
    _external(export)

    def shift(model: onnx.ModelProto) -> None:
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "offset":
                    entry.value = str(int(entry.value) + 10**9)

    path = export / "classifier_int8.onnx"
    model = onnx.load(path, load_external_data=False)
    shift(model)
    path.write_bytes(model.SerializeToString())
    return _dir(export, "-k", "classifier and int8")


def _model_edit(name: str, change: Callable[[onnx.ModelProto], None], keyword: str) -> Callable:
    def setup(export: Path, _: pytest.Pytester) -> list[str]:
        _edit(export / name, change)
        return _dir(export, "-k", keyword)

    return setup


def _model_named_as_data(export: Path, _: pytest.Pytester) -> list[str]:
    def name_the_reference(model: onnx.ModelProto) -> None:
        tensor = model.graph.initializer.add()
        tensor.name, tensor.data_type = "unused", TensorProto.FLOAT
        tensor.dims.append(1)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "classifier.onnx"), ("offset", "0"), ("length", "4")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value

    _edit(export / "classifier_int8.onnx", name_the_reference)
    return _dir(export, "-k", "classifier")


def _unknown_underscore_tag(export: Path, _: pytest.Pytester) -> list[str]:
    import modelkit

    modelkit.damage_initializer(
        export / "classifier.onnx", export / "classifier_qdq8.onnx", "head.2.bias", "scale", 50.0
    )
    return _dir(export, "-k", "classifier and qdq8")


def _nan_variant(export: Path, _: pytest.Pytester) -> list[str]:
    import modelkit

    modelkit.damage_initializer(
        export / "classifier.onnx",
        export / "classifier_int8.onnx",
        "head.2.bias",
        mode="scale",
        factor=float("nan"),
    )
    return _dir(export, "-k", "classifier and int8", "--parity-tolerance", "rel_l2=1")


def _small_folder(export: Path, models: dict[str, onnx.ModelProto]) -> Path:
    folder = export.parent / "small"
    folder.mkdir()
    for name, model in models.items():
        onnx.save(model, str(folder / name))
    return folder


def _one_node(
    op: str, dtype: int, shape: list, value: np.ndarray, **attrs: object
) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "k"], ["y"], **attrs)],
        "g",
        [helper.make_tensor_value_info("x", dtype, shape)],
        [helper.make_tensor_value_info("y", dtype, None)],
        initializer=[numpy_helper.from_array(value, "k")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _reshape_dim(export: Path, _: pytest.Pytester) -> list[str]:
    model = _one_node("Reshape", TensorProto.FLOAT, ["batch", "T"], np.array([-1, 7]))
    return ["--onnx-dir", str(_small_folder(export, {"m.onnx": model, "m_int8.onnx": model}))]


def _huge_float64(scale: float) -> Callable:
    def setup(export: Path, _: pytest.Pytester) -> list[str]:
        reference = _one_node("Mul", TensorProto.DOUBLE, [4], np.array(1e300))
        variant = _one_node("Mul", TensorProto.DOUBLE, [4], np.array(1e300 * scale))
        folder = _small_folder(export, {"m.onnx": reference, "m_int8.onnx": variant})
        return ["--onnx-dir", str(folder)]

    return setup


def _huge_static_dim(export: Path, _: pytest.Pytester) -> list[str]:
    model = _one_node("Mul", TensorProto.FLOAT, [10**11, 16], np.array(2.0, np.float32))
    return ["--onnx-dir", str(_small_folder(export, {"m.onnx": model, "m_int8.onnx": model}))]


def _endless_loop(export: Path, _: pytest.Pytester) -> list[str]:
    model = endless_loop_model()
    folder = _small_folder(export, {"loop.onnx": model, "loop_int8.onnx": model})
    (folder / "parity.toml").write_text("[session]\nrun_timeout = 1\n")
    return ["--onnx-dir", str(folder)]


def _recorded(damage: Callable[[Path], None]) -> Callable:
    def setup(export: Path, _: pytest.Pytester) -> list[str]:
        shutil.copytree(EXAMPLE / "reference", export / "reference")
        damage(export / "reference" / "encoder.npz")
        return _dir(export, "--parity-recorded", "-k", "encoder")

    return setup


def _corrupt_member(path: Path) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + 8
    data[start : start + 16] = bytes(byte ^ 0xFF for byte in data[start : start + 16])
    path.write_bytes(bytes(data))


def _huge_header(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 16), }"
    header = header.ljust(117) + "\n"
    members["input.features.npy"] = (
        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64)
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _outputs(*args: str) -> Callable:
    def setup(export: Path, pytester: pytest.Pytester) -> list[str]:
        (pytester.path / "a-file").write_text("x")
        (pytester.path / "parity.toml").write_text("[graphs.encoder]\nseed = 1\n")
        resolved = [arg.replace("EXPORT", str(export)) for arg in args]
        return _dir(export, "-k", "encoder and int8", *resolved)

    return setup


def _baseline_is_output(export: Path, pytester: pytest.Pytester) -> list[str]:
    baseline = pytester.path / "old.json"
    baseline.write_text(json.dumps({"schema": "pytest-onnxparity/metadata", "schema_version": 1}))
    return _dir(export, "--parity-baseline", str(baseline), "--parity-json", str(baseline))


def _torchscript_submodule(export: Path, pytester: pytest.Pytester) -> list[str]:
    import torch

    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(16, 32)))
    torch.jit.save(scripted, str(pytester.path / "encoder.pt"))
    pytester.makepyprojecttoml(
        '[tool.onnxparity.references.encoder]\npath = "encoder.pt"\nsubmodule = "nope"\n'
    )
    return _dir(export, "-k", "encoder and int8")


def _hook_fails_in_torch(export: Path, pytester: pytest.Pytester) -> list[str]:
    pytester.makeconftest(
        """
        import torch

        def pytest_onnxparity_reference(graph, config):
            return torch.zeros(2, 3) @ torch.zeros(4, 5)
        """
    )
    return _dir(export, "-k", "encoder and int8")


def _sibling_conftests(export: Path, pytester: pytest.Pytester) -> list[str]:
    for folder in ("a", "b"):
        pytester.mkdir(folder)
        (pytester.path / folder / "conftest.py").write_text(
            "def pytest_onnxparity_reference(graph, config):\n"
            "    return (lambda features, lengths: (features, features)) "
            "if graph == 'encoder' else None\n"
        )
    return ["a", "b", *_dir(export, "-k", "encoder and int8")]


def _conftest_in_export(export: Path, pytester: pytest.Pytester) -> list[str]:
    (export / "conftest.py").write_text(
        f"import pathlib\npathlib.Path({str(pytester.path / 'ran')!r}).write_text('x')\n"
        "def pytest_onnxparity_reference(graph, config):\n    return lambda *a: a\n"
    )
    return _dir(export, "-k", "classifier and int8")


def _conftest_never_ran(export: Path, pytester: pytest.Pytester) -> None:
    assert not (pytester.path / "ran").exists()


def _export_as_test_path(export: Path, pytester: pytest.Pytester) -> list[str]:
    return [str(export), *_conftest_in_export(export, pytester)]


def _assert_parity_on_nothing(export: Path, pytester: pytest.Pytester) -> list[str]:
    pytester.makepyfile(
        test_nothing="def test_nothing(assert_parity):\n    assert_parity({}, {})\n"
    )
    return ["test_nothing.py"]


def _sequence_without_clips(*args: str) -> Callable:
    def setup(export: Path, _: pytest.Pytester) -> list[str]:
        return _config(export, "[sequence]\nmax_wer = 0.1\n", *args)

    return setup


def _graph_escape(value: str) -> Callable:
    def setup(export: Path, _: pytest.Pytester) -> list[str]:
        table = f'[files."classifier_int8.onnx"]\ngraph = {json.dumps(value)}\n'
        return _config(export, table, "--parity-record")

    return setup


CASES = [
    # --- the folder and its files -------------------------------------------------------
    Case(
        "missing-folder",
        lambda export, _: ["--onnx-dir", str(export / "nope")],
        USAGE,
        ("*onnxparity: --onnx-dir *nope: no such directory; pass the folder your export wrote",),
    ),
    Case(
        "folder-without-models",
        _empty_folder,
        USAGE,
        ("*empty holds no .onnx file; pass the folder your export wrote (--onnx-dir)",),
    ),
    Case(
        "not-a-model",
        _bad_bytes,
        FAILED,
        ("*classifier_int8.onnx: not a readable ONNX model (corrupt protobuf); re-export it*",),
    ),
    Case(
        "truncated-model",
        _truncated,
        FAILED,
        ("*encoder.int4.onnx: not a readable ONNX model (*); re-export it or remove it*",),
    ),
    Case(
        "empty-model-file",
        _empty_file,
        FAILED,
        ("*classifier_int8.onnx: not a readable ONNX model (empty file); re-export it*",),
    ),
    Case(
        "missing-sidecar",
        _missing_sidecar,
        FAILED,
        ("*classifier_int8.onnx: external data * not found next to the model; copy the sidecar*",),
    ),
    Case(
        "sidecar-linked-outside",
        _linked_sidecar,
        FAILED,
        (
            "*classifier_int8.onnx: external data * is a symbolic link to *elsewhere.data, outside "
            "the export folder; move the data next to the model*",
        ),
    ),
    Case(
        "sidecar-too-short",
        _sidecar_out_of_bounds,
        FAILED,
        (
            "*classifier_int8.onnx: onnxruntime cannot load this model (*out of bounds*); its "
            "external data file (classifier_int8.onnx.data) is missing, shorter than the model "
            "says*",
        ),
    ),
    Case(
        "model-named-as-data",
        _model_named_as_data,
        FAILED,
        (
            "*classifier_int8.onnx: names classifier.onnx, an ONNX model of this folder, as its "
            "external data; re-save it with onnx.save_model(*",
        ),
    ),
    Case(
        "unknown-underscore-tag",
        _unknown_underscore_tag,
        FAILED,
        (
            "*unknown tag 'qdq8' in classifier_qdq8.onnx: taken as a variant of classifier*",
            "*classifier[[]qdq8[]] vs fp32 on inputs default: * gate(s) failed*",
        ),
    ),
    Case(
        "ir-version-99",
        _model_edit("classifier_int8.onnx", _set_ir, "classifier and int8"),
        FAILED,
        (
            "*classifier_int8.onnx: onnxruntime cannot load this model (Unsupported model IR "
            "version: 99, max supported IR version: *); re-export with an older onnx*",
        ),
    ),
    Case(
        "opset-99",
        _model_edit("classifier_int8.onnx", _set_opset, "classifier and int8"),
        FAILED,
        (
            "*classifier_int8.onnx: onnxruntime cannot load this model (Opset 99 * till opset *); "
            "re-export with an opset <= *, or upgrade onnxruntime",
        ),
    ),
    Case(
        "unknown-operator",
        _model_edit("classifier_int8.onnx", _add_unknown_op, "classifier and int8"),
        FAILED,
        ("*classifier_int8.onnx: onnxruntime cannot load this model (*Frobnicate*); *",),
    ),
    Case(
        "nodes-out-of-order",
        _model_edit("classifier_fp16.onnx", _reverse_nodes, "classifier and fp16"),
        FAILED,
        (
            "*classifier_fp16.onnx: not a valid ONNX graph (node 0 * reads * before * makes it: "
            "the nodes are not in topological order); sort its nodes topologically*",
        ),
    ),
    Case(
        "dangling-input",
        _model_edit("classifier_int8.onnx", _dangle, "classifier and int8"),
        FAILED,
        (
            "*classifier_int8.onnx: not a valid ONNX graph (node 1 * reads 'nowhere', which no "
            "node, input or initializer makes); re-export it",
        ),
    ),
    Case(
        "variant-input-renamed",
        _model_edit("classifier_int8.onnx", _rename_input, "classifier and int8"),
        FAILED,
        ("*classifier_int8.onnx: inputs [[]'images'[]] differ from the reference's*re-export*",),
    ),
    Case(
        "variant-nan",
        _nan_variant,
        FAILED,
        ("*NaN/Inf value(s) where the reference is finite (no tolerance can pass this)*",),
    ),
    Case(
        "float64-above-1e38-identical",
        _huge_float64(1.0),
        OK,
        ("*1 passed*",),
    ),
    Case(
        "float64-above-1e38-different",
        _huge_float64(3.0),
        FAILED,
        ("*m[[]int8[]] vs fp32 on inputs default: * gate(s) failed*",),
    ),
    Case(
        "reshape-of-a-synthesized-dim",
        _reshape_dim,
        FAILED,
        (
            "*m.onnx: onnxruntime failed to run it (Reshape node: *requested shape*); the inputs "
            "were synthesized with dynamic dims *T=16*; * set them with --parity-dim NAME=SIZE*",
        ),
    ),
    Case(
        "endless-loop",
        _endless_loop,
        FAILED,
        (
            "*loop*.onnx: inference ran past the 1 s limit and was stopped *; if the model is just "
            "slow, raise [[]session[]] run_timeout in parity.toml",
        ),
    ),
    Case(
        "huge-dim-option",
        lambda export, _: _dir(
            export, "-k", "encoder and int8", "--parity-dim", "frames=" + "1" + "0" * 11
        ),
        FAILED,
        (
            "*graph 'encoder': input 'features' of shape * needs * GB for one input set, above the "
            "* GB budget; set smaller sizes with --parity-dim NAME=SIZE (now *frames=*)*",
        ),
    ),
    Case(
        "huge-static-dim",
        _huge_static_dim,
        FAILED,
        (
            "*graph 'm': input 'x' of shape [[]100000000000, 16[]] * above the * budget; its "
            "shape is static: supply real inputs*",
        ),
    ),
    Case(
        "size-budget-of-an-empty-file",
        lambda export, pytester: (
            [*_empty_file(export, pytester), "--parity-size-budget", "classifier:ratio>=1"]
        ),
        FAILED,
        (
            "*classifier[[]int8[]] (classifier_int8.onnx): 0 bytes, which is no model; re-export "
            "it or remove it",
        ),
    ),
    # --- recorded data ---------------------------------------------------------------------
    Case(
        "corrupt-npz-member",
        _recorded(_corrupt_member),
        FAILED,
        ("*encoder.npz: not a readable .npz file (*); re-record it with --parity-record",),
    ),
    Case(
        "npy-header-declares-terabytes",
        _recorded(_huge_header),
        FAILED,
        (
            "*encoder.npz: member 'input.features.npy' declares shape [[]100000000000, 16[]] * "
            "but holds 64 bytes; the file is corrupt: re-record it with --parity-record",
        ),
    ),
    # --- configuration that guards nothing, or breaks ---------------------------------------
    Case(
        "bad-tolerance-value",
        lambda export, _: _dir(export, "--parity-tolerance", "rel_l2=-1"),
        USAGE,
        ("*--parity-tolerance: rel_l2 must be a finite, non-negative number, got '-1'*",),
    ),
    Case(
        "tolerance-scope-names-nothing",
        lambda export, _: _dir(export, "--parity-tolerance", "int9:rel_l2=0"),
        USAGE,
        (
            "*--parity-tolerance int9:rel_l2=0*: scope 'int9' names no tier, graph, variant or "
            "output of *; use a tier (*",
        ),
    ),
    Case(
        "graph-table-names-nothing",
        lambda export, _: _config(export, "[graphs.modle]\ntolerance = { rel_l2 = 0.1 }\n"),
        USAGE,
        (
            "*parity.toml [[]graphs.\"modle\"[]]: no graph 'modle' in *; graphs are classifier, "
            "encoder; fix the name or remove the table",
        ),
    ),
    Case(
        "variant-table-names-nothing",
        lambda export, _: _config(export, "[graphs.encoder.variants.int9]\ntolerance = {}\n"),
        USAGE,
        (
            "*[[]variants.\"int9\"[]]: graph encoder has no variant 'int9'; its files are *; fix "
            "the tag or remove the table",
        ),
    ),
    Case(
        "output-table-names-nothing",
        lambda export, _: _config(export, "[graphs.encoder.outputs.hiden]\nrel_l2 = 0.1\n"),
        USAGE,
        (
            "*[[]outputs.hiden[]]: graph encoder has no output 'hiden'; its outputs are hidden, "
            "logits; fix the name",
        ),
    ),
    Case(
        "skip-every-output",
        lambda export, _: _config(
            export, '[graphs.encoder]\nskip_outputs = ["hidden", "logits"]\n'
        ),
        USAGE,
        (
            "*skip_outputs: lists every output of encoder, so no test of it would compare "
            "anything; keep at least one output",
        ),
    ),
    Case(
        "assert-parity-on-nothing",
        _assert_parity_on_nothing,
        FAILED,
        ("*custom[[]custom[]]: no output to compare (no outputs); compare at least one output",),
    ),
    Case(
        "exclude-matches-nothing",
        lambda export, _: _config(export, 'exclude = ["*_q4.onnx"]\n'),
        USAGE,
        ("*exclude pattern '*_q4.onnx' matches no .onnx file under *; fix or remove it",),
    ),
    Case(
        "exclude-leaves-no-variant-and-variants-are-required",
        lambda export, _: _config(
            export, 'exclude = ["classifier_*"]\nrequire_variants = true\n', "-k", "classifier"
        ),
        FAILED,
        (
            "*no variant, only checked to load: classifier*",
            "*classifier.onnx: graph classifier has no variant to compare, and require_variants = "
            "true (*); add the variant files, check exclude*",
        ),
    ),
    Case(
        "unknown-config-key",
        lambda export, _: _config(export, "[graphs.encoder]\nrefrence = 'fp32'\n"),
        USAGE,
        ("*parity.toml [[]graphs.encoder[]]: unknown key 'refrence'; allowed keys: reference*",),
    ),
    Case(
        "config-not-toml",
        lambda export, _: _config(export, "[graphs.encoder\n"),
        USAGE,
        ("*parity.toml: not valid TOML (*); fix the syntax",),
    ),
    Case(
        "config-not-utf8",
        lambda export, _: _config(export, b"seed = 1 # \xff\xfe\n"),
        USAGE,
        ("*parity.toml: not UTF-8 text (byte *); save it as UTF-8",),
    ),
    Case(
        "float-range-past-float32",
        lambda export, _: _config(export, "float_range = [-1e308, 1e308]\n"),
        USAGE,
        (
            "*float_range must lie within [[]-1e+38, 1e+38[]] (finite in float32), got *; narrow "
            "the range",
        ),
    ),
    Case(
        "float-range-nan",
        lambda export, _: _config(export, "float_range = [nan, 1.0]\n"),
        USAGE,
        ("*float_range must be [[]low, high[]] with low <= high, got [[]nan, 1.0[]]",),
    ),
    Case(
        "int-range-past-int64",
        lambda export, _: _config(export, "int_range = [0, 99999999999999999999]\n"),
        USAGE,
        (
            "*int_range must lie within int64 [[]*[]], got [[]0, 99999999999999999999[]]; narrow "
            "the range",
        ),
    ),
    Case(
        "sequence-table-without-clips-leaves-other-tests-alone",
        _sequence_without_clips("-k", "encoder and int8"),
        OK,
        ("*1 passed*",),
    ),
    Case(
        "sequence-table-without-clips-fails-its-own-test",
        _sequence_without_clips("-k", "sequence"),
        FAILED,
        ("*parity.toml [[]sequence[]]: no clips: set clips_dir *or pass --parity-clips DIR",),
    ),
    Case(
        "unknown-dim",
        lambda export, _: _dir(export, "--parity-dim", "framez=4"),
        USAGE,
        ("*framez*",),
    ),
    # --- what runs, and where the run writes ---------------------------------------------------
    Case(
        "conftest-in-the-export-folder",
        _conftest_in_export,
        OK,
        ("*1 passed*",),
        check=_conftest_never_ran,
    ),
    Case(
        "export-folder-given-as-a-test-path",
        _export_as_test_path,
        USAGE,
        (
            "*onnxparity: *conftest.py: the export folder is data and its conftest.py is never "
            "imported, but * is also given as a test path*; pass the folder only as --onnx-dir*",
        ),
        check=_conftest_never_ran,
    ),
    Case(
        "shipped-config-allows-pickles",
        lambda export, _: _config(
            export,
            '[references.encoder]\nkind = "checkpoint"\npath = "x.pt"\nallow_pickle = true\n',
        ),
        USAGE,
        (
            "*parity.toml [[]references.encoder[]]: allow_pickle is refused in an export folder's "
            "parity.toml (unpickling runs code shipped with the folder)*",
        ),
    ),
    Case(
        "graph-name-climbs-out",
        _graph_escape("../../x"),
        USAGE,
        (
            "*[[]files.\"classifier_int8.onnx\"[]] graph is '../../x'; a graph name is a "
            "plain name*",
        ),
    ),
    Case(
        "graph-name-absolute",
        _graph_escape("/tmp/x"),
        USAGE,
        ("*[[]files.\"classifier_int8.onnx\"[]] graph is '/tmp/x'; a graph name is a plain name*",),
    ),
    Case(
        "results-over-a-model",
        _outputs("--parity-json", "EXPORT/encoder.onnx"),
        USAGE,
        (
            "*--parity-json *encoder.onnx: is an input of this run and would be overwritten; write "
            "the output somewhere else",
        ),
    ),
    Case(
        "results-over-the-baseline",
        _baseline_is_output,
        USAGE,
        ("*--parity-json *old.json: is an input of this run and would be overwritten*",),
    ),
    Case(
        "results-and-metadata-on-one-path",
        _outputs("--parity-json", "out.json", "--parity-metadata", "out.json"),
        USAGE,
        (
            "*--parity-metadata *out.json: is also the path of --parity-json; give each output its "
            "own path",
        ),
    ),
    Case(
        "suggest-over-a-hand-written-config",
        _outputs("--parity-suggest", "parity.toml"),
        USAGE,
        (
            "*--parity-suggest *parity.toml: exists and was not written by this option (a "
            "hand-written file?); name a new file, or delete it first if it may go, or add "
            "--parity-suggest-force to replace it",
        ),
    ),
    Case(
        "output-under-a-file",
        _outputs("--parity-json", "a-file/results.json"),
        USAGE,
        (
            "*--parity-json *a-file/results.json: its folder cannot be created (*a-file is a "
            "file); fix the path",
        ),
    ),
    # --- references and hooks ---------------------------------------------------------------
    Case(
        "torchscript-submodule-missing",
        _torchscript_submodule,
        FAILED,
        ("*encoder.pt: has no submodule 'nope' (children: *); fix submodule in *",),
    ),
    Case(
        "hook-fails-inside-torch",
        _hook_fails_in_torch,
        FAILED,
        (
            "*the pytest_onnxparity_reference hook raised RuntimeError for graph 'encoder' at "
            "conftest.py:4: mat1 and mat2 shapes cannot be multiplied *; fix the hook "
            "(conftest.py:3)",
        ),
    ),
    Case(
        "two-conftests-answer-for-one-graph",
        _sibling_conftests,
        FAILED,
        (
            "*onnxparity reference hook: a*conftest.py:1, b*conftest.py:1 *",
            "*the pytest_onnxparity_reference hook answers for graph 'encoder' in both "
            "*conftest.py:1 and *conftest.py:1; return None for it from all but one*",
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_ends_with_one_line_naming_the_file_and_the_fix(
    case: Case, run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    args = case.setup(export_copy, pytester)
    result = run(*args)
    output = [*result.stdout.lines, *result.stderr.lines]
    assert result.ret == case.exit_code, "\n".join(output)
    pytest.LineMatcher(output).fnmatch_lines(list(case.lines))
    text = "\n".join(output)
    assert not [mark for mark in TRACEBACK_MARKS if mark in text], text
    if case.check is not None:
        case.check(export_copy, pytester)


def test_the_table_covers_forty_classes_of_bad_input() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 40


def test_a_crash_while_loading_names_the_model_file(
    pytester: pytest.Pytester, export_copy: Path
) -> None:
    # onnxruntime segfaults on some malformed graphs; stand in for it with a real segfault.
    pytester.makeconftest(
        """
        import ctypes
        import onnxruntime

        real = onnxruntime.InferenceSession

        def crashing(path, *args, **kwargs):
            if str(path).endswith("classifier_int8.onnx"):
                ctypes.string_at(0)
            return real(path, *args, **kwargs)

        onnxruntime.InferenceSession = crashing
        """
    )
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--onnx-dir", str(export_copy)],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode != 0
    assert f"<onnxparity loading {export_copy / 'classifier_int8.onnx'}>" in completed.stderr


def test_results_name_the_metadata_written_with_them_and_old_temporaries_go(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import hashlib

    results, metadata = pytester.path / "results.json", pytester.path / "parity-metadata.json"
    stale = pytester.path / ".results.json.0123abcd.tmp"  # left by a run killed mid-write
    stale.write_text("{")
    result = run(
        f"--onnx-dir={export_copy}",
        "-k",
        "encoder and int8",
        "--parity-json",
        str(results),
        "--parity-metadata",
        str(metadata),
    )
    assert result.ret == OK
    companion = json.loads(results.read_text())["run"]["companions"]["parity metadata"]
    assert companion == {
        "path": str(metadata),
        "sha256": hashlib.sha256(metadata.read_bytes()).hexdigest(),
    }
    assert not stale.exists()
    assert not [path.name for path in pytester.path.iterdir() if path.name.endswith(".tmp")]
