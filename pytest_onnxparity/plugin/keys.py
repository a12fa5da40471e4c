"""Stash keys: where the plugin keeps its per-run objects on ``pytest.Config``.

Typed with core classes only (imported for type checking), so the glue modules that read them
never import each other through this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_onnxparity.results.records import ResultCollector
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.run.settings import Settings

SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()
ENGINE: pytest.StashKey[ParityEngine] = pytest.StashKey()
# The controller's collector of every record (absent on xdist workers).
COLLECTOR: pytest.StashKey[ResultCollector] = pytest.StashKey()
# True when --onnx-dir without test paths made the export folder the only collection argument.
FOLDER_ONLY: pytest.StashKey[bool] = pytest.StashKey()
# A test's records of the phase that is running, until its report takes them (plugin.results).
ITEM_RECORDS: pytest.StashKey[list[dict[str, Any]]] = pytest.StashKey()
