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
    synthesized set, its sweep point (None for real, upstream or recorded sets) and pattern
    (``""``, ``padded``, ``draw2``…; see ``runtime.inputs.patterns``)."""

    name: str
    point: Mapping[str, int] | None = None
    pattern: str = ""


@dataclass(frozen=True)
class ParityCase:
    """One generated parity test: a graph's variant against its reference on one input set.

    ``point`` and ``pattern``: the sweep point and pattern of a synthesized set; ``input_set``:
    the name of any other set (real, upstream or recorded), None for a synthesized one.
    """

    graph: Graph
    variant: ModelFile
    point: Mapping[str, int] = field(default_factory=dict)
    input_set: str | None = None
    pattern: str = ""

    @classmethod
    def for_key(cls, graph: Graph, variant: ModelFile, key: InputKey) -> ParityCase:
        if key.point is not None:
            return cls(graph, variant, key.point, pattern=key.pattern)
        return cls(graph, variant, input_set=key.name)

    @property
    def synthesized(self) -> bool:
        return self.input_set is None

    @property
    def input_set_name(self) -> str:
        if self.input_set is not None:
            return self.input_set
        return set_name(self.point, self.pattern)

    @property
    def input_key(self) -> Mapping[str, int] | str:
        """What :meth:`ParityEngine.inputs` takes for this case."""
        if self.input_set is None and not self.pattern:
            return self.point
        return self.input_set_name


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
        frozen = _frozen_axis(spec.shape, other.shape)
        if frozen is not None:
            axis, dim, size = frozen
            raise OutputMismatchError(
                f"{variant.path}: input {name!r} axis {axis} is fixed to {size} but the "
                f"reference's axis {axis} is dynamic ({dim}); the variant was exported or "
                f"converted with a frozen {dim} axis: re-export it with the reference's dynamic "
                "axes (dynamic_axes / dynamic_shapes), or keep the quantizer from fixing shapes"
            )


def _frozen_axis(
    reference: tuple[int | str | None, ...] | None, variant: tuple[int | str | None, ...] | None
) -> tuple[int, str, int] | None:
    """The first axis dynamic in the reference's input but fixed in the variant's:
    ``(axis, the reference's name for it, the variant's size)``."""
    if reference is None or variant is None:
        return None
    for axis, (dim, size) in enumerate(zip(reference, variant, strict=False)):
        if not isinstance(dim, int) and isinstance(size, int) and size > 0:
            return axis, repr(dim) if dim else "unnamed", size
    return None


def _is_float(dtype: str) -> bool:
    return dtype in {"float16", "float32", "float64", "bfloat16"}
