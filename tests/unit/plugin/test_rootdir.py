"""Finding path options written with a space, and the config file pytest finds without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_onnxparity.plugin.rootdir import project_config, space_form_values


@pytest.mark.parametrize(
    ("args", "found"),
    [
        (["--onnx-dir", "out"], [("--onnx-dir", "out")]),
        (["--onnx-dir=out"], []),
        (["--onnx-dir", "a", "--onnx-dir=b"], []),  # argparse keeps the last one
        (["--onnx-dir=a", "--onnx-dir", "b"], [("--onnx-dir", "b")]),
        (["-m", "parity", "--parity-baseline", "old.json"], [("--parity-baseline", "old.json")]),
        (["--parity-recorded", "tests/"], []),  # a flag without a value: tests/ is a test path
        (["--onnx-dir"], []),
    ],
)
def test_space_form_values_are_the_ones_argparse_keeps(
    args: list[str], found: list[tuple[str, str]]
) -> None:
    assert space_form_values(args) == found


def test_the_project_config_is_the_first_file_with_pytest_settings_upward(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub" / "deeper").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = ''\n")
    (project / "sub" / "pyproject.toml").write_text("[tool.onnxparity]\nseed = 1\n")
    (project / "sub" / "setup.cfg").write_text("[metadata]\nname = x\n")

    assert project_config(project / "sub" / "deeper") == project / "pyproject.toml"
    (project / "sub" / "tox.ini").write_text("[tox]\n\n[pytest]\naddopts = -q\n")
    assert project_config(project / "sub" / "deeper") == project / "sub" / "tox.ini"
    (project / "sub" / "deeper" / "pytest.ini").write_text("")  # always counts, even empty
    assert project_config(project / "sub" / "deeper") == project / "sub" / "deeper" / "pytest.ini"


def test_without_pytest_settings_the_first_pyproject_is_the_config(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "pyproject.toml").write_text("[tool.onnxparity]\nseed = 1\n")
    assert project_config(tmp_path / "a" / "b") == tmp_path / "a" / "pyproject.toml"


def test_every_path_option_of_the_plugin_is_watched() -> None:
    """Each option whose metavar names a path or folder is in ``PATH_FLAGS``."""
    import argparse

    from pytest_onnxparity.plugin.options import add_options
    from pytest_onnxparity.plugin.rootdir import PATH_FLAGS

    class Group:
        def __init__(self) -> None:
            self.parser = argparse.ArgumentParser()

        def addoption(self, *names: str, **kwargs: object) -> None:
            self.parser.add_argument(*names, **kwargs)  # type: ignore[arg-type]

    class Parser:
        group = Group()

        def getgroup(self, *args: object) -> Group:
            return self.group

        def addini(self, *args: object, **kwargs: object) -> None:
            pass

    parser = Parser()
    add_options(parser)
    path_like = {
        option
        for action in parser.group.parser._actions
        for option in action.option_strings
        if any(word in str(action.metavar) for word in ("PATH", "DIR", ".json"))
    }
    assert path_like
    assert path_like <= set(PATH_FLAGS)
