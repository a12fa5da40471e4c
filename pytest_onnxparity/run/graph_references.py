"""A graph's reference, chosen and built once per process: the configured kind, or what the
conftest's reference hook returns, its failure kept and raised again for every test."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_onnxparity.export.folder import ExportFolder, Graph, ModelFile
from pytest_onnxparity.references.base import Reference, ReferenceError, first_line
from pytest_onnxparity.references.callable import (
    callable_name,
    callable_origin,
    is_torch_module,
)
from pytest_onnxparity.references.config import InputMapping, ReferenceSpec
from pytest_onnxparity.references.onnx import OnnxReference
from pytest_onnxparity.references.opening import open_reference
from pytest_onnxparity.references.settings import ReferenceSettings
from pytest_onnxparity.run.settings import Settings
from pytest_onnxparity.runtime.inputs import (
    InputSet,
)
from pytest_onnxparity.runtime.sessions import ModelLoadError, OnnxRunner, SessionCache

if TYPE_CHECKING:
    import numpy as np
from pytest_onnxparity.run.cases import (
    INPUT_PROBLEMS,
    REFERENCE_HOOK,
    ReferenceHooks,
    hook_module_answer,
)


class GraphReferences:
    """The reference of each graph of one export folder, cached until released."""

    def __init__(
        self,
        settings: Settings,
        folder: ExportFolder,
        sessions: SessionCache,
        problems: dict[str, str],
        reference_settings: ReferenceSettings | None = None,
        hooks: ReferenceHooks | None = None,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.sessions = sessions
        self.problems = problems
        self.reference_settings = reference_settings or ReferenceSettings()
        self.hooks = hooks or ReferenceHooks()
        self._references: dict[str, Reference] = {}
        self._failures: dict[str, Exception] = {}
        self._hook_modules: dict[str, tuple[Any, InputMapping | None]] = {}

    def runner(self, model: ModelFile) -> OnnxRunner:
        """The cached session of ``model`` (a discovery problem is raised as a load error)."""
        if model.problem:
            raise ModelLoadError(model.problem)
        return self.sessions.get(model.path, self.settings.session)

    def spec(self, graph: Graph) -> ReferenceSpec:
        return self.reference_settings.spec(graph.name)

    def reference(self, graph: Graph) -> Reference:
        """The graph's reference, built once (a failure is kept and raised again)."""
        name = graph.name
        if name in self._failures:
            raise self._failures[name]
        if name not in self._references:
            try:
                self._references[name] = self._open_reference(graph)
            except INPUT_PROBLEMS as problem:
                self._failures[name] = problem
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

    def chosen_label(self, graph: Graph) -> str:
        """The reference this run chose for ``graph``, named before it is built: the reference
        hook's module, the configured kind (TorchScript, recording…), or the fp32 file. Asks
        the reference hook (cached for collection)."""
        try:
            module, _ = self._hook_module(graph)
        except INPUT_PROBLEMS as problem:
            return f"? (the {REFERENCE_HOOK} hook failed: {first_line(problem)})"
        if module is not None:
            kind = "torch module" if is_torch_module(module) else "callable"
            return f"{kind} {callable_name(module)} ({callable_origin(module)})"
        spec = self.spec(graph)
        if spec.is_default_reference:
            return f"{graph.reference} ({graph.reference_file.relpath})"
        return spec.label

    def _is_default(self, graph: Graph, reference: Reference) -> bool:
        return isinstance(reference, OnnxReference) and self.spec(graph).is_default_reference

    def tested_variants(self, graph: Graph) -> tuple[str, ...]:
        """The variant tags gated against the reference: the graph's variants, and its own
        reference file too when the reference is something else (a torch model, a recording,
        another folder, other session settings). Asks the reference hook, at collection."""
        try:
            own_file = self.spec(graph).is_default_reference and self._hook_module(graph)[0] is None
        except INPUT_PROBLEMS as problem:
            self.problems.setdefault(graph.name, str(problem))
            own_file = False
        return graph.variants if own_file else (graph.reference, *graph.variants)

    def _hook_module(self, graph: Graph) -> tuple[Any, InputMapping | None]:
        """What the reference hook supplies for ``graph`` (cached until :meth:`release`)."""
        if self.hooks.module is None or not self.reference_settings.asks_hook(graph.name):
            return None, None
        if graph.name not in self._hook_modules:
            answer = self.hooks.module(graph.name)
            self._hook_modules[graph.name] = hook_module_answer(answer, graph.name)
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

    def description(self, graph: Graph) -> str:
        built = self._references.get(graph.name)
        if built is None or self._is_default(graph, built):
            return f"{graph.reference} ({graph.reference_file.relpath})"
        return built.description

    def release(self, graph: Graph) -> set[Path]:
        """Forget the graph's reference; return the session paths it held."""
        paths: set[Path] = set()
        reference = self._references.pop(graph.name, None)
        if isinstance(reference, OnnxReference):
            paths.add(reference.runner.path)
        self._failures.pop(graph.name, None)
        self._hook_modules.pop(graph.name, None)
        return paths
