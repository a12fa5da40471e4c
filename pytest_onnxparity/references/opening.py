"""Opening a graph's reference from its ``[references]`` spec: which kind, which file, which
session settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_onnxparity.references.base import Reference, ReferenceError
from pytest_onnxparity.references.callable import (
    CallableReference,
    callable_name,
    callable_origin,
    is_torch_module,
)
from pytest_onnxparity.references.config import ONNX_KINDS, ReferenceSpec
from pytest_onnxparity.references.onnx import OnnxReference
from pytest_onnxparity.references.replay import RecordedReference
from pytest_onnxparity.runtime.sessions import (
    ModelLoadError,
    OnnxRunner,
    SessionSettings,
    open_session,
)


def open_reference(
    spec: ReferenceSpec,
    *,
    fp32_path: Path | None,
    settings: SessionSettings,
    graph_inputs: Sequence[str],
    graph_outputs: Sequence[str],
    skip_outputs: Sequence[str] = (),
    reference_dir: Path | None = None,
    module: Callable[..., Any] | None = None,
    fp32_relpath: str | None = None,
    open_runner: Callable[[Path, SessionSettings], OnnxRunner] = open_session,
) -> Reference:
    """Build the reference ``spec`` describes for one graph.

    ``fp32_path``: the graph's reference file in ``--onnx-dir``, at ``fp32_relpath`` in it (the
    path looked up in another folder; default its name); ``settings``: the run's session
    settings; ``graph_inputs`` / ``graph_outputs``: the graph's names in order; ``skip_outputs``:
    outputs the reference need not give (config ``skip_outputs``);
    ``reference_dir``: ``--parity-reference-dir``; ``module``: what the conftest hook returned
    for this graph (kind ``module``); ``open_runner``: how ONNX sessions are opened (a cache).
    """
    where = spec.where
    if spec.kind in ONNX_KINDS:
        path, label = _onnx_path(spec, fp32_path, reference_dir, fp32_relpath)
        reference_settings = dataclasses.replace(
            settings,
            providers=spec.providers or settings.providers,
            graph_optimization_level=spec.graph_optimization_level
            or settings.graph_optimization_level,
        )
        if spec.kind == "provider":
            if reference_settings == settings:
                raise ReferenceError(
                    f"{where}: the provider reference runs under the same session settings as "
                    "the variants, so it compares the graph with itself; change providers or "
                    "graph_optimization_level"
                )
            label = f"onnx {_settings_label(reference_settings, settings)}"
        try:
            runner = open_runner(path, reference_settings)
        except ModelLoadError as error:
            raise ReferenceError(f"reference {error}") from error
        return OnnxReference(runner, label)
    if spec.kind == "recorded":
        assert spec.path is not None  # parse_reference_options requires it
        return RecordedReference.load(
            spec.path,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
        )
    if spec.kind == "module":
        if module is None:
            raise ReferenceError(
                f"{where}: kind 'module' but conftest.py returned no module for this graph; "
                "return an nn.Module or callable from the reference hook or fixture"
            )
        kind = "torch module" if is_torch_module(module) else "callable"
        return CallableReference(
            module,
            f"{kind} {callable_name(module)} ({callable_origin(module)})",
            mapping=spec.mapping,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
        )
    from pytest_onnxparity.references import torch_files

    assert spec.path is not None  # parse_reference_options requires it
    common: dict[str, Any] = {
        "mapping": spec.mapping,
        "graph_inputs": graph_inputs,
        "graph_outputs": graph_outputs,
        "skip_outputs": skip_outputs,
        "submodule": spec.submodule,
    }
    if spec.kind == "torchscript":
        return torch_files.load_torchscript(spec.path, **common)
    return torch_files.load_torch_checkpoint(
        spec.path, allow_pickle=spec.allow_pickle, where=where, **common
    )


def _onnx_path(
    spec: ReferenceSpec,
    fp32_path: Path | None,
    reference_dir: Path | None,
    fp32_relpath: str | None = None,
) -> tuple[Path, str]:
    if spec.kind == "other-dir":
        folder = spec.path or reference_dir
        if folder is None:
            raise ReferenceError(
                f"{spec.where}: kind 'other-dir' needs a folder; pass --parity-reference-dir "
                "or set path"
            )
        if fp32_path is None:
            raise ReferenceError(
                f"{spec.where}: the graph has no fp32 file in --onnx-dir to look up in {folder}; "
                "set kind = 'onnx' with the reference file's path"
            )
        relpath = fp32_relpath or fp32_path.name
        path = folder / relpath
        if not path.is_file():
            raise ReferenceError(
                f"{path}: no such file in the reference folder; export {relpath} there "
                "or point --parity-reference-dir at the right release"
            )
        return path, f"onnx {folder.name}/"
    given = spec.path or fp32_path
    if given is None:
        raise ReferenceError(
            f"{spec.where}: the graph has no fp32 file to use as its reference; add "
            "[references.<graph>] with kind and path"
        )
    if not given.is_file():
        raise ReferenceError(f"{given}: no such reference model; fix path in {spec.where}")
    return given, "onnx fp32" if spec.path is None else "onnx"


def _settings_label(settings: SessionSettings, baseline: SessionSettings) -> str:
    parts = []
    if settings.providers != baseline.providers:
        parts.append("+".join(p.removesuffix("ExecutionProvider") for p in settings.providers))
    if settings.graph_optimization_level != baseline.graph_optimization_level:
        parts.append(f"opt={settings.graph_optimization_level}")
    return " ".join(parts)
