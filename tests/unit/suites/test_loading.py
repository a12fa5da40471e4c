"""Ready-made suites as data: the shipped files, finding and reading suites, layering them under
the user's config, fitting them to graphs, and the pooled-embedding core."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pytest_onnxparity.compare.pooling import (
    PooledOptions,
    PoolingError,
    compare_pooled,
    parse_pooled_options,
    pool,
    row_cosines,
)
from pytest_onnxparity.config.project import InputRule, load_config, parse_config
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import TIERS, Tolerance, tier_default
from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.suites.loading import (
    SuiteError,
    describe_suite,
    find_suite,
    fit_to_graphs,
    parse_suite_options,
    read_suite,
    shipped_suites,
    with_sequence_defaults,
)
from tests.paths import SUITES

REPO_SUITES = SUITES
SHIPPED = ("classifier", "embedding", "encoder-decoder-asr", "streaming-vad")
MINIMAL = b"""
[suite]
name = "mine"
description = "a custom suite"
checks = ["something"]

[tiers.int8]
rel_l2 = 0.2
"""


def test_the_four_suites_ship_in_the_package_and_in_the_repository_folder() -> None:
    assert tuple(shipped_suites()) == SHIPPED
    assert sorted(path.stem for path in REPO_SUITES.glob("*.toml")) == list(SHIPPED)
    for name, resource in shipped_suites().items():
        assert resource.read_bytes() == (REPO_SUITES / f"{name}.toml").read_bytes()


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_suite_is_a_valid_config_with_a_documented_header(name: str) -> None:
    suite = find_suite(name, Path.cwd())

    assert suite.name == name and suite.description and suite.checks
    assert suite.example.startswith(f"pytest --onnx-dir out/ --parity-suite {name}")
    text = (REPO_SUITES / f"{name}.toml").read_text()
    # The comment header says what it checks, its tolerances per tier and how to run it.
    assert text.startswith(f"# {name}: ")
    assert "Tolerances per precision tier" in text and "# Example: pytest" in text
    lines = describe_suite(suite)
    assert lines[0].startswith(f"{name}: ")
    for tier in TIERS:
        assert any(line.strip().startswith(tier) for line in lines), tier


def test_a_suite_is_found_by_path_relative_to_the_base_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_bytes(MINIMAL)

    suite = find_suite("mine.toml", tmp_path)

    assert (suite.name, suite.source) == ("mine", str(tmp_path / "mine.toml"))
    assert suite.label == f"suite mine ({tmp_path / 'mine.toml'})"


def test_an_unknown_suite_lists_the_shipped_ones() -> None:
    expected = (
        "unknown suite 'embeddings'; shipped suites: classifier, embedding, "
        "encoder-decoder-asr, streaming-vad (--parity-suites lists them), or pass a path"
    )
    with pytest.raises(SuiteError, match=re.escape(expected)):
        find_suite("embeddings", Path.cwd())
    with pytest.raises(SuiteError, match=r"suite file .*none\.toml: no such file"):
        find_suite("none.toml", Path.cwd())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"[suite\n", "x.toml: not valid TOML"),
        (b"[tiers.int8]\nrel_l2 = 0.1\n", "x.toml: a suite needs a [suite] table"),
        (b'[suite]\nname = "x"\n', "x.toml: [suite] lacks description, checks"),
        (MINIMAL + b"[tiers.int3]\nrel_l2 = 1\n", "x.toml [tiers]: unknown key 'int3'"),
        (MINIMAL + b"[suite.pooled]\nmask = 3\n", "x.toml [suite] pooled: mask must be"),
        (MINIMAL.replace(b"[suite]", b"[suite]\nbatch = 0"), "batch must be an integer >= 1"),
        (MINIMAL + b"[suite.inputs]\nids = { range = [5, 1] }\n", "x.toml [suite] [inputs.ids]"),
        (MINIMAL + b"[suite.sequence]\nmax_wer = -1\n", "max_wer must be a number >= 0"),
    ],
)
def test_an_invalid_suite_file_is_an_error_naming_the_file_and_key(
    text: bytes, problem: str
) -> None:
    with pytest.raises(SuiteError, match=re.escape(problem)):
        read_suite(text, "x.toml")


# --------------------------------------------------------------------------------------------
# Layering: suite < pyproject < parity.toml
# --------------------------------------------------------------------------------------------


def _layers(tmp_path: Path, pyproject: str | None, folder: str | None) -> tuple[Path, Path]:
    project = tmp_path / "pyproject.toml"
    project.write_text(f"[tool.onnxparity]\n{pyproject or ''}")
    export = tmp_path / "export"
    export.mkdir()
    if folder is not None:
        (export / "parity.toml").write_text(folder)
    return project, export


@pytest.mark.parametrize(
    ("pyproject", "folder", "expected"),
    [
        (None, None, 0.97),  # the suite's own limit
        ("[tool.onnxparity.suite.pooled.tiers.int8]\nmin_cosine = 0.95\n", None, 0.95),
        (
            "[tool.onnxparity.suite.pooled.tiers.int8]\nmin_cosine = 0.95\n",
            "[suite.pooled.tiers.int8]\nmin_cosine = 0.9\n",
            0.9,
        ),
    ],
    ids=["suite", "pyproject-over-suite", "folder-over-pyproject"],
)
def test_the_users_config_overrides_the_suite_key_by_key(
    tmp_path: Path, pyproject: str | None, folder: str | None, expected: float
) -> None:
    suite = find_suite("embedding", tmp_path)
    project, export = _layers(tmp_path, pyproject, folder)

    config = load_config(project, export, base=suite.table, base_source=suite.label)
    options = parse_suite_options(config.section("suite"), "run")

    assert options.pooled is not None
    assert options.pooled.tolerance("int8").min_cosine == expected
    # Keys the user did not touch keep the suite's values.
    assert options.pooled.tolerance("int8").max_abs == 0.05
    assert options.inputs["attention_mask"] == InputRule(value=1)
    assert config.sources[0] == suite.label


def test_a_user_tier_table_extends_the_suites_instead_of_replacing_it(tmp_path: Path) -> None:
    suite = find_suite("classifier", tmp_path)
    project, export = _layers(tmp_path, "[tool.onnxparity.tiers.int8]\nrel_l2 = 0.05\n", None)

    config = load_config(project, export, base=suite.table, base_source=suite.label)

    assert config.tiers["int8"] == {
        "min_argmax_agreement": 0.9,
        "min_topk_overlap": 0.9,
        "rel_l2": 0.05,
    }
    assert config.tolerance == {"argmax_axis": -1, "topk": 5}


def test_a_base_table_with_an_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^suite x: unknown key 'tolerances'"):
        load_config(None, None, base={"tolerances": {}}, base_source="suite x")


# --------------------------------------------------------------------------------------------
# Fitting a suite to graphs
# --------------------------------------------------------------------------------------------

ENCODER_INPUTS = (
    TensorSpec("input_ids", "int64", ("batch", "sequence")),
    TensorSpec("attention_mask", "int64", ("batch", "sequence")),
)
HEAD_INPUTS = (TensorSpec("features", "float32", ("N", 384)),)


def test_input_rules_apply_by_name_under_the_graphs_own_rules() -> None:
    config = parse_config(
        {"graphs": {"encoder": {"inputs": {"input_ids": {"range": [0, 5]}}}}}, "pyproject"
    )
    options = parse_suite_options(
        {
            "inputs": {"input_ids": {"range": [1000, 30000]}, "attention_mask": {"value": 1}},
            "batch": 4,
        },
        "suite",
    )

    fitted = fit_to_graphs(config, options, {"encoder": ENCODER_INPUTS, "head": HEAD_INPUTS})

    assert fitted.graph("encoder").inputs == {
        "input_ids": InputRule(range=(0, 5)),  # the graph's own rule wins
        "attention_mask": InputRule(value=1),
    }
    assert fitted.graph("head").inputs == {}  # no input of those names
    assert fitted.dims == {"batch": 4, "N": 4}


def test_the_configs_own_dims_win_over_the_suite_batch() -> None:
    config = parse_config({"dims": {"batch": 2}}, "pyproject")
    options = parse_suite_options({"batch": 32}, "suite")

    assert fit_to_graphs(config, options, {"encoder": ENCODER_INPUTS}).dims == {"batch": 2}


def test_sequence_defaults_join_only_when_the_user_asks_for_sequence_gates() -> None:
    options = parse_suite_options({"sequence": {"max_wer": 0.05, "max_cer": 0.1}}, "suite")
    plain = parse_config({}, "pyproject")
    with_table = parse_config({"sequence": {"clips_dir": "clips", "max_wer": 0.02}}, "pyproject")

    assert with_sequence_defaults(plain, options, clips_given=False) is plain
    assert with_sequence_defaults(plain, options, clips_given=True).section("sequence") == {
        "max_wer": 0.05,
        "max_cer": 0.1,
    }
    assert with_sequence_defaults(with_table, options, clips_given=False).section("sequence") == {
        "max_wer": 0.02,
        "max_cer": 0.1,
        "clips_dir": "clips",
    }


# --------------------------------------------------------------------------------------------
# Pooled embeddings
# --------------------------------------------------------------------------------------------

HIDDEN = np.array(
    [
        [[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]],  # the last token is padding
        [[0.0, 2.0], [0.0, 4.0], [0.0, 6.0]],
    ]
)
MASK = np.array([[1, 1, 0], [1, 1, 1]])


def test_mean_pooling_averages_only_the_tokens_the_mask_keeps() -> None:
    pooled = pool(HIDDEN, MASK, PooledOptions(normalize=False))

    np.testing.assert_allclose(pooled, [[2.0, 0.0], [0.0, 4.0]])


def test_pooling_kinds_and_normalization() -> None:
    np.testing.assert_allclose(pool(HIDDEN, MASK, PooledOptions(pooling="cls")), [[1, 0], [0, 1]])
    flat = pool(HIDDEN[:, 0, :], None, PooledOptions(pooling="none", normalize=False))
    np.testing.assert_allclose(flat, [[1, 0], [0, 2]])
    everything = pool(HIDDEN, None, PooledOptions(normalize=False))
    np.testing.assert_allclose(everything[0], [104 / 3, 100 / 3])


def test_pooling_explains_shapes_it_cannot_pool() -> None:
    with pytest.raises(PoolingError, match=re.escape('set pooling = "none" in [suite.pooled]')):
        pool(HIDDEN[:, 0, :], None, PooledOptions())
    with pytest.raises(PoolingError, match=re.escape("the mask must be [batch, tokens]")):
        pool(HIDDEN, MASK[:, :2], PooledOptions())


def test_row_cosines_treat_zero_rows_without_dividing_by_zero() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    variant = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])

    np.testing.assert_allclose(row_cosines(reference, variant), [np.sqrt(0.5), 1.0, 0.0])


def test_the_pooled_cosine_gate_reads_the_worst_sentence() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    variant = np.array([[1.0, 0.0], [0.2, 1.0], [1.0, 1.0]])

    comparison = compare_pooled(
        reference, variant, Tolerance(min_cosine=0.99), ["s[0]", "s[1]", "s[2]"]
    )

    assert not comparison.passed
    assert comparison.stats.cosine == pytest.approx(1 / np.sqrt(1.04))
    assert comparison.worst_sentence == 1
    text = comparison.failure_text("model[int8] vs fp32: pooled", "raise it")
    pytest.LineMatcher(text.splitlines()).fnmatch_lines(
        [
            "model[[]int8[]] vs fp32: pooled: 1 gate(s) failed",
            "  output 'pooled': min_cosine=0.980581 violates >= 0.99 *",
            "  worst sentence: s[[]1[]] with cosine 0.980581 (mean over 3 sentences 0.993527)",
            "*next step: raise it",
        ]
    )
    assert comparison.to_json()["worst_sentence"] == "s[1]"


def test_a_tier_without_pooled_limits_uses_the_builtin_tier_default() -> None:
    options = parse_pooled_options({"tiers": {"int8": {"min_cosine": 0.97}}}, "suite")

    assert options.tolerance("int8").limits() == {"min_cosine": 0.97}
    assert options.tolerance("int4").limits() == tier_default("int4").limits()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"pooling": "max"}, "pooling 'max' is not one of mean, cls, none"),
        ({"normalize": "yes"}, "normalize must be true or false"),
        ({"tiers": {"int9": {}}}, "unknown tier 'int9'"),
        ({"tiers": {"int8": {"cos": 1}}}, "tiers.int8: unknown key 'cos'"),
        ({"tiers": {"int8": {"min_cosine": 2}}}, "min_cosine is a fraction in [0, 1]"),
        ({"outputs": "x"}, "unknown key 'outputs'; allowed keys: output, mask"),
    ],
)
def test_invalid_pooled_keys_are_errors_naming_the_key(
    raw: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_pooled_options(raw, "suite [suite] pooled")
