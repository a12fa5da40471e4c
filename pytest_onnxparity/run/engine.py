"""The run's working state: references, input sets and sessions, cached per worker.

No pytest here: the glue asks the engine for a record and turns a failed one into a failed test;
conftest hooks reach the engine as plain callables (:class:`ReferenceHooks`).

Each graph has one reference (:meth:`ParityEngine.reference`: its fp32 file by default, or what
:class:`ReferenceSettings` and the hooks choose) and a list of input sets
(:meth:`ParityEngine.input_sets`: synthesized per sweep point, real ones from files or a hook,
an upstream graph's outputs, or the sets a recording brings), each a separate test id.
Caches are keyed by graph so they can be released as soon as that graph's tests are done,
keeping peak memory at the largest graph with its variants rather than the whole folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.compare.metrics import ShapeMismatchError
from pytest_onnxparity.compare.parity import OutputMismatchError, compare
from pytest_onnxparity.config.tolerances import ToleranceLayer
from pytest_onnxparity.export.discovery import ExportFolder, Graph, ModelFile
from pytest_onnxparity.onnxfile.signature import TensorSpec, read_signature
from pytest_onnxparity.references.base import Reference, ReferenceError
from pytest_onnxparity.references.callable import CallableReference
from pytest_onnxparity.references.config import (
    InputMapping,
    ReferenceSettings,
    ReferenceSpec,
    check_graph_names,
)
from pytest_onnxparity.references.onnx import OnnxReference
from pytest_onnxparity.references.opening import open_reference
from pytest_onnxparity.references.recorded import (
    RecordedDataError,
    default_record_path,
    recorded_set_names,
    write_recorded,
)
from pytest_onnxparity.references.replay import record_outputs
from pytest_onnxparity.results.records import ParityRecord
from pytest_onnxparity.run.real_inputs import (
    check_input_set,
    combine_input_sets,
    input_data_names,
    input_sets_from_hook,
    read_input_data,
    run_upstream,
)
from pytest_onnxparity.run.settings import Settings
from pytest_onnxparity.runtime.inputs import (
    DEFAULT_SET,
    InputError,
    InputSet,
    set_name,
    sweep_points,
    symbolic_dims,
    synthesize,
)
from pytest_onnxparity.runtime.sessions import ModelLoadError, OnnxRunner, SessionCache

if TYPE_CHECKING:
    import numpy as np

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


class ParityEngine:
    """Runs parity cases for one export folder; one instance per pytest process."""

    def __init__(
        self,
        settings: Settings,
        folder: ExportFolder,
        reference_settings: ReferenceSettings | None = None,
        hooks: ReferenceHooks | None = None,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.reference_settings = reference_settings or ReferenceSettings()
        self.hooks = hooks or ReferenceHooks()
        self.sessions = SessionCache()
        self._inputs: dict[tuple[str, str], InputSet] = {}
        self._input_sets: dict[str, list[InputSet]] = {}
        self._hook_sets: dict[str, list[InputSet]] = {}
        self._hook_modules: dict[str, tuple[Any, InputMapping | None]] = {}
        self._references: dict[str, Reference] = {}
        self._reference_failures: dict[str, Exception] = {}
        # Problems found while listing a graph's input sets at collection: every test of the
        # graph fails with it (collection itself must not error on the user's files).
        self._problems: dict[str, str] = {}

    def use_references(
        self, reference_settings: ReferenceSettings, hooks: ReferenceHooks | None = None
    ) -> None:
        """Install the run's reference choices (the references glue, before collection); a
        table naming a graph the folder lacks is a ``config.ConfigError``."""
        check_graph_names(reference_settings.specs, [graph.name for graph in self.folder.graphs])
        self.reference_settings = reference_settings
        self.hooks = hooks or ReferenceHooks()
        for graph in self.folder.graphs:
            self.release(graph)
        self._problems.clear()

    def runner(self, model: ModelFile) -> OnnxRunner:
        """The cached session of ``model`` (a discovery problem is raised as a load error)."""
        if model.problem:
            raise ModelLoadError(model.problem)
        return self.sessions.get(model.path, self.settings.session)

    # ----------------------------------------------------------------------------------------
    # References
    # ----------------------------------------------------------------------------------------

    def spec(self, graph: Graph) -> ReferenceSpec:
        return self.reference_settings.spec(graph.name)

    def reference(self, graph: Graph) -> Reference:
        """The graph's reference, built once (a failure is kept and raised again)."""
        name = graph.name
        if name in self._reference_failures:
            raise self._reference_failures[name]
        if name not in self._references:
            try:
                self._references[name] = self._open_reference(graph)
            except INPUT_PROBLEMS as problem:
                self._reference_failures[name] = problem
                raise
        return self._references[name]

    def reference_label(self, graph: Graph) -> str:
        """What a test title says the variant is compared with: the reference variant's tag
        (``fp32``) for the default, else the reference's description."""
        built = self._references.get(graph.name)
        if built is not None and not self._is_default(graph, built):
            return built.description
        spec = self.spec(graph)
        if built is None and not spec.is_default_reference:
            return spec.label
        return graph.reference

    def _is_default(self, graph: Graph, reference: Reference) -> bool:
        return isinstance(reference, OnnxReference) and self.spec(graph).is_default_reference

    def tested_variants(self, graph: Graph) -> tuple[str, ...]:
        """The variant tags gated against the reference: the graph's variants, and its own
        reference file too when the reference is something else (a torch model, a recording,
        another folder, other session settings). Asks the reference hook, at collection."""
        try:
            own_file = self.spec(graph).is_default_reference and self._hook_module(graph)[0] is None
        except INPUT_PROBLEMS as problem:
            self._problems.setdefault(graph.name, str(problem))
            own_file = False
        return graph.variants if own_file else (graph.reference, *graph.variants)

    def _hook_module(self, graph: Graph) -> tuple[Any, InputMapping | None]:
        """What the reference hook supplies for ``graph`` (cached until :meth:`release`)."""
        if self.hooks.module is None or not self.reference_settings.asks_hook(graph.name):
            return None, None
        if graph.name not in self._hook_modules:
            answer = self.hooks.module(graph.name)
            self._hook_modules[graph.name] = _module_answer(answer, graph.name)
        return self._hook_modules[graph.name]

    def _open_reference(self, graph: Graph) -> Reference:
        spec = self.spec(graph)
        module, mapping = self._hook_module(graph)
        if module is not None:
            if mapping is not None and spec.mapping != InputMapping():
                raise ReferenceError(
                    f"{spec.where}: the {REFERENCE_HOOK} hook returned an InputMapping for "
                    f"{graph.name!r} and the config maps it too; keep one of them"
                )
            spec = dataclasses.replace(spec, kind="module", mapping=mapping or spec.mapping)
        return self.build_reference(graph, spec, module)

    def build_reference(self, graph: Graph, spec: ReferenceSpec, module: Any = None) -> Reference:
        """A reference for ``graph`` as ``spec`` says, not cached (the ``parity_reference``
        fixture builds other references than the configured one with it)."""
        fp32 = graph.reference_file
        signature = self.runner(fp32)
        return open_reference(
            spec,
            fp32_path=fp32.path,
            fp32_relpath=fp32.relpath,
            settings=self.settings.session,
            graph_inputs=[tensor.name for tensor in signature.inputs],
            graph_outputs=[tensor.name for tensor in signature.outputs],
            skip_outputs=self.settings.config.graph(graph.name).skip_outputs,
            reference_dir=self.reference_settings.reference_dir,
            module=module,
            open_runner=self.sessions.get,
        )

    def reference_outputs(self, graph: Graph, inputs: InputSet) -> dict[str, np.ndarray]:
        """The reference's outputs on ``inputs`` (cached by the reference, per input set)."""
        return self.reference(graph).outputs(inputs)

    # ----------------------------------------------------------------------------------------
    # Input sets
    # ----------------------------------------------------------------------------------------

    def input_keys(self, graph: Graph) -> list[InputKey]:
        """The graph's input sets as test ids, listed without loading arrays or running models.

        A problem (an unreadable recording, a hook that raises) is kept and fails each of the
        graph's tests with its one-line message; the graph then gets the single key ``default``.
        """
        try:
            return self._input_keys(graph)
        except INPUT_PROBLEMS as problem:
            self._problems[graph.name] = str(problem)
            return [InputKey(DEFAULT_SET, {})]

    def _input_keys(self, graph: Graph) -> list[InputKey]:
        spec = self.spec(graph)
        if spec.kind == "recorded":
            assert spec.path is not None  # the config requires it
            return [InputKey(name) for name in recorded_set_names(spec.path)]
        keys: list[InputKey] = []
        if spec.inputs_from is not None:
            upstream = self.folder.graph(spec.inputs_from.upstream)
            keys += [InputKey(key.name) for key in self._input_keys(upstream)]
        elif spec.synthesize:
            keys += [InputKey(set_name(point), point) for point in self._points(graph)]
        keys += [InputKey(name) for name in input_data_names(spec)]
        keys += [InputKey(inputs.name) for inputs in self._hook_input_sets(graph)]
        names = [key.name for key in keys]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ReferenceError(
                f"graph {graph.name!r}: input set name(s) {repeated} come from more than one "
                "source (synthesized, input_data, the inputs hook, inputs_from); rename them"
            )
        if not keys:
            raise ReferenceError(
                f"{spec.where}: graph {graph.name!r} has no input sets (synthesize = false, no "
                f"input_data, nothing from the {INPUTS_HOOK} hook); give it inputs"
            )
        return keys

    def input_sets(self, graph: Graph) -> list[InputSet]:
        """Every input set of the graph, in test-id order (cached until :meth:`release`)."""
        if graph.name not in self._input_sets:
            self._input_sets[graph.name] = self._build_input_sets(graph)
        return self._input_sets[graph.name]

    def _build_input_sets(self, graph: Graph) -> list[InputSet]:
        spec = self.spec(graph)
        brought = self.reference(graph).input_sets()
        if brought is not None:
            # A recording answers exactly the sets it recorded; they include any real inputs.
            return list(brought)
        specs = self.runner(graph.reference_file).inputs
        base: list[InputSet] = []
        if spec.inputs_from is not None:
            base = self._upstream_sets(graph, specs)
        elif spec.synthesize:
            base = [self._synthesized(graph, point) for point in self._points(graph)]
        return combine_input_sets(base, read_input_data(spec, specs), self._hook_input_sets(graph))

    def inputs(self, graph: Graph, key: Mapping[str, int] | str) -> InputSet:
        """One input set: a sweep point (``{}`` = the default) or a set's name.

        A point asks for a synthesized set; when the graph's inputs are not synthesized
        (``synthesize = false``, a recording, ``inputs_from``), the point ``{}`` gives the
        graph's first set.
        """
        if not isinstance(key, str):
            spec = self.spec(graph)
            if spec.kind != "recorded" and spec.inputs_from is None and spec.synthesize:
                return self._synthesized(graph, key)
        name = key if isinstance(key, str) else set_name(key)
        sets = self.input_sets(graph)
        for inputs in sets:
            if inputs.name == name:
                return inputs
        if not isinstance(key, str) and name == DEFAULT_SET and sets:
            return sets[0]
        raise ReferenceError(
            f"graph {graph.name!r} has no input set {name!r} (it has "
            f"{[inputs.name for inputs in sets]}); re-record it with --parity-record or fix the "
            "input sources"
        )

    def _synthesized(self, graph: Graph, point: Mapping[str, int]) -> InputSet:
        key = (graph.name, set_name(point))
        if key not in self._inputs:
            reference = self.runner(graph.reference_file)
            rules = self.settings.config.graph(graph.name).inputs
            self._inputs[key] = synthesize(
                graph.name, reference.inputs, self.settings.plan, rules, point
            )
        return self._inputs[key]

    def _points(self, graph: Graph) -> list[dict[str, int]]:
        if not self.settings.plan.sweep or graph.reference_file.problem:
            return [{}]
        inputs, _ = read_signature(str(graph.reference_file.path))
        return sweep_points(inputs, self.settings.plan)

    def _hook_input_sets(self, graph: Graph) -> list[InputSet]:
        if self.hooks.inputs is None:
            return []
        if graph.name not in self._hook_sets:
            returned = self.hooks.inputs(graph.name)
            sets = (
                [] if returned is None else input_sets_from_hook(graph.name, returned, INPUTS_HOOK)
            )
            if sets:
                specs = self.runner(graph.reference_file).inputs
                for inputs in sets:
                    check_input_set(inputs, specs, f"{INPUTS_HOOK} hook for {graph.name!r}")
            self._hook_sets[graph.name] = sets
        return self._hook_sets[graph.name]

    def _upstream_sets(self, graph: Graph, specs: Sequence[TensorSpec]) -> list[InputSet]:
        """The upstream reference run on each upstream set; downstream inputs it does not feed
        are synthesized at the upstream set's dims (e.g. token ids at its batch size)."""
        link = self.spec(graph).inputs_from
        assert link is not None
        upstream = self.folder.graph(link.upstream)
        upstream_signature = self.runner(upstream.reference_file)
        fed = set(link.map) | {t.name for t in upstream_signature.inputs}
        fed |= {t.name for t in upstream_signature.outputs}
        unfed = [tensor for tensor in specs if tensor.name not in fed]
        rules = {
            name: rule
            for name, rule in self.settings.config.graph(graph.name).inputs.items()
            if name in {tensor.name for tensor in unfed}
        }
        reference = self.reference(upstream)
        produced = []
        for upstream_set in self.input_sets(upstream):
            extra: Mapping[str, np.ndarray] = {}
            if unfed:
                dims = {k: v for k, v in upstream_set.dims.items() if k in symbolic_dims(unfed)}
                extra = synthesize(graph.name, unfed, self.settings.plan, rules, dims).arrays
            produced += run_upstream(link, reference, [upstream_set], specs, extra)
        return produced

    # ----------------------------------------------------------------------------------------
    # Running a case
    # ----------------------------------------------------------------------------------------

    def check(
        self, case: ParityCase, nodeid: str, marker_layer: ToleranceLayer | None = None
    ) -> ParityRecord:
        """Run one case; problems with the user's files come back as a record with ``error``."""
        graph, variant = case.graph, case.variant
        input_json: dict[str, Any] = {"name": case.input_set_name}
        try:
            if graph.name in self._problems:
                raise ReferenceError(self._problems[graph.name])
            _check_same_signature(self.runner(graph.reference_file), self.runner(variant))
            inputs = self.inputs(graph, case.input_key)
            input_json = inputs.to_json()
            expected = self.reference_outputs(graph, inputs)
            actual = self.runner(variant).run(inputs.arrays, free_arena=True)
            graph_config = self.settings.config.graph(graph.name)
            try:
                result = compare(
                    expected,
                    actual,
                    lambda output: self.settings.tolerance(
                        variant.tier, graph.name, variant.variant, output, marker_layer
                    ),
                    skip_outputs=graph_config.skip_outputs,
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
            reference=self._reference_description(case.graph),
            input_set=input_json,
            session=self.settings.session.to_json(),
            **outcome,
        )

    def _reference_description(self, graph: Graph) -> str:
        built = self._references.get(graph.name)
        if built is None or self._is_default(graph, built):
            return f"{graph.reference} ({graph.reference_file.relpath})"
        return built.description

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
        """Forget everything cached for ``graph``: its sessions, reference, input sets (and
        those of the graph it takes inputs from, rebuilt if needed again)."""
        paths = {model.path for model in graph.files}
        reference = self._references.pop(graph.name, None)
        if isinstance(reference, OnnxReference):
            paths.add(reference.runner.path)
        self._reference_failures.pop(graph.name, None)
        self.sessions.release(paths)
        self._input_sets.pop(graph.name, None)
        self._hook_sets.pop(graph.name, None)
        self._hook_modules.pop(graph.name, None)
        for key in [key for key in self._inputs if key[0] == graph.name]:
            del self._inputs[key]
        link = self.spec(graph).inputs_from
        if link is not None and link.upstream != graph.name:
            self.release(self.folder.graph(link.upstream))


def _module_answer(answer: Any, graph: str) -> tuple[Any, InputMapping | None]:
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
