"""Callable references: a conftest's function or ``nn.Module`` called with a graph's inputs,
mapped by position or by name, its result named after the graph's outputs."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.references.base import (
    DROP_OUTPUT,
    CachedReference,
    ReferenceError,
    first_line,
    require_torch,
)
from pytest_onnxparity.references.config import InputMapping
from pytest_onnxparity.runtime.inputs import InputSet


class CallableReference(CachedReference):
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
        self.torch_tensors = is_torch_module(function) if torch_tensors is None else torch_tensors
        self.scalar_arguments = frozenset(scalar_arguments)
        super().__init__()
        if self.torch_tensors and is_torch_module(function):
            # Dropout and batch-norm statistics make a training-mode module a moving target.
            function.eval()  # type: ignore[attr-defined]
        self._check_arguments()

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
        """``count`` positional arguments fit the parameters (``**kwargs`` takes none)."""
        if "*" in parameters:
            return
        positional = [p for p in parameters if p != "**"]
        required = [p for p in positional if not p.endswith("=")]
        if not len(required) <= count <= len(positional):
            raise ReferenceError(
                f"reference {self.description}: it takes {len(required)}"
                f"{'' if len(required) == len(positional) else f'-{len(positional)}'} "
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
            if parameters is not None and by_name(arguments, parameters):
                # forward(input_ids, attention_mask=None, **kwargs): the graph's input names
                # are the parameters' names, so every input goes where its name says.
                return [], {name: self._convert(name, arrays, name) for name in arguments}
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
                f"{callable_origin(self.function)} to debug, or fix [references.<graph>] inputs"
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


def is_torch_module(function: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(function, torch.nn.Module)


def _torch() -> Any:
    return require_torch()


def _parameters(function: Callable[..., Any]) -> list[str] | None:
    """Parameter names, ``name=`` when optional, ``*``/``**`` for var-args; None if unknown."""
    schema = getattr(getattr(function, "forward", None), "schema", None)
    if schema is not None:  # TorchScript: the compiled schema is the truth
        return [f"{a.name}=" if a.has_default_value() else a.name for a in schema.arguments[1:]]
    # nn.Module.__call__ is (*args, **kwargs); the real parameters are forward's.
    target = function.forward if is_torch_module(function) else function  # type: ignore[attr-defined]
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


def by_name(inputs: Sequence[str], parameters: Sequence[str]) -> bool:
    """Whether a callable with ``parameters`` (see :func:`_parameters`) takes the graph's
    ``inputs`` by name: each is a parameter's name, or the callable takes ``**kwargs`` and
    every required parameter is among the inputs (the other inputs go to ``**kwargs``)."""
    names = _plain(parameters)
    if all(name in names for name in inputs):
        return True
    required = [p for p in parameters if p not in ("*", "**") and not p.endswith("=")]
    return "**" in parameters and all(name in inputs for name in required)


def _plain(parameters: Sequence[str]) -> list[str]:
    return [p.rstrip("=") for p in parameters if p not in ("*", "**")]


def callable_origin(function: object) -> str:
    target: object = type(function)
    if inspect.isfunction(function) or inspect.ismethod(function):
        target = function
    try:
        source = inspect.getsourcefile(target)  # type: ignore[arg-type]
    except TypeError:
        source = None
    return Path(source).name if source else "a Python session"


def callable_name(function: object) -> str:
    name = getattr(function, "__qualname__", None)
    return str(name) if name else type(function).__name__
