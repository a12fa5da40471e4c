"""Unit tests for settings: marker > command line > config file > tier default, with ``is None``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.config.project import ParityConfig, SessionConfig, parse_config
from pytest_onnxparity.config.tolerances import TIER_DEFAULTS, ScopedTolerance, ToleranceError
from pytest_onnxparity.plugin.option_types import parse_scoped_tolerance
from pytest_onnxparity.run.settings import Settings, build_settings, marker_layer
from pytest_onnxparity.runtime.inputs import InputPlan
from pytest_onnxparity.runtime.sessions import SessionSettings

FP32_MAX_ABS = TIER_DEFAULTS["fp32"].max_abs
INT8_REL_L2 = TIER_DEFAULTS["int8"].rel_l2


def settings_from(config: ParityConfig | None = None, **cli: Any) -> Settings:
    """``build_settings`` as the glue calls it when only ``cli`` was given on the command line."""
    arguments: dict[str, Any] = {
        "onnx_dir": None,
        "config": config or ParityConfig(),
        "seed": None,
        "dims": [],
        "sweeps": [],
        "providers": [],
        "threads": None,
        "graph_opt": None,
        "deterministic": None,
        "tolerances": [],
        "json_path": None,
        "suggest_path": None,
        "suggest_margin": 1.5,
    }
    arguments.update(cli)
    return build_settings(**arguments)


# (config file, --parity-tolerance, @pytest.mark.parity, effective max_abs of an fp32 output)
PRECEDENCE = [
    (None, None, None, FP32_MAX_ABS),
    (0.1, None, None, 0.1),
    (None, 0.2, None, 0.2),
    (None, None, 0.3, 0.3),
    (0.1, 0.2, None, 0.2),
    (0.1, None, 0.3, 0.3),
    (None, 0.2, 0.3, 0.3),
    (0.1, 0.2, 0.3, 0.3),
    # Zero is a value, not "not given".
    (0.0, None, None, 0.0),
    (0.1, 0.0, None, 0.0),
    (0.1, 0.2, 0.0, 0.0),
    (0.0, 0.2, None, 0.2),
    (None, 0.0, 0.3, 0.3),
]


@pytest.mark.parametrize(("config_value", "cli_value", "marker_value", "expected"), PRECEDENCE)
def test_marker_beats_command_line_beats_config_beats_tier_default(
    config_value: float | None,
    cli_value: float | None,
    marker_value: float | None,
    expected: float,
) -> None:
    config = parse_config(
        {} if config_value is None else {"tolerance": {"max_abs": config_value}}, "parity.toml"
    )
    cli = [] if cli_value is None else [parse_scoped_tolerance(f"max_abs={cli_value}")]
    marker = None if marker_value is None else marker_layer({"max_abs": marker_value}, "marker")
    settings = settings_from(config, tolerances=cli)

    tolerance = settings.tolerance("fp32", "encoder", "fp32", "logits", marker)

    assert tolerance.max_abs == expected
    assert tolerance.rel_l2 == TIER_DEFAULTS["fp32"].rel_l2


def test_the_most_specific_config_table_beats_a_command_line_scope_that_does_not_match() -> None:
    config = parse_config(
        {"graphs": {"encoder": {"variants": {"q8": {"tolerance": {"rel_l2": 0.3}}}}}}, "p"
    )
    settings = settings_from(config, tolerances=[parse_scoped_tolerance("decoder:rel_l2=0.01")])

    assert settings.tolerance("int8", "encoder", "q8", "logits").rel_l2 == 0.3


def test_an_empty_marker_layer_changes_nothing() -> None:
    settings = settings_from(tolerances=[parse_scoped_tolerance("rel_l2=0.2")])

    assert settings.tolerance("int8", "g", "q8", "y", {}) == settings.tolerance(
        "int8", "g", "q8", "y"
    )


TARGETS = {
    "encoder int8 logits": ("int8", "encoder", "int8", "logits"),
    "encoder int8 hidden": ("int8", "encoder", "int8", "hidden"),
    "decoder int8 logits": ("int8", "decoder", "int8", "logits"),
    "encoder q8 logits": ("int8", "encoder", "q8", "logits"),
    "encoder q4f16 logits": ("int4", "encoder", "q4f16", "logits"),
}


@pytest.mark.parametrize(
    ("scope", "applies"),
    [
        pytest.param("", set(TARGETS), id="everything"),
        pytest.param(
            "int8:",
            {
                "encoder int8 logits",
                "encoder int8 hidden",
                "decoder int8 logits",
                "encoder q8 logits",
            },
            id="tier",
        ),
        pytest.param("q8:", {"encoder q8 logits"}, id="variant"),
        pytest.param(
            "encoder:",
            {
                "encoder int8 logits",
                "encoder int8 hidden",
                "encoder q8 logits",
                "encoder q4f16 logits",
            },
            id="graph",
        ),
        pytest.param(
            "encoder/int8:", {"encoder int8 logits", "encoder int8 hidden"}, id="graph/variant"
        ),
        pytest.param("encoder/int8/hidden:", {"encoder int8 hidden"}, id="graph/variant/output"),
        pytest.param("decoder/q8:", set(), id="no-match"),
    ],
)
def test_a_command_line_scope_applies_only_where_it_should(scope: str, applies: set[str]) -> None:
    settings = settings_from(tolerances=[parse_scoped_tolerance(f"{scope}max_abs=0.5")])

    limited = {
        name for name, target in TARGETS.items() if settings.tolerance(*target).max_abs == 0.5
    }

    assert limited == applies
    assert settings.tolerance(*TARGETS["encoder q8 logits"]).rel_l2 == INT8_REL_L2


def test_a_narrower_command_line_scope_beats_a_broader_one_given_after_it() -> None:
    settings = settings_from(
        tolerances=[
            parse_scoped_tolerance("encoder/int8:rel_l2=0.05"),
            parse_scoped_tolerance("rel_l2=0.2"),
        ]
    )

    assert settings.tolerance("int8", "encoder", "int8", "logits").rel_l2 == 0.05
    assert settings.tolerance("int8", "decoder", "int8", "logits").rel_l2 == 0.2


def test_marker_layer_validates_tolerance_keys_naming_the_marker() -> None:
    with pytest.raises(ToleranceError, match=r"^@pytest.mark.parity: rel_l2 must be a finite"):
        marker_layer({"rel_l2": -1}, "@pytest.mark.parity")


def test_marker_layer_keeps_only_tolerance_keys() -> None:
    assert marker_layer({"rel_l2": "0.1", "argmax_axis": 0, "inputs": {}}, "marker") == {
        "rel_l2": 0.1,
        "argmax_axis": 0,
    }


def test_nothing_given_anywhere_gives_the_default_plan_and_session() -> None:
    settings = settings_from()

    assert settings.plan == InputPlan()
    assert settings.session == SessionSettings()
    assert settings.cli_tolerances == ()


def test_config_file_inputs_fill_the_plan() -> None:
    config = parse_config(
        {
            "seed": 7,
            "float_range": [0.0, 2.0],
            "int_range": [1, 5],
            "dims": {"T": 50},
            "default_dim": 4,
            "sweep": {"T": [8, 16]},
        },
        "parity.toml",
    )

    plan = settings_from(config).plan

    assert plan == InputPlan(
        seed=7,
        float_range=(0.0, 2.0),
        int_range=(1, 5),
        dims={"T": 50},
        default_dim=4,
        sweep={"T": (8, 16)},
    )


def test_command_line_inputs_beat_the_config_file_name_by_name() -> None:
    config = parse_config(
        {"seed": 7, "dims": {"T": 50, "F": 80}, "sweep": {"T": [8], "B": [1, 2]}}, "parity.toml"
    )

    plan = settings_from(config, seed=0, dims=[("T", 97)], sweeps=[("T", (64, 80))]).plan

    assert plan.seed == 0
    assert plan.dims == {"T": 97, "F": 80}
    assert plan.sweep == {"T": (64, 80), "B": (1, 2)}


@pytest.mark.parametrize(
    ("config_value", "cli_value", "expected"),
    [(None, None, 0), (4, None, 4), (4, 0, 0), (None, 2, 2), (0, 3, 3)],
)
def test_command_line_threads_beat_config_threads(
    config_value: int | None, cli_value: int | None, expected: int
) -> None:
    config = ParityConfig(session=SessionConfig(intra_op_threads=config_value))

    assert settings_from(config, threads=cli_value).session.intra_op_threads == expected


@pytest.mark.parametrize(
    ("config_value", "cli_value", "expected"),
    [(None, None, "all"), ("basic", None, "basic"), ("basic", "disable", "disable")],
)
def test_command_line_graph_optimisation_beats_config(
    config_value: str | None, cli_value: str | None, expected: str
) -> None:
    config = ParityConfig(session=SessionConfig(graph_optimization_level=config_value))

    session = settings_from(config, graph_opt=cli_value).session

    assert session.graph_optimization_level == expected


@pytest.mark.parametrize(
    ("config_value", "cli_value", "expected"),
    [(None, None, False), (True, None, True), (False, True, True), (False, None, False)],
)
def test_command_line_deterministic_beats_config(
    config_value: bool | None, cli_value: bool | None, expected: bool
) -> None:
    config = ParityConfig(session=SessionConfig(deterministic=config_value))

    assert settings_from(config, deterministic=cli_value).session.deterministic is expected


def test_command_line_providers_replace_the_config_list() -> None:
    config = ParityConfig(session=SessionConfig(providers=("CUDAExecutionProvider",)))

    assert settings_from(config).session.providers == ("CUDAExecutionProvider",)
    assert settings_from(config, providers=["A", "B"]).session.providers == ("A", "B")
    assert settings_from().session.providers == ("CPUExecutionProvider",)


def test_inter_op_threads_come_from_the_config_file() -> None:
    config = ParityConfig(session=SessionConfig(inter_op_threads=3))

    assert settings_from(config).session.inter_op_threads == 3


@pytest.mark.parametrize(("config_value", "expected"), [(None, "0"), (False, "0"), (True, "1")])
def test_thread_spinning_is_off_unless_the_config_file_allows_it(
    config_value: bool | None, expected: str
) -> None:
    config = parse_config({"session": {"allow_spinning": config_value}}, "parity.toml")
    session = settings_from(config).session

    options = session.session_options()

    assert session.to_json()["allow_spinning"] is (expected == "1")
    for pool in ("intra_op", "inter_op"):
        assert options.get_session_config_entry(f"session.{pool}.allow_spinning") == expected


def test_settings_to_json_is_plain_json(tmp_path: Path) -> None:
    config = parse_config({"dims": {"T": 5}, "sweep": {"T": [8, 16]}}, "parity.toml")
    settings = settings_from(
        config,
        onnx_dir=tmp_path,
        tolerances=[ScopedTolerance("int8", "rel_l2", 0.05)],
        threads=2,
    )

    record = settings.to_json()

    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert record["onnx_dir"] == str(tmp_path)
    assert record["inputs"]["sweep"] == {"T": [8, 16]}
    assert record["session"]["intra_op_threads"] == 2
    assert record["cli_tolerances"] == [{"scope": "int8", "key": "rel_l2", "value": 0.05}]
