"""What the engine works on: one generated parity test (:class:`ParityCase`), the input sets of a
graph as collection lists them (:class:`InputKey`), the conftest hooks as plain callables, and
the problems that are the user's files being wrong rather than a bug."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.compare.metrics import ShapeMismatchError
from pytest_onnxparity.compare.parity import OutputMismatchError
from pytest_onnxparity.export.folder import Graph, ModelFile
from pytest_onnxparity.references.base import ReferenceError
from pytest_onnxparity.references.config import InputMapping
from pytest_onnxparity.references.recorded import (
    RecordedDataError,
)
from pytest_onnxparity.runtime.inputs import (
    InputError,
    set_name,
)
from pytest_onnxparity.runtime.sessions import ModelLoadError, OnnxRunner

if TYPE_CHECKING:
    pass


# Everything that is the user's input being wrong (not our bug) becomes a one-line test error.
INPUT_PROBLEMS = (
    ModelLoadError,
    InputError,
    OutputMismatchError,
    ShapeMismatchError,
    ReferenceError,
    RecordedDataError,
)


REFERENCE_HOOK = "pytest_onnxparity_reference"


INPUTS_HOOK = "pytest_onnxparity_inputs"


@dataclass(frozen=True)
class ReferenceHooks:
    """What conftest.py supplies, as plain callables (the glue wraps the pytest hooks).

    ``module(graph)``: an ``nn.Module`` or callable, optionally as ``(callable, InputMapping)``,
    or None. ``inputs(graph)``: named arrays (see ``real_inputs.input_sets_from_hook``) or None.
    """

    module: Callable[[str], Any] | None = None
    inputs: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class InputKey:
    """One input set of a graph as collection sees it: its name (part of the test id) and, for a
    synthesized set, its sweep point (None for real, upstream or recorded sets)."""

    name: str
    point: Mapping[str, int] | None = None


@dataclass(frozen=True)
class ParityCase:
    """One generated parity test: a graph's variant against its reference on one input set.

    ``point``: the sweep point of a synthesized set; ``input_set``: the name of any other set
    (real, upstream or recorded), None for a synthesized one.
    """

    graph: Graph
    variant: ModelFile
    point: Mapping[str, int] = field(default_factory=dict)
    input_set: str | None = None

    @classmethod
    def for_key(cls, graph: Graph, variant: ModelFile, key: InputKey) -> ParityCase:
        if key.point is not None:
            return cls(graph, variant, key.point)
        return cls(graph, variant, input_set=key.name)

    @property
    def input_set_name(self) -> str:
        return self.input_set if self.input_set is not None else set_name(self.point)

    @property
    def input_key(self) -> Mapping[str, int] | str:
        """What :meth:`ParityEngine.inputs` takes for this case."""
        return self.input_set if self.input_set is not None else self.point


@dataclass(frozen=True)
class Recording:
    """What ``--parity-record`` wrote for one graph."""

    graph: str
    reference: str
    sets: int
    paths: tuple[Path, ...]


def hook_module_answer(answer: Any, graph: str) -> tuple[Any, InputMapping | None]:
    """Split what the reference hook returned: a callable, ``(callable, InputMapping)``, None."""
    if answer is None:
        return None, None
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[1], InputMapping):
        answer, mapping = answer
    else:
        mapping = None
    if not callable(answer):
        raise ReferenceError(
            f"the {REFERENCE_HOOK} hook returned a {type(answer).__name__} for {graph!r}; "
            "return an nn.Module or callable, (module, InputMapping), or None"
        )
    return answer, mapping


def check_same_signature(reference: OnnxRunner, variant: OnnxRunner) -> None:
    """Variants must take the reference's inputs; dtype may differ only in float precision."""
    ref_inputs = {spec.name: spec for spec in reference.inputs}
    var_inputs = {spec.name: spec for spec in variant.inputs}
    if set(ref_inputs) != set(var_inputs):
        raise OutputMismatchError(
            f"{variant.path}: inputs {sorted(var_inputs)} differ from the reference's "
            f"{sorted(ref_inputs)} ({reference.path}); re-export the variant with the same "
            "input names"
        )
    ref_outputs = {spec.name for spec in reference.outputs}
    var_outputs = {spec.name for spec in variant.outputs}
    if not ref_outputs <= var_outputs:
        raise OutputMismatchError(
            f"{variant.path}: missing output(s) {sorted(ref_outputs - var_outputs)} of the "
            f"reference {reference.path}; re-export the variant with the same output names"
        )
    for name, spec in ref_inputs.items():
        other = var_inputs[name]
        if (
            spec.shape is not None
            and other.shape is not None
            and len(spec.shape) != len(other.shape)
        ):
            raise OutputMismatchError(
                f"{variant.path}: input {name!r} has rank {len(other.shape)} but the reference's "
                f"has rank {len(spec.shape)}; re-export the variant with the reference's shapes"
            )
        if spec.dtype != other.dtype and not (_is_float(spec.dtype) and _is_float(other.dtype)):
            raise OutputMismatchError(
                f"{variant.path}: input {name!r} is {other.dtype} but the reference's is "
                f"{spec.dtype}; re-export the variant with the reference's input types"
            )


def _is_float(dtype: str) -> bool:
    return dtype in {"float16", "float32", "float64", "bfloat16"}
