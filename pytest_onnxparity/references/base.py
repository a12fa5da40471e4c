"""References: what a graph's variants are compared with.

A reference turns an :class:`InputSet` into named outputs. Kinds, chosen per graph in the
``[references]`` config table (:mod:`pytest_onnxparity.references.config`), on the command line,
or by the ``pytest_onnxparity_reference`` conftest hook:

* ``onnx``: an ONNX file, by default the graph's own fp32 file in ``--onnx-dir``;
* ``other-dir``: the file at the same relative path in another folder
  (``--parity-reference-dir``), e.g. yesterday's release;
* ``provider``: the graph's fp32 file under other session settings (another execution provider,
  graph optimisation off);
* ``torchscript``: a ``*.pt`` / ``*.jit`` TorchScript archive (needs the ``torch`` extra);
* ``checkpoint``: a ``torch.save``'d module, only with ``allow_pickle = true`` (it runs code from
  the file);
* ``module``: an ``nn.Module`` or any callable that a conftest hook returns;
* ``recorded``: outputs recorded earlier (``.npz`` or the ONNX test-data layout), which bring
  their own inputs and need no torch.

Where the input sets come from (files, a hook, an upstream graph) is
:mod:`pytest_onnxparity.run.real_inputs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pytest_onnxparity.references.config import ONNX_KINDS, InputMapping, ReferenceSpec
from pytest_onnxparity.references.recorded import RecordedDataError, RecordedSet, read_recorded
from pytest_onnxparity.runtime.inputs import InputSet
from pytest_onnxparity.runtime.sessions import (
    ModelLoadError,
    OnnxRunner,
    SessionSettings,
    open_session,
)

# An output named this in ``outputs = [...]`` is returned by the callable but not compared.
DROP_OUTPUT = "_"


# Shadows the builtin weakref ReferenceError inside this module only; the public name is ours.
class ReferenceError(RuntimeError):
    """A reference cannot be built or run; the one-line message names the file and the fix."""


class Reference(Protocol):
    """What a graph's variants are compared with."""

    @property
    def description(self) -> str:
        """One line for reports: ``onnx fp32 (encoder.onnx)``, ``torchscript model.pt``, ..."""
        ...

    def outputs(self, inputs: InputSet) -> dict[str, np.ndarray]:
        """The reference outputs for ``inputs``, keyed by the graph's output names."""
        ...

    def input_sets(self) -> list[InputSet] | None:
        """The input sets this reference brings (recorded data), or None to use the run's."""
        ...


# --------------------------------------------------------------------------------------------
# Reference kinds
# --------------------------------------------------------------------------------------------


class _OutputCache:
    """Outputs per input set, keyed by its name and a digest of its arrays, so a set name reused
    with other arrays is recomputed rather than answered wrongly."""

    def __init__(self) -> None:
        self._outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self.misses = 0

    def get(
        self, inputs: InputSet, compute: Callable[[InputSet], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        key = (inputs.name, _digest(inputs.arrays))
        if key not in self._outputs:
            self.misses += 1
            self._outputs[key] = compute(inputs)
        return dict(self._outputs[key])


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, array in arrays.items():
        array = np.asarray(array, order="C")
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array).encode())
    return digest.hexdigest()


class OnnxReference:
    """An ONNX graph run by onnxruntime: the same folder's fp32 file, another folder's file, or
    the same file under other :class:`SessionSettings`."""

    def __init__(self, runner: OnnxRunner, label: str = "onnx fp32") -> None:
        self.runner = runner
        self.description = f"{label} ({runner.path.name})"
        self._cache = _OutputCache()

    @property
    def calls(self) -> int:
        """How many times the graph actually ran (cache misses)."""
        return self._cache.misses

    def outputs(self, inputs: InputSet) -> dict[str, np.ndarray]:
        return self._cache.get(inputs, self._run)

    def input_sets(self) -> list[InputSet] | None:
        return None

    def _run(self, inputs: InputSet) -> dict[str, np.ndarray]:
        try:
            # Outputs are cached per input set: each set runs once.
            return self.runner.run(inputs.arrays, free_arena=True)
        except ModelLoadError as error:
            raise ReferenceError(f"reference {error}") from error


class CallableReference:
    """A user ``nn.Module``, TorchScript module or any callable, run on named inputs.

    torch is imported only if the callable is a torch module (or ``torch_tensors=True``):
    inputs become tensors, the call runs under ``torch.inference_mode()``, and tensor outputs
    come back as numpy arrays. Outputs are cached per input set.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        description: str,
        *,
        mapping: InputMapping | None = None,
        graph_inputs: Sequence[str] | None = None,
        graph_outputs: Sequence[str] | None = None,
        skip_outputs: Sequence[str] = (),
        torch_tensors: bool | None = None,
        scalar_arguments: Sequence[str] = (),
    ) -> None:
        """``graph_inputs`` / ``graph_outputs``: the graph's names in order; the reference must
        give every output but ``skip_outputs``. ``scalar_arguments``: parameters that take a
        Python number, fed from a 0-d array (TorchScript ``int``/``float``/``bool``)."""
        self.function = function
        self.description = description
        self.mapping = mapping or InputMapping()
        self.graph_inputs = None if graph_inputs is None else tuple(graph_inputs)
        self.graph_outputs = None if graph_outputs is None else tuple(graph_outputs)
        self.skip_outputs = frozenset(skip_outputs)
        self.torch_tensors = _is_torch_module(function) if torch_tensors is None else torch_tensors
        self.scalar_arguments = frozenset(scalar_arguments)
        self._cache = _OutputCache()
        if self.torch_tensors and _is_torch_module(function):
            # Dropout and batch-norm statistics make a training-mode module a moving target.
            function.eval()  # type: ignore[attr-defined]
        self._check_arguments()

    @property
    def calls(self) -> int:
        """How many times the callable actually ran (cache misses)."""
        return self._cache.misses

    def outputs(self, inputs: InputSet) -> dict[str, np.ndarray]:
        return self._cache.get(inputs, self._run)

    def input_sets(self) -> list[InputSet] | None:
        return None

    def _check_arguments(self) -> None:
        arguments = self.mapping.arguments
        if arguments is None:
            return
        names = arguments.values() if isinstance(arguments, Mapping) else arguments
        if self.graph_inputs is not None:
            unknown = [name for name in names if name not in self.graph_inputs]
            if unknown:
                raise ReferenceError(
                    f"reference {self.description}: inputs {unknown} are not inputs of the "
                    f"graph (it has {list(self.graph_inputs)}); fix the names in "
                    "[references.<graph>] inputs"
                )
        parameters = _parameters(self.function)
        if parameters is None:
            return
        if isinstance(arguments, Mapping):
            accepted = _plain(parameters)
            unknown = [p for p in arguments if p not in accepted and "**" not in parameters]
            if unknown:
                raise ReferenceError(
                    f"reference {self.description}: it has no parameter(s) {unknown} (it takes "
                    f"{_plain(parameters)}); fix the keys of [references.<graph>] inputs"
                )
        else:
            self._check_count(len(arguments), parameters, "[references.<graph>] inputs")

    def _check_count(self, count: int, parameters: Sequence[str], source: str) -> None:
        if "*" in parameters:
            return
        required = [p for p in parameters if not p.endswith("=")]
        if not len(required) <= count <= len(parameters):
            raise ReferenceError(
                f"reference {self.description}: it takes {len(required)}"
                f"{'' if len(required) == len(parameters) else f'-{len(parameters)}'} "
                f"argument(s) ({_plain(parameters)}) but is given {count} from {source}; "
                "list the ONNX input for each argument in [references.<graph>] inputs"
            )

    def _call_arguments(self, inputs: InputSet) -> tuple[list[Any], dict[str, Any]]:
        arguments = self.mapping.arguments
        arrays = inputs.arrays
        if isinstance(arguments, Mapping):
            keywords = {p: self._convert(p, arrays, name) for p, name in arguments.items()}
            return [], keywords
        if arguments is None:
            arguments = self.graph_inputs or tuple(arrays)
            parameters = _parameters(self.function)
            if parameters is not None:
                self._check_count(len(arguments), parameters, "the graph's inputs")
        names = _plain(_parameters(self.function) or ())
        positional = [
            self._convert(names[i] if i < len(names) else "", arrays, name)
            for i, name in enumerate(arguments)
        ]
        return positional, {}

    def _convert(self, parameter: str, arrays: Mapping[str, np.ndarray], name: str) -> Any:
        if name not in arrays:
            raise ReferenceError(
                f"reference {self.description}: input set has no {name!r} (it has "
                f"{sorted(arrays)}); map the reference's arguments with [references.<graph>] "
                "inputs"
            )
        array = arrays[name]
        if parameter in self.scalar_arguments:
            return np.asarray(array).item()
        if not self.torch_tensors:
            return array
        torch = _torch()
        # from_numpy shares memory and rejects read-only arrays; a copy keeps inputs intact.
        return torch.from_numpy(np.array(array, copy=True))

    def _run(self, inputs: InputSet) -> dict[str, np.ndarray]:
        positional, keywords = self._call_arguments(inputs)
        try:
            if self.torch_tensors:
                with _torch().inference_mode():
                    result = self.function(*positional, **keywords)
            else:
                result = self.function(*positional, **keywords)
        except ReferenceError:
            raise
        except Exception as error:  # the reference is user code: anything can come out of it
            raise ReferenceError(
                f"reference {self.description} raised {type(error).__name__} on input set "
                f"{inputs.name!r}: {first_line(error)}; call it on these inputs in "
                f"{_origin(self.function)} to debug, or fix [references.<graph>] inputs"
            ) from error
        return self._name_outputs(result)

    def _name_outputs(self, result: Any) -> dict[str, np.ndarray]:
        graph_outputs = self.graph_outputs
        if isinstance(result, Mapping):
            named = {str(key): value for key, value in result.items()}
            if graph_outputs is not None:
                named = {key: value for key, value in named.items() if key in graph_outputs}
        else:
            values = list(result) if isinstance(result, (tuple, list)) else [result]
            names = self.mapping.outputs or graph_outputs
            if names is None:
                names = tuple(f"output_{i}" for i in range(len(values)))
            if len(names) != len(values):
                raise ReferenceError(
                    f"reference {self.description} returned {len(values)} value(s) but "
                    f"{len(names)} output name(s) {list(names)} are expected; name each "
                    "returned value in [references.<graph>] outputs ('_' drops one)"
                )
            named = {n: v for n, v in zip(names, values, strict=True) if n != DROP_OUTPUT}
            if graph_outputs is not None:
                unknown = [name for name in named if name not in graph_outputs]
                if unknown:
                    raise ReferenceError(
                        f"reference {self.description}: outputs {unknown} are not outputs of "
                        f"the graph ({list(graph_outputs)}); fix [references.<graph>] outputs"
                    )
        if graph_outputs is not None:
            missing = [
                name
                for name in graph_outputs
                if name not in named and name not in self.skip_outputs
            ]
            if missing:
                raise ReferenceError(
                    f"reference {self.description} gives no output(s) {missing} (it gives "
                    f"{sorted(named)}); map them with [references.<graph>] outputs or list them "
                    "in skip_outputs"
                )
        return {name: self._to_numpy(name, value) for name, value in named.items()}

    def _to_numpy(self, name: str, value: Any) -> np.ndarray:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:  # numpy has no bfloat16
                value = value.float()
            return value.numpy().copy()
        if isinstance(value, (tuple, list, Mapping)):
            raise ReferenceError(
                f"reference {self.description}: output {name!r} is a nested "
                f"{type(value).__name__}; wrap the reference in a function that flattens it "
                "to one tensor per ONNX output"
            )
        return np.array(value, copy=True)


def _is_torch_module(function: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(function, torch.nn.Module)


def _torch() -> Any:
    from pytest_onnxparity.references.torch_files import require_torch

    return require_torch()


def _parameters(function: Callable[..., Any]) -> list[str] | None:
    """Parameter names, ``name=`` when optional, ``*``/``**`` for var-args; None if unknown."""
    schema = getattr(getattr(function, "forward", None), "schema", None)
    if schema is not None:  # TorchScript: the compiled schema is the truth
        return [f"{a.name}=" if a.has_default_value() else a.name for a in schema.arguments[1:]]
    # nn.Module.__call__ is (*args, **kwargs); the real parameters are forward's.
    target = function.forward if _is_torch_module(function) else function  # type: ignore[attr-defined]
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            names.append("*")
        elif parameter.kind is parameter.VAR_KEYWORD:
            names.append("**")
        elif parameter.kind is not parameter.KEYWORD_ONLY:
            optional = parameter.default is not parameter.empty
            names.append(f"{parameter.name}=" if optional else parameter.name)
    return names


def _plain(parameters: Sequence[str]) -> list[str]:
    return [p.rstrip("=") for p in parameters if p not in ("*", "**")]


def _origin(function: object) -> str:
    target: object = type(function)
    if inspect.isfunction(function) or inspect.ismethod(function):
        target = function
    try:
        source = inspect.getsourcefile(target)  # type: ignore[arg-type]
    except TypeError:
        source = None
    return Path(source).name if source else "a Python session"


def first_line(error: BaseException) -> str:
    """The first line of an error's text, capped at 300 characters, for one-line messages."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class RecordedReference:
    """Outputs recorded earlier; answers only the input sets it recorded."""

    def __init__(
        self,
        path: Path,
        sets: Sequence[RecordedSet],
        *,
        graph_inputs: Sequence[str] | None = None,
        graph_outputs: Sequence[str] | None = None,
        skip_outputs: Sequence[str] = (),
    ) -> None:
        """Each set must record every input and every output but ``skip_outputs``."""
        self.path = Path(path)
        self.description = f"recorded {self.path.parent.name}/{self.path.name}"
        self.sets = {recorded.name: recorded for recorded in sets}
        for recorded in sets:
            where = self._where(recorded)
            if graph_inputs is not None:
                missing = [name for name in graph_inputs if name not in recorded.inputs.arrays]
                if missing:
                    raise ReferenceError(
                        f"{where}: no recorded input(s) {missing} (it has "
                        f"{sorted(recorded.inputs.arrays)}); re-record it with --parity-record"
                    )
            if not recorded.outputs:
                raise ReferenceError(
                    f"{where}: holds inputs but no outputs; re-record it with --parity-record "
                    "(or use the file as input_data instead)"
                )
            if graph_outputs is not None:
                missing = [
                    name
                    for name in graph_outputs
                    if name not in recorded.outputs and name not in skip_outputs
                ]
                if missing:
                    raise ReferenceError(
                        f"{where}: no recorded output(s) {missing} (it has "
                        f"{sorted(recorded.outputs)}); re-record it with --parity-record or "
                        "list them in skip_outputs"
                    )

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        graph_inputs: Sequence[str] | None = None,
        graph_outputs: Sequence[str] | None = None,
        skip_outputs: Sequence[str] = (),
    ) -> RecordedReference:
        """Read ``path`` (``.npz`` or a test-data folder) and check it against the graph."""
        try:
            sets = read_recorded(path, graph_inputs, graph_outputs)
        except RecordedDataError as error:
            raise ReferenceError(str(error)) from None
        return cls(
            path,
            sets,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
        )

    def _where(self, recorded: RecordedSet) -> str:
        if self.path.suffix == ".npz":
            return f"{self.path} (set {recorded.name!r})"
        return str(self.path / recorded.name)

    def outputs(self, inputs: InputSet) -> dict[str, np.ndarray]:
        recorded = self.sets.get(inputs.name)
        if recorded is None:
            raise ReferenceError(
                f"{self.path}: no recorded set {inputs.name!r} (it has {sorted(self.sets)}); run "
                "on the recorded input sets or re-record it with --parity-record"
            )
        for name, array in recorded.inputs.arrays.items():
            given = inputs.arrays.get(name)
            if given is None or given.shape != array.shape or not np.array_equal(given, array):
                raise ReferenceError(
                    f"{self._where(recorded)}: input {name!r} differs from the one recorded; "
                    "run on the recorded inputs or re-record it with --parity-record"
                )
        return {name: np.array(array, copy=True) for name, array in recorded.outputs.items()}

    def input_sets(self) -> list[InputSet] | None:
        return [recorded.inputs for recorded in self.sets.values()]


def record_outputs(reference: Reference, input_sets: Sequence[InputSet]) -> list[RecordedSet]:
    """Run ``reference`` on each set, ready for ``recorded.write_recorded`` (--parity-record)."""
    return [RecordedSet(inputs, reference.outputs(inputs)) for inputs in input_sets]


# --------------------------------------------------------------------------------------------
# Building a reference from its spec
# --------------------------------------------------------------------------------------------


def open_reference(
    spec: ReferenceSpec,
    *,
    fp32_path: Path | None,
    settings: SessionSettings,
    graph_inputs: Sequence[str],
    graph_outputs: Sequence[str],
    skip_outputs: Sequence[str] = (),
    reference_dir: Path | None = None,
    module: Callable[..., Any] | None = None,
    fp32_relpath: str | None = None,
    open_runner: Callable[[Path, SessionSettings], OnnxRunner] = open_session,
) -> Reference:
    """Build the reference ``spec`` describes for one graph.

    ``fp32_path``: the graph's reference file in ``--onnx-dir``, at ``fp32_relpath`` in it (the
    path looked up in another folder; default its name); ``settings``: the run's session
    settings; ``graph_inputs`` / ``graph_outputs``: the graph's names in order; ``skip_outputs``:
    outputs the reference need not give (config ``skip_outputs``);
    ``reference_dir``: ``--parity-reference-dir``; ``module``: what the conftest hook returned
    for this graph (kind ``module``); ``open_runner``: how ONNX sessions are opened (a cache).
    """
    where = spec.where
    if spec.kind in ONNX_KINDS:
        path, label = _onnx_path(spec, fp32_path, reference_dir, fp32_relpath)
        reference_settings = dataclasses.replace(
            settings,
            providers=spec.providers or settings.providers,
            graph_optimization_level=spec.graph_optimization_level
            or settings.graph_optimization_level,
        )
        if spec.kind == "provider":
            if reference_settings == settings:
                raise ReferenceError(
                    f"{where}: the provider reference runs under the same session settings as "
                    "the variants, so it compares the graph with itself; change providers or "
                    "graph_optimization_level"
                )
            label = f"onnx {_settings_label(reference_settings, settings)}"
        try:
            runner = open_runner(path, reference_settings)
        except ModelLoadError as error:
            raise ReferenceError(f"reference {error}") from error
        return OnnxReference(runner, label)
    if spec.kind == "recorded":
        assert spec.path is not None  # parse_reference_options requires it
        return RecordedReference.load(
            spec.path,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
        )
    if spec.kind == "module":
        if module is None:
            raise ReferenceError(
                f"{where}: kind 'module' but conftest.py returned no module for this graph; "
                "return an nn.Module or callable from the reference hook or fixture"
            )
        kind = "torch module" if _is_torch_module(module) else "callable"
        return CallableReference(
            module,
            f"{kind} {_callable_name(module)} ({_origin(module)})",
            mapping=spec.mapping,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
        )
    from pytest_onnxparity.references import torch_files

    assert spec.path is not None  # parse_reference_options requires it
    common: dict[str, Any] = {
        "mapping": spec.mapping,
        "graph_inputs": graph_inputs,
        "graph_outputs": graph_outputs,
        "skip_outputs": skip_outputs,
        "submodule": spec.submodule,
    }
    if spec.kind == "torchscript":
        return torch_files.load_torchscript(spec.path, **common)
    return torch_files.load_torch_checkpoint(
        spec.path, allow_pickle=spec.allow_pickle, where=where, **common
    )


def _onnx_path(
    spec: ReferenceSpec,
    fp32_path: Path | None,
    reference_dir: Path | None,
    fp32_relpath: str | None = None,
) -> tuple[Path, str]:
    if spec.kind == "other-dir":
        folder = spec.path or reference_dir
        if folder is None:
            raise ReferenceError(
                f"{spec.where}: kind 'other-dir' needs a folder; pass --parity-reference-dir "
                "or set path"
            )
        if fp32_path is None:
            raise ReferenceError(
                f"{spec.where}: the graph has no fp32 file in --onnx-dir to look up in {folder}; "
                "set kind = 'onnx' with the reference file's path"
            )
        relpath = fp32_relpath or fp32_path.name
        path = folder / relpath
        if not path.is_file():
            raise ReferenceError(
                f"{path}: no such file in the reference folder; export {relpath} there "
                "or point --parity-reference-dir at the right release"
            )
        return path, f"onnx {folder.name}/"
    given = spec.path or fp32_path
    if given is None:
        raise ReferenceError(
            f"{spec.where}: the graph has no fp32 file to use as its reference; add "
            "[references.<graph>] with kind and path"
        )
    if not given.is_file():
        raise ReferenceError(f"{given}: no such reference model; fix path in {spec.where}")
    return given, "onnx fp32" if spec.path is None else "onnx"


def _settings_label(settings: SessionSettings, baseline: SessionSettings) -> str:
    parts = []
    if settings.providers != baseline.providers:
        parts.append("+".join(p.removesuffix("ExecutionProvider") for p in settings.providers))
    if settings.graph_optimization_level != baseline.graph_optimization_level:
        parts.append(f"opt={settings.graph_optimization_level}")
    return " ".join(parts)


def _callable_name(function: object) -> str:
    name = getattr(function, "__qualname__", None)
    return str(name) if name else type(function).__name__
