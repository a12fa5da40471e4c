"""Hooks of the nodes under the export folder: those of the folder's parent.

pytest picks the conftest hooks a node sees by the node's path, from the conftest.py files it
loaded for that folder; the export folder's own conftest.py is never loaded (see
:mod:`pytest_onnxparity.plugin.data_folder`), so its nodes ask for the hooks of its parent: the
project's conftest.py files still apply to them, as they would to a test folder there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.plugin import keys


class FolderHooks:
    """Mixin for every node under the export folder: it calls hooks as a node of the folder's
    parent would, so the project's conftest.py files apply to it (pytest picks a node's conftest
    hooks by its path, and the export folder's own conftest.py is never loaded)."""

    config: pytest.Config
    session: pytest.Session
    path: Path

    @property
    def ihook(self) -> Any:
        engine = self.config.stash.get(keys.ENGINE, None)
        folder = self.path if engine is None else engine.folder.root.parent
        return self.session.gethookproxy(folder)
