"""Unit tests for config: every table's keys and values validated, both files merged."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.config.project import (
    FEATURE_SECTIONS,
    FILE_KEYS,
    GLOBAL_KEYS,
    GRAPH_KEYS,
    INPUT_KEYS,
    SESSION_KEYS,
    VARIANT_KEYS,
    GraphConfig,
    InputRule,
    ParityConfig,
    SessionConfig,
    VariantConfig,
    load_config,
    parse_config,
)
from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.config.tolerances import TIERS, TOLERANCE_KEYS, resolve

WHERE = "parity.toml"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def allowed(keys: tuple[str, ...]) -> str:
    return f"allowed keys: {', '.join(keys)}"


@pytest.mark.parametrize(
    ("toml", "table", "keys"),
    [
        pytest.param("colour = 1", "", GLOBAL_KEYS, id="global"),
        pytest.param("[tiers]\nint3 = {rel_l2 = 0.1}", " [tiers]", TIERS, id="tiers"),
        pytest.param("[tiers.int8]\ncolour = 1", " [tiers.int8]", TOLERANCE_KEYS, id="tiers.int8"),
        pytest.param("[graphs.encoder]\ncolour = 1", " [graphs.encoder]", GRAPH_KEYS, id="graph"),
        pytest.param(
            "[graphs.encoder.tolerance]\ncolour = 1",
            " [graphs.encoder] [tolerance]",
            TOLERANCE_KEYS,
            id="graph.tolerance",
        ),
        pytest.param(
            "[graphs.encoder.outputs.logits]\ncolour = 1",
            " [graphs.encoder] [outputs.logits]",
            TOLERANCE_KEYS,
            id="graph.outputs",
        ),
        pytest.param(
            "[graphs.encoder.variants.int8]\ncolour = 1",
            " [graphs.encoder] [variants.int8]",
            VARIANT_KEYS,
            id="variant",
        ),
        pytest.param(
            "[graphs.encoder.variants.int8.tolerance]\ncolour = 1",
            " [graphs.encoder] [variants.int8]",
            TOLERANCE_KEYS,
            id="variant.tolerance",
        ),
        pytest.param(
            "[graphs.encoder.variants.int8.outputs.logits]\ncolour = 1",
            " [graphs.encoder] [variants.int8] [outputs.logits]",
            TOLERANCE_KEYS,
            id="variant.outputs",
        ),
        pytest.param(
            "[graphs.encoder.inputs.features]\ncolour = 1",
            " [graphs.encoder] [inputs.features]",
            INPUT_KEYS,
            id="input",
        ),
        pytest.param(
            '[files."enc/model.onnx"]\ncolour = 1',
            ' [files."enc/model.onnx"]',
            FILE_KEYS,
            id="file",
        ),
        pytest.param("[session]\ncolour = 1", " [session]", SESSION_KEYS, id="session"),
    ],
)
def test_an_unknown_key_names_the_file_the_table_the_key_and_the_allowed_keys(
    tmp_path: Path, toml: str, table: str, keys: tuple[str, ...]
) -> None:
    path = write(tmp_path / "parity.toml", toml)
    key = "int3" if table == " [tiers]" else "colour"

    with pytest.raises(ConfigError) as error:
        load_config(None, tmp_path)

    assert str(error.value) == f"{path}{table}: unknown key {key!r}; {allowed(keys)}"


def test_an_unknown_global_tolerance_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "parity.toml", "[tolerance]\nmax_error = 0.1\n")

    with pytest.raises(ConfigError) as error:
        load_config(None, tmp_path)

    assert str(error.value) == (
        f"{path} [tolerance]: unknown tolerance key 'max_error'; "
        f"allowed: {', '.join(TOLERANCE_KEYS)}"
    )


def test_an_unknown_key_in_pyproject_names_its_table(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool.onnxparity]\ncolour = 1\n")

    with pytest.raises(ConfigError) as error:
        load_config(pyproject, None)

    assert str(error.value) == (
        f"{pyproject} [tool.onnxparity]: unknown key 'colour'; {allowed(GLOBAL_KEYS)}"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"seed": "1"}, "seed must be an integer, got '1'", id="seed-string"),
        pytest.param({"seed": True}, "seed must be an integer, got True", id="seed-bool"),
        pytest.param(
            {"float_range": [1.0, -1.0]},
            "float_range must be [low, high] with low <= high, got [1.0, -1.0]",
            id="float-range-reversed",
        ),
        pytest.param(
            {"float_range": [0.0]},
            "float_range must be [low, high] with low <= high, got [0.0]",
            id="float-range-one-value",
        ),
        pytest.param(
            {"float_range": ["a", 1]},
            "float_range must be [low, high] with low <= high, got ['a', 1]",
            id="float-range-string",
        ),
        pytest.param(
            {"float_range": [False, 1]},
            "float_range must be [low, high] with low <= high, got [False, 1]",
            id="float-range-bool",
        ),
        pytest.param(
            {"int_range": [0, 1.5]},
            "int_range must hold integers, got [0, 1.5]",
            id="int-range-float",
        ),
        pytest.param(
            {"dims": {"T": 0}}, "parity.toml dims: T must be an integer >= 1, got 0", id="dim-0"
        ),
        pytest.param(
            {"dims": {"T": True}},
            "parity.toml dims: T must be an integer >= 1, got True",
            id="dim-bool",
        ),
        pytest.param(
            {"dims": {"T": 9.5}},
            "parity.toml dims: T must be an integer >= 1, got 9.5",
            id="dim-float",
        ),
        pytest.param(
            {"dims": [1, 2]},
            "parity.toml dims: expected a table of NAME = INTEGER, got [1, 2]",
            id="dims-list",
        ),
        pytest.param({"default_dim": 0}, "default_dim must be >= 1, got 0", id="default-dim-zero"),
        pytest.param(
            {"sweep": {"T": []}},
            "parity.toml sweep: T must be a non-empty list of sizes, got []",
            id="sweep-empty",
        ),
        pytest.param(
            {"sweep": {"T": 64}},
            "parity.toml sweep: T must be a non-empty list of sizes, got 64",
            id="sweep-not-a-list",
        ),
        pytest.param(
            {"sweep": {"T": [64, 0]}},
            "parity.toml sweep: T must be an integer >= 1, got 0",
            id="sweep-zero",
        ),
        pytest.param(
            {"sweep": {"T": [64, "80"]}},
            "parity.toml sweep: T must be an integer >= 1, got '80'",
            id="sweep-string",
        ),
        pytest.param(
            {"graphs": {"enc": {"inputs": {"lengths": {"tie": "features"}}}}},
            "parity.toml [graphs.enc] [inputs.lengths]: tie must be 'INPUT:AXIS' "
            "(e.g. 'features:1'), got 'features'",
            id="tie-without-axis",
        ),
        pytest.param(
            {"graphs": {"enc": {"inputs": {"lengths": {"tie": "features:x"}}}}},
            "tie must be 'INPUT:AXIS' (e.g. 'features:1'), got 'features:x'",
            id="tie-axis-not-a-number",
        ),
        pytest.param(
            {"graphs": {"enc": {"inputs": {"lengths": {"tie": ":1"}}}}},
            "tie must be 'INPUT:AXIS' (e.g. 'features:1'), got ':1'",
            id="tie-without-input",
        ),
        pytest.param(
            {"graphs": {"enc": {"inputs": {"mask": {"value": "one"}}}}},
            "[inputs.mask]: value must be a number, got 'one'",
            id="input-value-string",
        ),
        pytest.param(
            {"graphs": {"enc": {"inputs": {"mask": {"value": True}}}}},
            "[inputs.mask]: value must be a number, got True",
            id="input-value-bool",
        ),
        pytest.param(
            {"graphs": {"enc": {"inputs": {"ids": {"range": [5, 1]}}}}},
            "[inputs.ids]: range must be [low, high] with low <= high, got [5, 1]",
            id="input-range-reversed",
        ),
        pytest.param(
            {"graphs": {"enc": {"reference": 32}}},
            "[graphs.enc]: reference must be a variant tag string, got 32",
            id="reference-not-a-string",
        ),
        pytest.param(
            {"graphs": {"enc": {"skip_outputs": "logits"}}},
            "[graphs.enc] skip_outputs: expected a list of strings, got 'logits'",
            id="skip-outputs-string",
        ),
        pytest.param(
            {"graphs": {"enc": 3}}, "[graphs.enc]: expected a table, got int", id="graph-not-table"
        ),
        pytest.param(
            {"graphs": {"enc": {"tolerance": {"rel_l2": -1}}}},
            "[graphs.enc] [tolerance]: rel_l2 must be a finite, non-negative number, got -1",
            id="graph-tolerance-negative",
        ),
        pytest.param(
            {"tiers": {"int8": {"min_cosine": 2}}},
            "parity.toml [tiers.int8]: min_cosine is a fraction in [0, 1], got 2",
            id="tier-cosine-above-one",
        ),
        pytest.param(
            {"tolerance": {"max_abs": "tight"}},
            "parity.toml [tolerance]: max_abs must be a non-negative number, got 'tight'",
            id="global-tolerance-word",
        ),
        pytest.param(
            {"files": {"a.onnx": {"tier": "int3"}}},
            "parity.toml [files.\"a.onnx\"]: unknown tier 'int3'; allowed: "
            "fp32, fp16, bf16, int8, int4",
            id="file-tier",
        ),
        pytest.param(
            {"tags": {"q4": "int3"}},
            "parity.toml [tags]: tag 'q4' maps to unknown tier 'int3'; allowed: fp32, ",
            id="tag-tier",
        ),
        pytest.param(
            {"session": {"graph_optimization_level": "max"}},
            "parity.toml [session]: graph_optimization_level 'max' is not one of "
            "disable, basic, extended, all",
            id="graph-opt-level",
        ),
        pytest.param(
            {"session": {"deterministic": "yes"}},
            "parity.toml [session]: deterministic must be true or false, got 'yes'",
            id="deterministic-string",
        ),
        pytest.param(
            {"session": {"deterministic": 1}},
            "parity.toml [session]: deterministic must be true or false, got 1",
            id="deterministic-int",
        ),
        pytest.param(
            {"session": {"allow_spinning": "no"}},
            "parity.toml [session]: allow_spinning must be true or false, got 'no'",
            id="allow-spinning-string",
        ),
        pytest.param(
            {"session": {"intra_op_threads": -1}},
            "parity.toml [session]: intra_op_threads must be >= 0, got -1",
            id="threads-negative",
        ),
        pytest.param(
            {"exclude": "*.tmp.onnx"},
            "parity.toml exclude: expected a list of strings, got '*.tmp.onnx'",
            id="exclude-string",
        ),
        pytest.param({"tolerance": 0.1}, "tolerance must be a table, got 0.1", id="not-a-table"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_file_and_the_key(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(raw, WHERE)

    assert str(error.value).startswith(WHERE)
    assert message in str(error.value)


def test_a_bad_session_providers_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="providers"):
        parse_config({"session": {"providers": "CPUExecutionProvider"}}, WHERE)


def test_a_full_config_is_parsed_into_typed_records() -> None:
    raw = {
        "seed": 7,
        "float_range": [-2, 2.5],
        "int_range": [1, 9],
        "dims": {"T": 97},
        "default_dim": 8,
        "sweep": {"T": [64, 80]},
        "tolerance": {"rel_l2": "0.2"},
        "tiers": {"int4": {"min_cosine": 0.95}},
        "graphs": {
            "encoder": {
                "reference": "fp32",
                "inputs": {
                    "features": {"range": [-3, 3]},
                    "lengths": {"tie": "features:-1"},
                    "mask": {"value": 1},
                },
                "tolerance": {"max_abs": 0.5},
                "outputs": {"logits": {"min_argmax_agreement": 0.9, "argmax_axis": -1}},
                "variants": {"int8": {"tolerance": {"rel_l2": 0.05}, "outputs": {}}},
                "skip_outputs": ["hidden"],
            }
        },
        "files": {"enc/odd.onnx": {"graph": "encoder", "variant": "int8", "tier": "int8"}},
        "tags": {"q4f16": "int4"},
        "exclude": ["*.tmp.onnx"],
        "session": {
            "providers": ["CPUExecutionProvider"],
            "intra_op_threads": 2,
            "inter_op_threads": 1,
            "graph_optimization_level": "basic",
            "deterministic": True,
        },
    }

    config = parse_config(raw, WHERE, (WHERE,))

    assert config == ParityConfig(
        sources=(WHERE,),
        seed=7,
        float_range=(-2, 2.5),
        int_range=(1, 9),
        dims={"T": 97},
        default_dim=8,
        sweep={"T": (64, 80)},
        tolerance={"rel_l2": 0.2},
        tiers={"int4": {"min_cosine": 0.95}},
        graphs={
            "encoder": GraphConfig(
                reference="fp32",
                inputs={
                    "features": InputRule(range=(-3, 3)),
                    "lengths": InputRule(tie=("features", -1)),
                    "mask": InputRule(value=1),
                },
                tolerance={"max_abs": 0.5},
                variants={"int8": VariantConfig(tolerance={"rel_l2": 0.05})},
                outputs={"logits": {"min_argmax_agreement": 0.9, "argmax_axis": -1}},
                skip_outputs=("hidden",),
            )
        },
        files={"enc/odd.onnx": {"graph": "encoder", "variant": "int8", "tier": "int8"}},
        tags={"q4f16": "int4"},
        exclude=("*.tmp.onnx",),
        session=SessionConfig(
            providers=("CPUExecutionProvider",),
            intra_op_threads=2,
            inter_op_threads=1,
            graph_optimization_level="basic",
            deterministic=True,
        ),
    )


def test_no_config_gives_the_defaults() -> None:
    assert parse_config({}, "<defaults>") == ParityConfig()


def test_no_files_loads_the_defaults_with_no_sources(tmp_path: Path) -> None:
    assert load_config(tmp_path / "pyproject.toml", tmp_path) == ParityConfig()
    assert load_config(None, None) == ParityConfig()


def test_a_pyproject_without_our_table_is_ignored(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool.ruff]\nline-length = 100\n")

    assert load_config(pyproject, None) == ParityConfig()


def test_the_folder_file_wins_over_pyproject_key_by_key(tmp_path: Path) -> None:
    pyproject = write(
        tmp_path / "pyproject.toml",
        """
        [tool.onnxparity]
        seed = 1
        default_dim = 8
        dims = {T = 50, F = 80}

        [tool.onnxparity.tolerance]
        max_abs = 0.1
        rel_l2 = 0.2

        [tool.onnxparity.graphs.encoder.variants.int8.tolerance]
        rel_l2 = 0.3
        min_cosine = 0.9
        """,
    )
    export_dir = tmp_path / "exports"
    export_dir.mkdir()
    folder_file = write(
        export_dir / "parity.toml",
        """
        seed = 2
        dims = {T = 97}

        [tolerance]
        rel_l2 = 0.05

        [graphs.encoder.variants.int8.tolerance]
        min_cosine = 0.95
        """,
    )

    config = load_config(pyproject, export_dir)

    assert config.seed == 2
    assert config.default_dim == 8
    assert config.dims == {"T": 97, "F": 80}
    assert config.tolerance == {"max_abs": 0.1, "rel_l2": 0.05}
    assert config.graph("encoder").variants["int8"].tolerance == {
        "rel_l2": 0.3,
        "min_cosine": 0.95,
    }
    assert config.sources == (f"{pyproject} [tool.onnxparity]", str(folder_file))


@pytest.mark.parametrize("which", ["pyproject", "folder"])
def test_invalid_toml_names_the_file(tmp_path: Path, which: str) -> None:
    path = write(tmp_path / ("pyproject.toml" if which == "pyproject" else "parity.toml"), "a =\n")

    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML (")) as error:
        load_config(tmp_path / "pyproject.toml", tmp_path)

    assert str(error.value).endswith("); fix the syntax")


def test_a_table_that_is_not_a_table_in_pyproject_is_an_error(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool]\nonnxparity = 3\n")

    with pytest.raises(ConfigError, match=r"\[tool.onnxparity\]: expected a table, got int"):
        load_config(pyproject, None)


def test_tolerance_layers_go_from_global_to_variant_output() -> None:
    config = parse_config(
        {
            "tolerance": {"max_abs": 1.0},
            "tiers": {"int8": {"max_abs": 2.0}},
            "graphs": {
                "encoder": {
                    "tolerance": {"max_abs": 3.0},
                    "outputs": {"logits": {"max_abs": 4.0}},
                    "variants": {
                        "q8": {
                            "tolerance": {"max_abs": 5.0},
                            "outputs": {"logits": {"max_abs": 6.0}},
                        }
                    },
                }
            },
        },
        WHERE,
    )

    layers = config.tolerance_layers("int8", "encoder", "q8", "logits")

    assert [layer.get("max_abs") for layer in layers] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert resolve("int8", layers).max_abs == 6.0


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        pytest.param(("int8", "encoder", "q8", "hidden"), [1.0, 2.0, 3.0, None, 5.0, None]),
        pytest.param(("int8", "encoder", "q4", "logits"), [1.0, 2.0, 3.0, 4.0, None, None]),
        pytest.param(("int4", "decoder", "q8", "logits"), [1.0, None, None, None, None, None]),
    ],
)
def test_tolerance_layers_hold_only_the_tables_that_match(
    coordinates: tuple[str, str, str, str], expected: list[float | None]
) -> None:
    config = parse_config(
        {
            "tolerance": {"max_abs": 1.0},
            "tiers": {"int8": {"max_abs": 2.0}},
            "graphs": {
                "encoder": {
                    "tolerance": {"max_abs": 3.0},
                    "outputs": {"logits": {"max_abs": 4.0}},
                    "variants": {
                        "q8": {
                            "tolerance": {"max_abs": 5.0},
                            "outputs": {"logits": {"max_abs": 6.0}},
                        }
                    },
                }
            },
        },
        WHERE,
    )

    layers = config.tolerance_layers(*coordinates)

    assert [layer.get("max_abs") for layer in layers] == expected


def test_feature_sections_are_kept_raw(tmp_path: Path) -> None:
    write(
        tmp_path / "parity.toml",
        """
        [health]
        max_nan_fraction = 0.0
        anything = ["goes", 1]

        [speed.encoder]
        budget_ms = 12
        """,
    )

    config = load_config(None, tmp_path)

    assert config.section("health") == {"max_nan_fraction": 0.0, "anything": ["goes", 1]}
    assert config.section("speed") == {"encoder": {"budget_ms": 12}}
    assert config.section("size") == {}


def test_every_feature_section_is_a_global_key() -> None:
    assert set(FEATURE_SECTIONS) <= set(GLOBAL_KEYS)


def test_a_feature_section_that_is_not_a_table_is_an_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("parity.toml: health must be a table, got 3")):
        parse_config({"health": 3}, WHERE)


def test_asking_for_an_unknown_section_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="'graphs' is not a feature section"):
        ParityConfig().section("graphs")


def test_an_unconfigured_graph_has_the_empty_graph_config() -> None:
    assert ParityConfig().graph("encoder") == GraphConfig()


def test_an_input_set_table_limits_one_input_set_of_a_variant_and_wins_over_the_variant() -> None:
    config = parse_config(
        {
            "graphs": {
                "model": {
                    "variants": {
                        "int8": {
                            "tolerance": {"rel_l2": 0.3},
                            "input_sets": {
                                "sentences": {"outputs": {"hidden": {"rel_l2": 0.2}}},
                                "padded": {"tolerance": {"min_cosine": 0.9}},
                            },
                        }
                    }
                }
            }
        },
        WHERE,
    )

    def limits(input_set: str | None) -> Any:
        return resolve(
            "int8", config.tolerance_layers("int8", "model", "int8", "hidden", input_set)
        )

    assert limits("sentences").rel_l2 == 0.2
    assert limits("padded").rel_l2 == 0.3 and limits("padded").min_cosine == 0.9
    assert limits("default").rel_l2 == 0.3 and limits(None).rel_l2 == 0.3


def test_an_unknown_key_in_an_input_set_table_lists_the_allowed_ones() -> None:
    raw = {"graphs": {"m": {"variants": {"int8": {"input_sets": {"s": {"rel_l2": 0.1}}}}}}}

    with pytest.raises(ConfigError, match=r"\[input_sets\.s\].*allowed keys: tolerance, outputs"):
        parse_config(raw, WHERE)
