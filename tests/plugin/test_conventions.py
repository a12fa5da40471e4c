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

EXAMPLE_TESTS = 12  # a parity and a weights[<variant>] test per variant of the example


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
    ).assert_outcomes(passed=EXAMPLE_TESTS)

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
    assert properties["parity_worst_limit"] == "0.4"
    assert 0 < float(properties["parity_worst_value"]) < 0.1
    records = json.loads(results.read_text())["records"]
    parity = [record for record in records if record["kind"] == "parity"]
    assert len(parity) == 6
    assert all("parity" in record for record in parity)


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

    result = run("--onnx-dir", str(export), "--parity-json", str(results))

    result.assert_outcomes(passed=EXAMPLE_TESTS)

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

    result.assert_outcomes(passed=EXAMPLE_TESTS)
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


# --- the next step names where the failing limit can be raised -----------------------------------

HINT_TESTS = """
import numpy as np
import pytest


@pytest.mark.parity(graph="encoder", variant="int8", rel_l2=1e-9)
def test_marker_limit(parity_case, assert_parity):
    assert_parity(parity_case)


@pytest.mark.parity(graph="encoder", variant="int8")
def test_call_limit(parity_case, assert_parity):
    assert_parity(parity_case, rel_l2=1e-9)


def test_dict_form(assert_parity):
    reference = {"y": np.linspace(0.0, 1.0, 8, dtype=np.float32)}
    assert_parity(reference, {"y": reference["y"] + np.float32(0.01)}, tier="fp32")
"""


def test_the_next_step_points_at_the_marker_the_call_or_the_dict_form(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyfile(test_hints=HINT_TESTS)

    result = run("--onnx-dir", str(export_copy), "test_hints.py", "-k", "test_hints")

    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_marker_limit*",
            "  next step: if this drift is acceptable, raise rel_l2 in this test's "
            "@pytest.mark.parity(..., rel_l2=<limit>): a marker's limit overrides "
            "--parity-tolerance and the config files",
            "*test_call_limit*",
            "  next step: if this drift is acceptable, raise rel_l2 in this test's "
            "assert_parity(..., rel_l2=<limit>) call: its keywords override every other limit",
            "*test_dict_form*",
            "  next step: if this drift is acceptable, pass the limit to this call: "
            "assert_parity(reference, variant, tier=..., max_abs_rel=<limit>), or set it in "
            "@pytest.mark.parity(max_abs_rel=...)",
        ]
    )
    assert "custom/custom" not in result.stdout.str()


def test_the_next_step_of_a_generated_test_names_the_flag_and_the_config_table(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    result = run("--onnx-dir", str(export_copy), "--parity-tolerance", "encoder/int8:rel_l2=1e-9")

    result.stdout.fnmatch_lines(
        [
            "  next step: if this drift is acceptable, raise the limit: --parity-tolerance "
            "encoder/int8/*:rel_l2=<limit>, or in parity.toml "
            '[[]graphs."encoder".variants."int8".outputs."*"[]]; --parity-suggest PATH writes '
            "limits from measured values"
        ]
    )


def unload_weights(model: Path) -> None:
    """Every weight replaced by seeded noise of the same spread: a reference whose trained
    weights were never loaded."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(model)
    rng = np.random.default_rng(1)
    for tensor in graph.graph.initializer:
        values = numpy_helper.to_array(tensor)
        noise = (rng.standard_normal(values.shape) * values.std()).astype(values.dtype)
        tensor.CopyFrom(numpy_helper.from_array(noise, tensor.name))
    onnx.save(graph, model)


def test_every_variant_unrelated_to_its_reference_points_at_the_reference(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    unload_weights(export_copy / "encoder.onnx")

    result = run("--onnx-dir", str(export_copy))

    # encoder: 3 parity and 3 weights tests fail; classifier: all 6 pass
    result.assert_outcomes(passed=6, failed=6)
    result.stdout.fnmatch_lines(
        [
            "  next step: cosine * (<= 0.5) says the outputs are unrelated, not drifted: do not "
            "raise a limit; if every variant of 'encoder' fails like this, the reference is the "
            "suspect (weights not loaded? inputs mapped to the wrong arguments?)",
            "every variant of encoder fails with cosine <= 0.5 on every output (at most *): the "
            "reference is the suspect (weights not loaded? inputs mapped to the wrong "
            "arguments?), not the variants",
        ]
    )
    assert "every variant of classifier" not in result.stdout.str()


def test_a_drifted_variant_still_gets_the_raise_the_limit_hint(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    import modelkit

    modelkit.damage_initializer(
        export_copy / "encoder.onnx",
        export_copy / "encoder.int8.onnx",
        "hidden_proj.weight",
        mode="scale",
        factor=3.0,
    )

    result = run("--onnx-dir", str(export_copy), "-k", "encoder and int8")

    result.stdout.fnmatch_lines(["  next step: if this drift is acceptable, raise the limit:*"])
    assert "suspect" not in result.stdout.str()
