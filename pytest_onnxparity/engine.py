"""The run's working state: sessions, inputs and reference outputs, cached per worker.

No pytest here: the glue asks the engine for a record and turns a failed one into a failed test.
Caches are keyed by graph so they can be released as soon as that graph's tests are done,
keeping peak memory at the largest graph with its variants rather than the whole folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.discovery import ExportFolder, Graph, ModelFile
from pytest_onnxparity.inputs import InputError, InputSet, set_name, symbolic_dims, synthesize
from pytest_onnxparity.metrics import ShapeMismatchError
from pytest_onnxparity.parity import OutputMismatchError, compare
from pytest_onnxparity.results import ParityRecord
from pytest_onnxparity.sessions import ModelLoadError, OnnxRunner, SessionCache
from pytest_onnxparity.settings import Settings
from pytest_onnxparity.signature import read_signature
from pytest_onnxparity.tolerances import ToleranceLayer

if TYPE_CHECKING:
    import numpy as np

# Everything that is the user's input being wrong (not our bug) becomes a one-line test error.
INPUT_PROBLEMS = (ModelLoadError, InputError, OutputMismatchError, ShapeMismatchError)


@dataclass(frozen=True)
class ParityCase:
    """One generated parity test: a graph's variant against its reference on one input set."""

    graph: Graph
    variant: ModelFile
    point: Mapping[str, int] = field(default_factory=dict)

    @property
    def input_set_name(self) -> str:
        return set_name(self.point)


class ParityEngine:
    """Runs parity cases for one export folder; one instance per pytest process."""

    def __init__(self, settings: Settings, folder: ExportFolder) -> None:
        self.settings = settings
        self.folder = folder
        self.sessions = SessionCache()
        self._inputs: dict[tuple[str, str], InputSet] = {}
        self._reference_outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def runner(self, model: ModelFile) -> OnnxRunner:
        """The cached session of ``model`` (a discovery problem is raised as a load error)."""
        if model.problem:
            raise ModelLoadError(model.problem)
        return self.sessions.get(model.path, self.settings.session)

    def inputs(self, graph: Graph, point: Mapping[str, int]) -> InputSet:
        key = (graph.name, set_name(point))
        if key not in self._inputs:
            reference = self.runner(graph.reference_file)
            rules = self.settings.config.graph(graph.name).inputs
            self._inputs[key] = synthesize(
                graph.name, reference.inputs, self.settings.plan, rules, point
            )
        return self._inputs[key]

    def reference_outputs(self, graph: Graph, inputs: InputSet) -> dict[str, np.ndarray]:
        key = (graph.name, inputs.name)
        if key not in self._reference_outputs:
            self._reference_outputs[key] = self.runner(graph.reference_file).run(inputs.arrays)
        return self._reference_outputs[key]

    def check(
        self, case: ParityCase, nodeid: str, marker_layer: ToleranceLayer | None = None
    ) -> ParityRecord:
        """Run one case; problems with the user's files come back as a record with ``error``."""
        graph, variant = case.graph, case.variant
        reference_file = graph.reference_file
        input_json: dict[str, Any] = {"name": case.input_set_name}
        try:
            _check_same_signature(self.runner(reference_file), self.runner(variant))
            inputs = self.inputs(graph, case.point)
            input_json = inputs.to_json()
            expected = self.reference_outputs(graph, inputs)
            actual = self.runner(variant).run(inputs.arrays)
            graph_config = self.settings.config.graph(graph.name)
            result = compare(
                expected,
                actual,
                lambda output: self.settings.tolerance(
                    variant.tier, graph.name, variant.variant, output, marker_layer
                ),
                skip_outputs=graph_config.skip_outputs,
            )
        except INPUT_PROBLEMS as problem:
            return self._record(case, nodeid, input_json, result=None, error=str(problem))
        return self._record(case, nodeid, input_json, result=result, error=None)

    def _record(self, case: ParityCase, nodeid: str, input_json: Any, **outcome: Any) -> Any:
        return ParityRecord(
            nodeid=nodeid,
            graph=case.graph.name,
            variant=case.variant.variant,
            tier=case.variant.tier,
            reference=f"{case.graph.reference} ({case.graph.reference_file.relpath})",
            input_set=input_json,
            session=self.settings.session.to_json(),
            **outcome,
        )

    def check_dims(self) -> None:
        """A dim or sweep naming no input axis of any graph is a typo: say so before running."""
        plan = self.settings.plan
        wanted = set(plan.dims) | set(plan.sweep)
        if not wanted:
            return
        known: dict[str, str] = {}
        for graph in self.folder.graphs:
            if graph.reference_file.problem:
                continue
            inputs, _ = read_signature(str(graph.reference_file.path))
            for dim in symbolic_dims(inputs):
                known.setdefault(dim, graph.reference_file.relpath)
        unknown = sorted(wanted - set(known))
        if unknown:
            named = ", ".join(f"{dim} ({path})" for dim, path in known.items()) or "none"
            raise InputError(
                f"dimension(s) {', '.join(unknown)} given by --parity-dim/--parity-sweep or "
                f"config are not a named input axis of any graph in {self.folder.root}; "
                f"named axes: {named}"
            )

    def release(self, graph: Graph) -> None:
        """Forget everything cached for ``graph``: its sessions, inputs and reference outputs."""
        self.sessions.release({model.path for model in graph.files})
        for cache in (self._inputs, self._reference_outputs):
            for key in [key for key in cache if key[0] == graph.name]:
                del cache[key]


def _check_same_signature(reference: OnnxRunner, variant: OnnxRunner) -> None:
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
