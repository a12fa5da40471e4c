"""Stash keys: where the plugin keeps its per-run objects on ``pytest.Config``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_onnxparity.plugin.reporter import ParityReporter
    from pytest_onnxparity.run.engine import ParityEngine
    from pytest_onnxparity.run.settings import Settings

SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()
ENGINE: pytest.StashKey[ParityEngine] = pytest.StashKey()
REPORTER: pytest.StashKey[ParityReporter] = pytest.StashKey()
