"""pytest-onnxparity: gate ONNX exports and their quantized variants against a reference.

The public API is what a ``conftest.py`` or a script imports from here::

    from pytest_onnxparity import Clip, OnnxRunner, PipelineOutput

Everything else lives in layered subpackages (``docs/architecture.md``) and may move between
releases. Importing this package is cheap: each name is imported on first use, so numpy, onnx,
onnxruntime and torch load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_onnxparity import _moved

__version__ = "0.1.0"

# Public name -> the module that defines it.
PUBLIC: dict[str, str] = {
    # audio and pipelines (sequence gates)
    "Clip": "speech.audio.clips",
    "resample": "speech.audio.clips",
    "PipelineAdapter": "speech.sequence.pipeline",
    "PipelineOutput": "speech.sequence.pipeline",
    "ReferencePipeline": "speech.sequence.pipeline",
    "AdapterError": "speech.sequence.pipeline",
    # running graphs and their inputs
    "OnnxRunner": "runtime.sessions",
    "SessionSettings": "runtime.sessions",
    "open_session": "runtime.sessions",
    "InputSet": "runtime.inputs",
    # references
    "InputMapping": "references.config",
    "Reference": "references.base",
    "ReferenceError": "references.base",
    # the export folder
    "discover": "export.discovery",
    "ExportFolder": "export.folder",
    "Graph": "export.folder",
    "ModelFile": "export.folder",
    # comparing outputs
    "Tolerance": "config.tolerances",
    "ParityResult": "compare.parity",
    "compare_outputs": "compare.metrics",
    "OutputStats": "compare.metrics",
    # comparing weights, without inference
    "compare_weights": "compare.weight_space.run",
    "WeightParityReport": "compare.weight_space.report",
    "WeightSettings": "compare.weight_space.limits",
    # the engine behind the parity_engine / parity_case fixtures
    "ParityEngine": "run.engine",
    "ParityCase": "run.cases",
    # speed (TimingItem: a timing test of your own, from a collection hook)
    "TimingPlan": "speed.measure",
    "MeasurementContext": "speed.measure",
    "measure_rtf": "speed.measure",
    "SpeedSubject": "speed.verdict",
    "TimingItem": "plugin.speed_items",
}

__all__ = [
    "AdapterError",
    "Clip",
    "ExportFolder",
    "Graph",
    "InputMapping",
    "InputSet",
    "MeasurementContext",
    "ModelFile",
    "OnnxRunner",
    "OutputStats",
    "ParityCase",
    "ParityEngine",
    "ParityResult",
    "PipelineAdapter",
    "PipelineOutput",
    "Reference",
    "ReferenceError",
    "ReferencePipeline",
    "SessionSettings",
    "SpeedSubject",
    "TimingItem",
    "TimingPlan",
    "Tolerance",
    "WeightParityReport",
    "WeightSettings",
    "__version__",
    "compare_outputs",
    "compare_weights",
    "discover",
    "measure_rtf",
    "open_session",
    "resample",
]

if TYPE_CHECKING:
    from pytest_onnxparity.compare.metrics import OutputStats, compare_outputs
    from pytest_onnxparity.compare.parity import ParityResult
    from pytest_onnxparity.compare.weight_space import (
        WeightParityReport,
        WeightSettings,
        compare_weights,
    )
    from pytest_onnxparity.config.tolerances import Tolerance
    from pytest_onnxparity.export.discovery import discover
    from pytest_onnxparity.export.folder import ExportFolder, Graph, ModelFile
    from pytest_onnxparity.plugin.speed_items import TimingItem
    from pytest_onnxparity.references.base import Reference, ReferenceError
    from pytest_onnxparity.references.config import InputMapping
    from pytest_onnxparity.run.cases import ParityCase
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.runtime.inputs import InputSet
    from pytest_onnxparity.runtime.sessions import OnnxRunner, SessionSettings, open_session
    from pytest_onnxparity.speech.audio.clips import Clip, resample
    from pytest_onnxparity.speech.sequence.pipeline import (
        AdapterError,
        PipelineAdapter,
        PipelineOutput,
        ReferencePipeline,
    )
    from pytest_onnxparity.speed.measure import MeasurementContext, TimingPlan, measure_rtf
    from pytest_onnxparity.speed.verdict import SpeedSubject


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        value = getattr(importlib.import_module(f"{__name__}.{PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


_moved.install()
