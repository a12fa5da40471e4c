"""Config that names nothing in the export folder is an error, before any test runs."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from pytest_onnxparity.config.project import parse_config
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import parse_scoped_tolerance
from pytest_onnxparity.export.discovery import discover
from pytest_onnxparity.export.folder import ExportFolder
from pytest_onnxparity.run.config_targets import check_config_targets
from tests.paths import EXAMPLE


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> ExportFolder:
    root = tmp_path_factory.mktemp("export")
    for path in EXAMPLE.glob("*.onnx"):
        shutil.copy(path, root / path.name)
    return discover(root)


def _check(folder: ExportFolder, raw: dict[str, Any], *tolerances: str) -> None:
    config = parse_config(raw, "parity.toml", ("parity.toml",))
    check_config_targets(config, folder, [parse_scoped_tolerance(t) for t in tolerances])


def test_tables_and_scopes_that_name_what_the_folder_has_pass(folder: ExportFolder) -> None:
    _check(
        folder,
        {
            "graphs": {
                "encoder": {
                    "outputs": {"hidden": {"rel_l2": 0.1}},
                    "variants": {"int8": {"outputs": {"logits": {"rel_l2": 0.2}}}},
                    "skip_outputs": ["logits"],
                    "inputs": {"lengths": {"value": 4}},
                }
            }
        },
        "int8:rel_l2=0.1",
        "encoder/int4/hidden:rel_l2=0.3",
        "classifier:min_cosine=0.9",
        "fp32:max_abs=1",
    )


@pytest.mark.parametrize(
    ("raw", "tolerances", "message"),
    [
        ({"graphs": {"modle": {}}}, (), "no graph 'modle' in "),
        ({"graphs": {"encoder": {"variants": {"int9": {}}}}}, (), "has no variant 'int9'"),
        ({"graphs": {"encoder": {"outputs": {"x": {}}}}}, (), "has no output 'x'"),
        (
            {"graphs": {"encoder": {"variants": {"int8": {"outputs": {"x": {}}}}}}},
            (),
            "has no output 'x'",
        ),
        ({"graphs": {"encoder": {"skip_outputs": ["x"]}}}, (), "has no output 'x'"),
        (
            {"graphs": {"encoder": {"skip_outputs": ["hidden", "logits"]}}},
            (),
            "lists every output of encoder",
        ),
        ({"graphs": {"encoder": {"inputs": {"x": {"value": 1}}}}}, (), "has no input 'x'"),
        ({}, ("int9:rel_l2=0",), "scope 'int9' names no tier, graph, variant or output"),
        ({}, ("encoder/int8/x:rel_l2=0",), "scope 'encoder/int8/x' names no tier"),
    ],
)
def test_a_table_or_scope_that_names_nothing_is_an_error(
    folder: ExportFolder, raw: dict[str, Any], tolerances: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _check(folder, raw, *tolerances)
