"""Which ONNX Runtime is installed: any distribution that provides the ``onnxruntime`` module.

onnxruntime ships as several distributions of one module (``onnxruntime`` for CPUs,
``onnxruntime-gpu`` for CUDA, ``onnxruntime-directml``, ``onnxruntime-openvino``, …), and
installing one over another replaces it. The package therefore depends on none of them (the
``cpu`` and ``gpu`` extras name the first two) and works with whichever is there; without any,
a run stops with one line naming both.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

MODULE = "onnxruntime"
MISSING = (
    "no ONNX Runtime is installed: pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA); "
    "any other onnxruntime build (onnxruntime-directml, onnxruntime-openvino, ...) works too"
)


class OnnxRuntimeMissingError(ImportError):
    """No distribution provides the ``onnxruntime`` module; the message says what to install."""


def require_onnxruntime() -> None:
    """Raise :class:`OnnxRuntimeMissingError` unless ``onnxruntime`` can be imported (without
    importing it: a run checks this at start, and ``--collect-only`` never needs it)."""
    try:
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise OnnxRuntimeMissingError(MISSING)


def import_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, or :class:`OnnxRuntimeMissingError`."""
    try:
        return importlib.import_module(MODULE)
    except ImportError as error:
        if error.name not in (None, MODULE):
            raise  # onnxruntime is there but broken: its own error says more
        raise OnnxRuntimeMissingError(MISSING) from error
