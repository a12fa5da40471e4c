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
:mod:`pytest_onnxparity.run.real_inputs`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Protocol

import numpy as np

from pytest_onnxparity.runtime.inputs import InputSet

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


class OutputCache:
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


class CachedReference:
    """What the references that compute their outputs share: outputs cached per input set (each
    set runs once), and no input sets of their own. A subclass sets ``description`` and
    implements ``_run``."""

    description: str

    def __init__(self) -> None:
        self._cache = OutputCache()

    @property
    def calls(self) -> int:
        """How many times the reference actually ran (cache misses)."""
        return self._cache.misses

    def outputs(self, inputs: InputSet) -> dict[str, np.ndarray]:
        return self._cache.get(inputs, self._run)

    def input_sets(self) -> list[InputSet] | None:
        return None

    def _run(self, inputs: InputSet) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, array in arrays.items():
        array = np.asarray(array, order="C")
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array).encode())
    return digest.hexdigest()


def first_line(error: BaseException) -> str:
    """The first line of an error's text, capped at 300 characters, for one-line messages."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


TORCH_EXTRA = (
    "pip install torch (the CPU build: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu)"
)


class TorchMissingError(ReferenceError):
    """torch is not installed; the plugin may turn this into a skip."""


def require_torch(purpose: str = "a torch reference") -> ModuleType:
    """Import torch, or raise :class:`TorchMissingError` naming the extra to install."""
    try:
        import torch
    except ImportError:
        raise TorchMissingError(
            f"torch is not installed, and {purpose} needs it: {TORCH_EXTRA} (or gate on "
            "outputs recorded with --parity-record, which need no torch)"
        ) from None
    return torch
