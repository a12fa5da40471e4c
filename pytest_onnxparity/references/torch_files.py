"""Torch-backed references: TorchScript archives and saved modules, loaded without user code.

torch is an optional extra, imported only here and only when a torch reference is built.
Security: TorchScript archives are loaded by ``torch.jit.load``, which runs only TorchScript
(no Python pickles of arbitrary classes). ``torch.save`` files are loaded with
``weights_only=True``; unpickling a full module runs code from the file, so it needs the
explicit ``allow_pickle = true`` opt-in.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_onnxparity.references.base import ReferenceError, first_line, require_torch
from pytest_onnxparity.references.callable import CallableReference
from pytest_onnxparity.references.config import InputMapping

# TorchScript parameter types that take a Python value rather than a tensor.
SCALAR_TYPES = ("int", "float", "bool")


def load_torchscript(
    path: Path,
    *,
    mapping: InputMapping | None = None,
    graph_inputs: Sequence[str] | None = None,
    graph_outputs: Sequence[str] | None = None,
    skip_outputs: Sequence[str] = (),
    submodule: str | None = None,
) -> CallableReference:
    """A TorchScript archive (``torch.jit.load``, on CPU) as a reference.

    ``submodule`` (dotted) picks a child whose ``forward`` matches the ONNX graph, e.g.
    ``"_model"`` for a wrapper that keeps state between calls. Parameters typed ``int``,
    ``float`` or ``bool`` in the compiled schema are fed Python values from 0-d arrays.
    """
    path = Path(path)
    torch = require_torch(f"the TorchScript reference {path.name}")
    _require_file(path, "TorchScript file")
    try:
        with warnings.catch_warnings():
            # torch 2.9+ deprecates TorchScript; loading an archive someone shipped is still the
            # way to run it, and the warning would fail runs under filterwarnings = error.
            warnings.filterwarnings(
                "ignore", r"`torch\.jit\.load` is deprecated", DeprecationWarning
            )
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as error:
        raise ReferenceError(
            f"{path}: not a TorchScript archive ({first_line(error)}); save it with "
            "torch.jit.save(torch.jit.script(model)), or for a torch.save'd module use "
            'kind = "checkpoint"'
        ) from None
    module = _submodule(module, submodule, path)
    return CallableReference(
        module,
        f"torchscript {path.name}" + (f"::{submodule}" if submodule else ""),
        mapping=mapping,
        graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
        skip_outputs=skip_outputs,
        torch_tensors=True,
        scalar_arguments=_scalar_parameters(module),
    )


def load_torch_checkpoint(
    path: Path,
    *,
    allow_pickle: bool,
    where: str = "[references.<graph>]",
    mapping: InputMapping | None = None,
    graph_inputs: Sequence[str] | None = None,
    graph_outputs: Sequence[str] | None = None,
    skip_outputs: Sequence[str] = (),
    submodule: str | None = None,
) -> CallableReference:
    """A module saved whole with ``torch.save`` as a reference.

    Loaded with ``weights_only=True`` unless ``allow_pickle``; a pickled module then fails with
    a message naming the ``allow_pickle = true`` opt-in. A TorchScript archive is handed to
    :func:`load_torchscript`; a state_dict alone cannot run and says how to wrap it.
    """
    path = Path(path)
    torch = require_torch(f"the checkpoint reference {path.name}")
    _require_file(path, "checkpoint")
    if _is_torchscript_archive(path):
        return load_torchscript(
            path,
            mapping=mapping,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
            submodule=submodule,
        )
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=not allow_pickle)
    except Exception as error:  # torch.load raises UnpicklingError, RuntimeError, AttributeError
        if not allow_pickle and isinstance(error, pickle.UnpicklingError):
            raise ReferenceError(
                f"{path}: holds a pickled module, and unpickling it runs code from the file; if "
                f"you trust it, set allow_pickle = true in {where} or pass --parity-allow-pickle"
            ) from None
        raise ReferenceError(
            f"{path}: torch.load failed ({type(error).__name__}: {first_line(error)}); make "
            "the module's class importable (conftest.py on sys.path) or re-save the module"
        ) from None
    if isinstance(loaded, Mapping):
        raise ReferenceError(
            f"{path}: holds a state_dict, not a module; build the module in conftest.py, "
            "load_state_dict() this file, and return it from the reference hook (kind = "
            '"module")'
        )
    module = _submodule(loaded, submodule, path)
    if not callable(module):
        raise ReferenceError(
            f"{path}: holds a {type(module).__name__}, which cannot be called; save the "
            "nn.Module itself"
        )
    return CallableReference(
        module,
        f"torch checkpoint {path.name}" + (f"::{submodule}" if submodule else ""),
        mapping=mapping,
        graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
        skip_outputs=skip_outputs,
        torch_tensors=True,
    )


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ReferenceError(f"{path}: no such {what}; fix path in [references.<graph>]")


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives carry compiled code (``<archive>/code/``); torch.save files do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def _submodule(module: Any, submodule: str | None, path: Path) -> Any:
    if not submodule:
        return module
    target = module
    for part in submodule.split("."):
        if not hasattr(target, part):
            raise ReferenceError(
                f"{path}: has no submodule {submodule!r} (children: {_children(module)}); "
                "fix submodule in [references.<graph>]"
            )
        target = getattr(target, part)
    if not callable(target) or isinstance(target, type):
        raise ReferenceError(
            f"{path}: submodule {submodule!r} is a {type(target).__name__}, not a module that "
            f"can run (children: {_children(module)}); fix submodule in [references.<graph>]"
        )
    return target


def _children(module: Any) -> list[str]:
    """The names of ``module``'s direct children, for a message about a submodule not found."""
    return [name for name, _ in getattr(module, "named_children", list)()]


def _scalar_parameters(module: Any) -> list[str]:
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is None:
        return []
    return [arg.name for arg in schema.arguments[1:] if str(arg.type) in SCALAR_TYPES]
