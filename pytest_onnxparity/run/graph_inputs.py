"""A graph's input sets: synthesized per sweep point, real ones from files or the inputs hook,
an upstream graph's outputs, or the sets a recording brings, listed for collection without
running anything and built once per process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pytest_onnxparity.export.folder import Graph, ModelFile
from pytest_onnxparity.onnxfile.index_tables import index_table_sizes
from pytest_onnxparity.onnxfile.signature import TensorSpec, read_signature
from pytest_onnxparity.references.base import Reference, ReferenceError
from pytest_onnxparity.references.config import ReferenceSpec
from pytest_onnxparity.references.recorded import (
    recorded_set_names,
)
from pytest_onnxparity.run.real_inputs import (
    check_input_set,
    combine_input_sets,
    input_data_names,
    input_sets_from_hook,
    read_input_data,
    run_upstream,
)
from pytest_onnxparity.runtime.inputs import (
    DEFAULT_SET,
    InputError,
    InputSet,
    patterns,
    set_name,
    sweep_points,
    symbolic_dims,
    synthesize,
)
from pytest_onnxparity.runtime.sessions import OnnxRunner

if TYPE_CHECKING:
    import numpy as np
from pytest_onnxparity.run.cases import (
    INPUT_PROBLEMS,
    INPUTS_HOOK,
    InputKey,
)
from pytest_onnxparity.run.graph_references import GraphReferences


class GraphInputs:
    """The input sets of each graph of one export folder, cached until released."""

    def __init__(self, references: GraphReferences) -> None:
        self.references = references
        self.settings = references.settings
        self.folder = references.folder
        self._inputs: dict[tuple[str, str], InputSet] = {}
        self._input_sets: dict[str, list[InputSet]] = {}
        self._hook_sets: dict[str, list[InputSet]] = {}
        self._table_rows: dict[str, dict[str, int]] = {}
        self._keys: dict[str, list[tuple[dict[str, int], str]]] = {}

    @property
    def problems(self) -> dict[str, str]:
        return self.references.problems

    def spec(self, graph: Graph) -> ReferenceSpec:
        return self.references.spec(graph)

    def runner(self, model: ModelFile) -> OnnxRunner:
        return self.references.runner(model)

    def reference(self, graph: Graph) -> Reference:
        return self.references.reference(graph)

    def input_keys(self, graph: Graph) -> list[InputKey]:
        """The graph's input sets as test ids, listed without loading arrays or running models.

        A problem (an unreadable recording, a hook that raises) is kept and fails each of the
        graph's tests with its one-line message; the graph then gets the single key ``default``.
        """
        try:
            return self._input_keys(graph)
        except INPUT_PROBLEMS as problem:
            self.problems[graph.name] = str(problem)
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
            keys += [
                InputKey(set_name(point, pattern), point, pattern)
                for point, pattern in self._synthesized_keys(graph)
            ]
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
            base = [
                self._synthesized(graph, point, pattern)
                for point, pattern in self._synthesized_keys(graph)
            ]
        return combine_input_sets(base, read_input_data(spec, specs), self._hook_input_sets(graph))

    def inputs(self, graph: Graph, key: Mapping[str, int] | str) -> InputSet:
        """One input set: a sweep point (``{}`` = the default) or a set's name.

        A point asks for a synthesized set; when the graph's inputs are not synthesized
        (``synthesize = false``, a recording, ``inputs_from``), the point ``{}`` gives the
        graph's first set.
        """
        spec = self.spec(graph)
        if spec.kind != "recorded" and spec.inputs_from is None and spec.synthesize:
            if not isinstance(key, str):
                return self._synthesized(graph, key, "")
            for point, pattern in self._synthesized_keys(graph):
                if set_name(point, pattern) == key:
                    return self._synthesized(graph, point, pattern)
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

    def _synthesized(self, graph: Graph, point: Mapping[str, int], pattern: str) -> InputSet:
        key = (graph.name, set_name(point, pattern))
        if key not in self._inputs:
            reference = self.runner(graph.reference_file)
            rules = self.settings.config.graph(graph.name).inputs
            self._inputs[key] = synthesize(
                graph.name,
                reference.inputs,
                self.settings.plan,
                rules,
                point,
                table_rows=self.table_rows(graph),
                pattern=pattern,
            )
        return self._inputs[key]

    def table_rows(self, graph: Graph) -> dict[str, int]:
        """Rows of the table each index input of the graph reads (token ids into their
        embedding), read from the reference file's structure once."""
        if graph.name not in self._table_rows:
            specs = self.runner(graph.reference_file).inputs
            names = tuple(spec.name for spec in specs)
            self._table_rows[graph.name] = index_table_sizes(graph.reference_file.path, names)
        return self._table_rows[graph.name]

    def _synthesized_keys(self, graph: Graph) -> list[tuple[dict[str, int], str]]:
        """(sweep point, pattern) of each synthesized set, read from the signature alone."""
        if graph.reference_file.problem:
            return [({}, "")]
        if graph.name not in self._keys:
            inputs, _ = read_signature(str(graph.reference_file.path))
            plan = self.settings.plan
            points = sweep_points(inputs, plan) if plan.sweep else [{}]
            found = patterns(inputs, plan, self.settings.config.graph(graph.name).inputs)
            self._keys[graph.name] = [(point, pattern) for point in points for pattern in found]
        return self._keys[graph.name]

    def _hook_input_sets(self, graph: Graph) -> list[InputSet]:
        if self.references.hooks.inputs is None:
            return []
        if graph.name not in self._hook_sets:
            returned = self.references.hooks.inputs(graph.name)
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
                extra = synthesize(
                    graph.name, unfed, self.settings.plan, rules, dims, self.table_rows(graph)
                ).arrays
            produced += run_upstream(link, reference, [upstream_set], specs, extra)
        return produced

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
        """Forget the graph's input sets."""
        self._input_sets.pop(graph.name, None)
        self._hook_sets.pop(graph.name, None)
        self._table_rows.pop(graph.name, None)
        self._keys.pop(graph.name, None)
        for key in [key for key in self._inputs if key[0] == graph.name]:
            del self._inputs[key]
