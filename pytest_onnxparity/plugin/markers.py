"""The markers the plugin puts on the items it makes: ``parity``, and ``xdist_group`` only where
pytest-xdist is loaded.

pytest-xdist is a test extra, not a dependency: without it ``xdist_group`` is an unknown marker,
which pytest warns about on every item (``PytestUnknownMarkWarning``) and ``--strict-markers``
turns into a collection error. xdist registers the marker itself when it is loaded.
"""

from __future__ import annotations

import pytest

XDIST_PLUGIN = "xdist"


def mark_generated(item: pytest.Item, group: str) -> None:
    """Mark a generated item ``parity``, and ``xdist_group(group)`` when xdist can use it."""
    item.add_marker("parity")
    add_group(item, group)


def add_group(item: pytest.Item, group: str) -> None:
    """``xdist_group(group)`` on ``item`` when pytest-xdist is loaded; nothing otherwise."""
    if item.config.pluginmanager.hasplugin(XDIST_PLUGIN):
        item.add_marker(pytest.mark.xdist_group(group))
