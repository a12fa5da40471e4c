"""Fixtures the unit tests of several subpackages share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlp_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TinyMLP (MatMul weights 16x64, 64x64, 64x10) exported once, with the fp16, int8, int4 and
    QDQ variants onnxruntime's own tools make of it. Tests copy a file before damaging it."""
    import modelkit

    return modelkit.make_export_folder(
        tmp_path_factory.mktemp("mlp"),
        models=("mlp",),
        variants=("fp32", "fp16", "int8", "int4", "qdq"),
    )
