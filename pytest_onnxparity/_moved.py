"""The module paths of release 0.1 (one flat package), importable for one more release.

``import pytest_onnxparity.sessions`` still works: a finder answers the old name with a module
that looks each attribute up in the modules that hold it now, after a ``DeprecationWarning``
naming them. Old names that are packages now (``config``, ``results``, ``suites``) fall back the
same way through their ``__getattr__``. Import from ``pytest_onnxparity`` (the public API) instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

PACKAGE = "pytest_onnxparity"
REMOVAL = "0.3"

# Old module -> the modules (relative to the package) that hold its names now, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "baseline": ("results.baseline",),
    "bundle": ("export.sizes", "speed.sizes"),
    "clips": ("speech.audio.clips", "speech.audio.source", "speech.audio.hf_datasets"),
    "config": ("config.project", "config.tables"),
    "coverage": ("diagnose.coverage", "onnxfile.graph", "onnxfile.weight_forms"),
    "depth_plot": ("diagnose.localize.plot",),
    "dequantize": ("onnxfile.dequantize",),
    "discovery": ("export.discovery", "export.folder", "export.naming", "export.model_files"),
    "engine": ("run.engine", "run.cases"),
    "gates": ("compare.gates",),
    "health": ("diagnose.health.run", "diagnose.health.common"),
    "health_config": ("diagnose.health.config",),
    "inputs": ("runtime.inputs",),
    "localize": (
        "diagnose.localize.measure",
        "diagnose.localize.records",
        "diagnose.localize.config",
    ),
    "markdown": ("results.markdown",),
    "metadata": ("results.metadata", "results.numbers", "results.views"),
    "metrics": ("compare.metrics",),
    "parity": ("compare.parity",),
    "pooling": ("compare.pooling",),
    "protoscan": ("onnxfile.protoscan",),
    "real_inputs": ("run.real_inputs",),
    "recorded": ("references.recorded",),
    "reference_config": ("references.config", "references.settings"),
    "references": (
        "references.base",
        "references.onnx",
        "references.callable",
        "references.replay",
        "references.opening",
    ),
    "report": ("results.terminal", "results.suggest"),
    "results": ("results.records", "files.atomic"),
    "sequence": (
        "speech.sequence.pipeline",
        "speech.sequence.clip_compare",
        "speech.sequence.gates",
        "speech.sequence.verdict",
        "speech.sequence.report",
    ),
    "sequence_config": ("speech.sequence.config",),
    "sequence_run": ("speech.sequence.run",),
    "sessions": ("runtime.sessions",),
    "settings": ("run.settings",),
    "signature": ("onnxfile.signature",),
    "streaming": (
        "speech.streaming.stream",
        "speech.streaming.config",
        "speech.audio.signals",
    ),
    "suite_checks": ("suites.checks",),
    "suites": ("suites.loading",),
    "timing": ("speed.budgets", "speed.measure", "speed.verdict"),
    "tolerances": ("config.tolerances",),
    "torch_reference": ("references.torch_files", "references.base"),
    "transcripts": ("speech.transcripts",),
}
# Old modules whose name is a package now: the package answers through ``moved_getattr``.
NOW_PACKAGES = frozenset({"config", "results", "suites"})


def _caller_stacklevel() -> int:
    """The stack level of the first frame outside this module and the import machinery, so the
    warning points at the user's import line (``warnings`` does not count importlib's frames)."""
    frame: Any = sys._getframe(2)  # the caller of _warn
    level = 2
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            frame = frame.f_back
        elif filename == __file__:
            frame, level = frame.f_back, level + 1
        else:
            break
    return level


def _warn(old: str) -> None:
    homes = ", ".join(f"{PACKAGE}.{home}" for home in MOVED[old])
    warnings.warn(
        f"{PACKAGE}.{old} moved to {homes}; import from {PACKAGE} (its public API) or the new "
        f"module; the old path goes in {REMOVAL}",
        DeprecationWarning,
        stacklevel=_caller_stacklevel(),
    )


def _lookup(old: str, name: str) -> Any:
    for home in MOVED[old]:
        module = importlib.import_module(f"{PACKAGE}.{home}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {PACKAGE}.{old!r} has no attribute {name!r}")


def moved_getattr(old: str, package_names: Sequence[str] = ()) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that answers the names its 0.1 module had, with a warning."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or name in package_names:
            raise AttributeError(name)
        value = _lookup(old, name)
        _warn(old)
        # Kept on the package: ``from package import name`` looks a name up twice.
        setattr(sys.modules[f"{PACKAGE}.{old}"], name, value)
        return value

    return __getattr__


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``pytest_onnxparity.<old module>`` with a module that forwards to the new ones."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, old = fullname.rpartition(".")
        if package != PACKAGE or old not in MOVED or old in NOW_PACKAGES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__.rpartition(".")[2]
        _warn(old)
        module.__getattr__ = lambda name: _lookup(old, name)  # type: ignore[method-assign]


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (after the ordinary finders)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
