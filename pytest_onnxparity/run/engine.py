"""The run's working state: references, input sets and sessions, cached per worker.

No pytest here: the glue asks the engine for a record and turns a failed one into a failed test;
conftest hooks reach the engine as plain callables (:class:`ReferenceHooks`).

Each graph has one reference (:meth:`ParityEngine.reference`: its fp32 file by default, or what
:class:`ReferenceSettings` and the hooks choose) and a list of input sets
(:meth:`ParityEngine.input_sets`: synthesized per sweep point, real ones from files or a hook,
an upstream graph's outputs, or the sets a recording brings), each a separate test id.
Caches are keyed by graph so they can be released as soon as that graph's tests are done,
keeping peak memory at the largest graph with its variants rather than the whole folder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.compare.metrics import ShapeMismatchError
from pytest_onnxparity.compare.parity import OutputMismatchError, compare
from pytest_onnxparity.config.tolerances import ToleranceLayer
from pytest_onnxparity.export.folder import ExportFolder, Graph, ModelFile
from pytest_onnxparity.references.base import Reference, ReferenceError
from pytest_onnxparity.references.callable import CallableReference
from pytest_onnxparity.references.config import ReferenceSpec
from pytest_onnxparity.references.recorded import (
    default_record_path,
    write_recorded,
)
from pytest_onnxparity.references.replay import record_outputs
from pytest_onnxparity.references.settings import ReferenceSettings, check_graph_names
from pytest_onnxparity.results.records import ParityRecord
from pytest_onnxparity.run.settings import Settings
from pytest_onnxparity.runtime.inputs import (
    InputSet,
)
from pytest_onnxparity.runtime.sessions import OnnxRunner, SessionCache

if TYPE_CHECKING:
    import numpy as np
from pytest_onnxparity.run.cases import (
    INPUT_PROBLEMS,
    InputKey,
    ParityCase,
    Recording,
    ReferenceHooks,
    check_same_signature,
)
from pytest_onnxparity.run.graph_inputs import GraphInputs
from pytest_onnxparity.run.graph_references import GraphReferences


class ParityEngine:
    """Runs parity cases for one export folder; one instance per pytest process.

    References and input sets live in :class:`GraphReferences` and :class:`GraphInputs`; the
    engine's methods of the same names are what the glue and users' ``parity_engine`` use.
    """

    def __init__(
        self,
        settings: Settings,
        folder: ExportFolder,
        reference_settings: ReferenceSettings | None = None,
        hooks: ReferenceHooks | None = None,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.sessions = SessionCache()
        # Problems found while listing a graph's input sets at collection: every test of the
        # graph fails with it (collection itself must not error on the user's files).
        self._problems: dict[str, str] = {}
        self.references = GraphReferences(
            settings, folder, self.sessions, self._problems, reference_settings, hooks
        )
        self.graph_inputs = GraphInputs(self.references)

    @property
    def reference_settings(self) -> ReferenceSettings:
        return self.references.reference_settings

    @property
    def hooks(self) -> ReferenceHooks:
        return self.references.hooks

    def use_references(
        self, reference_settings: ReferenceSettings, hooks: ReferenceHooks | None = None
    ) -> None:
        """Install the run's reference choices (the references glue, before collection); a
        table naming a graph the folder lacks is a ``config.ConfigError``."""
        check_graph_names(reference_settings.specs, [graph.name for graph in self.folder.graphs])
        for graph in self.folder.graphs:
            self.release(graph)
        self.references.reference_settings = reference_settings
        self.references.hooks = hooks or ReferenceHooks()
        self._problems.clear()

    def runner(self, model: ModelFile) -> OnnxRunner:
        """The cached session of ``model`` (a discovery problem is raised as a load error)."""
        return self.references.runner(model)

    def spec(self, graph: Graph) -> ReferenceSpec:
        return self.references.spec(graph)

    def reference(self, graph: Graph) -> Reference:
        """The graph's reference, built once (a failure is kept and raised again)."""
        return self.references.reference(graph)

    def reference_label(self, graph: Graph) -> str:
        """What a test title says the variant is compared with."""
        return self.references.reference_label(graph)

    def tested_variants(self, graph: Graph) -> tuple[str, ...]:
        """The variant tags gated against the reference (see :class:`GraphReferences`)."""
        return self.references.tested_variants(graph)

    def build_reference(self, graph: Graph, spec: ReferenceSpec, module: Any = None) -> Reference:
        """A reference for ``graph`` as ``spec`` says, not cached."""
        return self.references.build_reference(graph, spec, module)

    def reference_outputs(self, graph: Graph, inputs: InputSet) -> dict[str, np.ndarray]:
        """The reference's outputs on ``inputs`` (cached by the reference, per input set)."""
        return self.references.reference_outputs(graph, inputs)

    def input_keys(self, graph: Graph) -> list[InputKey]:
        """The graph's input sets as test ids, listed without loading arrays or running models."""
        return self.graph_inputs.input_keys(graph)

    def input_sets(self, graph: Graph) -> list[InputSet]:
        """Every input set of the graph, in test-id order."""
        return self.graph_inputs.input_sets(graph)

    def inputs(self, graph: Graph, key: Mapping[str, int] | str) -> InputSet:
        """One input set: a sweep point (``{}`` = the default) or a set's name."""
        return self.graph_inputs.inputs(graph, key)

    def check_dims(self) -> None:
        """A dim or sweep naming no input axis of any graph is a typo: say so before running."""
        self.graph_inputs.check_dims()

    def check(
        self, case: ParityCase, nodeid: str, marker_layer: ToleranceLayer | None = None
    ) -> ParityRecord:
        """Run one case; problems with the user's files come back as a record with ``error``."""
        graph, variant = case.graph, case.variant
        input_json: dict[str, Any] = {"name": case.input_set_name}
        try:
            if graph.name in self._problems:
                raise ReferenceError(self._problems[graph.name])
            check_same_signature(self.runner(graph.reference_file), self.runner(variant))
            inputs = self.inputs(graph, case.input_key)
            input_json = inputs.to_json()
            expected = self.reference_outputs(graph, inputs)
            actual = self.runner(variant).run(inputs.arrays, free_arena=True, dims=inputs.dims)
            graph_config = self.settings.config.graph(graph.name)
            try:
                result = compare(
                    expected,
                    actual,
                    lambda output: self.settings.tolerance(
                        variant.tier,
                        graph.name,
                        variant.variant,
                        output,
                        marker_layer,
                        input_set=case.input_set_name,
                    ),
                    skip_outputs=graph_config.skip_outputs,
                    inputs=inputs.arrays,
                )
            except (OutputMismatchError, ShapeMismatchError) as mismatch:
                raise type(mismatch)(self._mismatch_message(graph, variant, mismatch)) from None
        except INPUT_PROBLEMS as problem:
            return self._record(case, nodeid, input_json, result=None, error=str(problem))
        return self._record(case, nodeid, input_json, result=result, error=None)

    def _mismatch_message(self, graph: Graph, variant: ModelFile, mismatch: Exception) -> str:
        reference = self.reference(graph)
        message = f"{variant.path} vs {reference.description}: {mismatch}"
        if isinstance(reference, CallableReference):
            message += (
                "; or, if the reference returns its outputs in another order or layout, map "
                f"them in [references.{graph.name}] outputs"
            )
        return message

    def _record(self, case: ParityCase, nodeid: str, input_json: Any, **outcome: Any) -> Any:
        return ParityRecord(
            nodeid=nodeid,
            graph=case.graph.name,
            variant=case.variant.variant,
            tier=case.variant.tier,
            reference=self.references.description(case.graph),
            input_set=input_json,
            session=self.settings.session.to_json(),
            **outcome,
        )

    def record(self, graph: Graph, layout: str) -> Recording:
        """Run the graph's reference on every input set and write inputs and outputs to
        ``<onnx-dir>/reference/`` in ``layout`` (``npz`` or ``test-data``), atomically."""
        reference = self.reference(graph)
        sets = self.input_sets(graph)
        recorded = record_outputs(reference, sets)
        written = write_recorded(
            default_record_path(self.folder.root, graph.name, layout), recorded
        )
        return Recording(graph.name, reference.description, len(sets), tuple(written))

    def release(self, graph: Graph) -> None:
        """Forget everything cached for ``graph``: its sessions, reference, input sets (and
        those of the graph it takes inputs from, rebuilt if needed again)."""
        paths = {model.path for model in graph.files} | self.references.release(graph)
        self.sessions.release(paths)
        self.graph_inputs.release(graph)
        link = self.spec(graph).inputs_from
        if link is not None and link.upstream != graph.name:
            self.release(self.folder.graph(link.upstream))
