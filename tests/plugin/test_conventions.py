"""pytest conventions the plugin keeps: junitxml gets scalars, not records; hooks that edit in
place reach every implementation; ini options are typed; conftest hooks survive
``-p no:onnxparity`` when marked optional."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import RunPytest


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist2"])
def test_junitxml_gets_a_few_scalars_per_test_and_the_results_file_every_record(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, workers: tuple[str, ...]
) -> None:
    junit, results = pytester.path / "junit.xml", pytester.path / "results.json"

    run(
        "--onnx-dir",
        str(export_copy),
        "--junitxml",
        str(junit),
        "--parity-json",
        str(results),
        *workers,
    ).assert_outcomes(passed=6)

    testcase = next(
        case
        for case in ET.parse(junit).iter("testcase")
        if case.get("name") == "parity[int8]" and "encoder" in (case.get("classname") or "")
    )
    properties = {p.get("name"): p.get("value") for p in testcase.iter("property")}
    assert set(properties) == {
        "parity_graph",
        "parity_variant",
        "parity_status",
        "parity_worst_gate",
        "parity_worst_value",
        "parity_worst_limit",
    }
    assert properties["parity_status"] == "passed"
    assert properties["parity_worst_limit"] == "0.1"
    assert 0 < float(properties["parity_worst_value"]) < 0.1
    records = json.loads(results.read_text())["records"]
    assert len(records) == 6
    assert all("parity" in record for record in records)


def test_every_update_record_hook_edits_the_record_whatever_the_others_return(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    # conftest hooks called on an item apply under the conftest's folder: the export goes there.
    export = Path(shutil.copytree(export_copy, pytester.path / "export"))
    pytester.makeconftest(
        """
        import pytest

        class Stamp:
            @pytest.hookimpl(optionalhook=True)
            def pytest_onnxparity_update_record(self, record, item):
                record["stamp"] = "plugin"
                return record  # a returned value must not stop the other implementations

        def pytest_configure(config):
            config.pluginmanager.register(Stamp(), "stamp")

        @pytest.hookimpl(optionalhook=True)
        def pytest_onnxparity_update_record(record, item):
            record["reviewed_by"] = "conftest"
            return record
        """
    )
    results = pytester.path / "results.json"

    run("--onnx-dir", str(export), "--parity-json", str(results)).assert_outcomes(passed=6)

    for record in json.loads(results.read_text())["records"]:
        assert (record["stamp"], record["reviewed_by"]) == ("plugin", "conftest")


CONFTEST_HOOKS = """
import pytest

@pytest.hookimpl({marker})
def pytest_onnxparity_update_record(record, item):
    record["seen"] = True
"""


def test_conftest_hooks_marked_optional_survive_a_run_without_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST_HOOKS.format(marker="optionalhook=True"))
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")

    pytester.runpytest("-p", "no:onnxparity", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_conftest_hooks_not_marked_optional_stop_a_run_without_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST_HOOKS.format(marker=""))
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "no:onnxparity", "-p", "no:cacheprovider")

    assert result.ret != pytest.ExitCode.OK
    assert "unknown hook 'pytest_onnxparity_update_record'" in result.stdout.str()


@pytest.mark.parametrize(
    "config_file",
    [
        ("pyproject.toml", "[tool.pytest]\nparity_threads = 1\nparity_timing_repeats = 2\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nparity_threads = "1"\n'),
        ("pytest.ini", "[pytest]\nparity_threads = 1\nparity_timing_repeats = 2\n"),
    ],
    ids=["native-toml-integers", "ini-options-strings", "ini-file"],
)
def test_numeric_ini_keys_are_integers_in_every_config_format(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, config_file: tuple[str, str]
) -> None:
    name, text = config_file
    (pytester.path / name).write_text(text)

    result = run("--onnx-dir", str(export_copy))

    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["onnxparity: * threads 1, graph opt all)"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.pytest]\nparity_threads = 1.5\n", "*'parity_threads' expects an int, got float*"),
        ('[tool.pytest]\nparity_threads = "two"\n', "*'parity_threads' expects an int*"),
        (
            "[tool.pytest]\nparity_threads = -1\n",
            "*ini parity_threads must be a non-negative integer, got -1",
        ),
    ],
    ids=["float", "string", "negative"],
)
def test_a_bad_numeric_ini_value_is_a_usage_error_naming_the_key(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path, text: str, message: str
) -> None:
    (pytester.path / "pyproject.toml").write_text(text)

    result = run("--onnx-dir", str(export_copy))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
