"""An ordinary install and an ordinary command line: no warnings without pytest-xdist, the export
folder collected alone, and a rootdir that stays the project's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import RunPytest
from tests.paths import EXAMPLE

STRICT = ("-W", "error", "--strict-markers", "-p", "no:cacheprovider")
EXAMPLE_TESTS = 12  # a parity and a weights[<variant>] test per variant of the example


@pytest.mark.parametrize("xdist", ["without xdist", "with xdist"])
def test_the_plugin_is_silent_under_w_error_and_strict_markers(
    pytester: pytest.Pytester, export_copy: Path, xdist: str
) -> None:
    blocked = ("-p", "no:xdist") if xdist == "without xdist" else ()
    result = pytester.runpytest_subprocess(*STRICT, *blocked, f"--onnx-dir={export_copy}", "-rA")

    result.assert_outcomes(passed=EXAMPLE_TESTS)
    output = result.stdout.str() + result.stderr.str()
    assert "warning" not in output.lower()


def test_generated_items_carry_xdist_group_only_when_xdist_is_loaded(
    pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            groups = {item.get_closest_marker("xdist_group") is not None for item in session.items}
            print(f"grouped: {sorted(groups)}")
        """
    )
    common = ("-p", "no:cacheprovider", "-s", f"--onnx-dir={export_copy}", "--co")

    pytester.runpytest_subprocess(*common, "-p", "no:xdist").stdout.fnmatch_lines(
        ["grouped: [[]False[]]"]
    )
    pytester.runpytest_subprocess(*common).stdout.fnmatch_lines(["grouped: [[]True[]]"])


def test_onnx_dir_without_test_paths_collects_the_export_folder_alone(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_project.py").write_text("def test_project(): pass\n")

    result = run("--onnx-dir", str(export_copy), "-m", "parity")

    # Nothing of tests/ is collected, so nothing is deselected.
    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines(
        [
            f"onnxparity: collecting {export_copy} only (name test paths on the command line to "
            "collect them too)",
            f"collected {EXAMPLE_TESTS} items",
        ]
    )
    assert "testpaths:" not in result.stdout.str()


def test_named_test_paths_run_beside_the_export_folder(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyfile(test_project="def test_project(): pass\n")

    result = run("--onnx-dir", str(export_copy), "test_project.py")

    result.assert_outcomes(passed=EXAMPLE_TESTS + 1)
    assert "collecting" not in result.stdout.str()


def test_the_ini_onnx_dir_adds_the_folder_to_the_normal_run(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makeini(f"[pytest]\nparity_onnx_dir = {export_copy}\n")
    pytester.makepyfile(test_project="def test_project(): pass\n")

    run().assert_outcomes(passed=EXAMPLE_TESTS + 1)


def test_an_export_folder_outside_the_rootdir_is_named_in_node_ids(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy), "-v")

    result.stdout.fnmatch_lines(["export::encoder::parity[[]int8[]] PASSED*"])


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A project with strict pytest settings and its own calibrated [tool.onnxparity]."""
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        addopts = "-p no:cacheprovider"

        [tool.onnxparity]
        seed = 7
        """
    )
    return pytester.path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """Another project (a checkout with its own pytest settings) holding the export folder."""
    root = tmp_path / "checkout"
    shutil.copytree(EXAMPLE, root / "exports", ignore=shutil.ignore_patterns("reference"))
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--strict-markers"\n'
    )
    return root / "exports"


def test_onnx_dir_with_a_space_outside_the_project_stops_with_the_equals_form(
    pytester: pytest.Pytester, project: Path, export_copy: Path
) -> None:
    result = pytester.runpytest_subprocess("--onnx-dir", str(export_copy))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: onnxparity: --onnx-dir {export_copy} is written with a space, so pytest "
            f"took it for a test path and chose rootdir {export_copy.parent.parent} (no config "
            f"file) instead of the project's ({project / 'pyproject.toml'}), whose pytest and "
            f"[[]tool.onnxparity[]] settings would not apply; write --onnx-dir={export_copy} "
            "(or choose with --rootdir)"
        ]
    )


def test_onnx_dir_with_a_space_inside_another_checkout_stops_too(
    pytester: pytest.Pytester, project: Path, checkout: Path
) -> None:
    result = pytester.runpytest_subprocess("--onnx-dir", str(checkout))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*chose rootdir {checkout.parent} ({checkout.parent / 'pyproject.toml'}) instead of "
            f"the project's ({project / 'pyproject.toml'})*"
        ]
    )


def test_the_equals_form_keeps_the_project_rootdir_and_its_settings(
    pytester: pytest.Pytester, project: Path, checkout: Path
) -> None:
    result = pytester.runpytest_subprocess(f"--onnx-dir={checkout}")

    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines([f"onnxparity: {checkout} (seed 7,*", f"rootdir: {project}"])


def test_onnx_dir_with_a_space_inside_the_project_runs(
    pytester: pytest.Pytester, project: Path
) -> None:
    shutil.copytree(EXAMPLE, project / "out", ignore=shutil.ignore_patterns("reference"))

    result = pytester.runpytest_subprocess("--onnx-dir", "out")

    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines(["onnxparity: out (seed 7,*", f"rootdir: {project}"])


def test_a_config_file_inside_the_export_folder_cannot_take_the_rootdir(
    pytester: pytest.Pytester, project: Path
) -> None:
    shutil.copytree(EXAMPLE, project / "out", ignore=shutil.ignore_patterns("reference"))
    (project / "out" / "pytest.ini").write_text("[pytest]\n")

    result = pytester.runpytest_subprocess("--onnx-dir", "out")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*write --onnx-dir=out (or choose with --rootdir)"])


def test_an_outside_path_that_leaves_the_project_config_in_place_runs(
    pytester: pytest.Pytester, project: Path, tmp_path: Path
) -> None:
    shutil.copytree(EXAMPLE, project / "out", ignore=shutil.ignore_patterns("reference"))
    results = tmp_path / "elsewhere" / "results.json"  # exists: the second run of a CI job
    results.parent.mkdir()
    results.write_text("{}")

    result = pytester.runpytest_subprocess("--onnx-dir", "out", "--parity-json", str(results))

    result.assert_outcomes(passed=EXAMPLE_TESTS)
    result.stdout.fnmatch_lines([f"rootdir: {project}"])


def test_rootdir_on_the_command_line_is_a_choice(
    pytester: pytest.Pytester, project: Path, export_copy: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "--onnx-dir", str(export_copy), "--rootdir", str(project)
    )

    result.assert_outcomes(passed=EXAMPLE_TESTS)


NO_ONNXRUNTIME = """
import importlib.abc, sys

class NoOnnxRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError("No module named 'onnxruntime' (blocked)", name=name)

sys.meta_path.insert(0, NoOnnxRuntime())
"""


def test_a_run_without_any_onnxruntime_stops_with_one_line_naming_both_builds(
    pytester: pytest.Pytester, export_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = pytester.mkdir("no-onnxruntime")
    (blocker / "sitecustomize.py").write_text(NO_ONNXRUNTIME)
    monkeypatch.setenv("PYTHONPATH", str(blocker))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--onnx-dir={export_copy}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: onnxparity: no ONNX Runtime is installed: pip install onnxruntime (CPU) or "
            "onnxruntime-gpu (CUDA); any other onnxruntime build (onnxruntime-directml, "
            "onnxruntime-openvino, ...) works too"
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_any_path_option_with_a_space_outside_the_project_stops_too(
    pytester: pytest.Pytester, project: Path, export_copy: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "old" / "results.json"
    baseline.parent.mkdir()
    baseline.write_text("{}")

    result = pytester.runpytest_subprocess(
        f"--onnx-dir={export_copy}", "--parity-baseline", str(baseline)
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*write --parity-baseline={baseline} (or choose with --rootdir)"])
