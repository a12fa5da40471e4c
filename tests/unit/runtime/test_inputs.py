"""Unit tests for inputs: reproducible arrays shaped and filled from a graph's input signature."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from onnx import TensorProto, helper

from pytest_onnxparity.config.project import InputRule
from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.runtime.inputs import (
    InputError,
    InputPlan,
    set_name,
    sweep_points,
    symbolic_dims,
    synthesize,
)

FEATURES = TensorSpec("features", "float32", ("batch", "T", 80))
LENGTHS = TensorSpec("lengths", "int64", ("batch",))
SPECS = (FEATURES, LENGTHS)


def assert_same_arrays(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> None:
    assert list(left) == list(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)


def test_the_same_seed_reproduces_the_same_arrays() -> None:
    first = synthesize("encoder", SPECS, InputPlan(seed=3), {})
    second = synthesize("encoder", SPECS, InputPlan(seed=3), {})

    assert first.seed == second.seed
    assert_same_arrays(dict(first.arrays), dict(second.arrays))


def test_another_seed_gives_other_arrays() -> None:
    first = synthesize("encoder", SPECS, InputPlan(seed=3), {})
    second = synthesize("encoder", SPECS, InputPlan(seed=4), {})

    assert first.seed != second.seed
    assert not np.array_equal(first.arrays["features"], second.arrays["features"])


def test_each_graph_and_input_set_draws_its_own_arrays() -> None:
    plan = InputPlan(seed=3)
    encoder = synthesize("encoder", SPECS, plan, {})
    decoder = synthesize("decoder", SPECS, plan, {})
    swept = synthesize("encoder", SPECS, plan, {}, {"T": 16})

    assert len({encoder.seed, decoder.seed, swept.seed}) == 3
    assert not np.array_equal(encoder.arrays["features"], decoder.arrays["features"])


def test_the_reference_and_a_variant_get_the_same_arrays() -> None:
    """Inputs are keyed by graph and input set, not by file: every variant sees the same data."""
    plan = InputPlan(seed=11)
    reference_specs = (FEATURES, LENGTHS)
    variant_specs = (
        TensorSpec("features", "float32", ("batch", "T", 80)),
        TensorSpec("lengths", "int64", ("batch",)),
    )

    for_reference = synthesize("encoder", reference_specs, plan, {}, {"T": 7})
    for_variant = synthesize("encoder", variant_specs, plan, {}, {"T": 7})

    assert_same_arrays(dict(for_reference.arrays), dict(for_variant.arrays))


def test_named_dims_come_from_the_plan() -> None:
    inputs = synthesize("encoder", SPECS, InputPlan(dims={"T": 97, "batch": 2}), {})

    assert inputs.arrays["features"].shape == (2, 97, 80)
    assert inputs.arrays["lengths"].shape == (2,)
    assert inputs.dims == {"batch": 2, "T": 97}


def test_a_sweep_point_overrides_the_plan_dims() -> None:
    inputs = synthesize("encoder", SPECS, InputPlan(dims={"T": 97}), {}, {"T": 64})

    assert inputs.arrays["features"].shape == (4, 64, 80)
    assert inputs.name == "T=64"


def test_default_dims_are_the_batch_on_axis_zero_and_default_dim_elsewhere() -> None:
    specs = (
        TensorSpec("a", "float32", ("batch", "T", None, 3)),
        TensorSpec("b", "float32", (None, None)),
    )

    inputs = synthesize("g", specs, InputPlan(default_dim=5), {})

    assert inputs.arrays["a"].shape == (4, 5, 5, 3)
    assert inputs.arrays["b"].shape == (4, 5)
    assert inputs.dims == {"batch": 4, "T": 5}


@pytest.mark.parametrize("order", ["time-major-first", "time-major-last"])
def test_a_named_dim_has_one_size_in_every_input_that_uses_it(order: str) -> None:
    time_major = TensorSpec("frames", "float32", ("T", 4))
    batched = TensorSpec("mask", "bool", (1, "T"))
    specs = (time_major, batched) if order == "time-major-first" else (batched, time_major)

    inputs = synthesize("g", specs, InputPlan(default_dim=6), {})

    assert inputs.arrays["frames"].shape == (6, 4)
    assert inputs.arrays["mask"].shape == (1, 6)
    assert inputs.dims == {"T": 6}


def test_sweep_points_are_the_cartesian_product_of_the_dims_this_graph_has() -> None:
    plan = InputPlan(sweep={"T": (16, 32), "absent": (1, 2, 3), "batch": (1, 4)})

    points = sweep_points(SPECS, plan)

    assert points == [
        {"T": 16, "batch": 1},
        {"T": 16, "batch": 4},
        {"T": 32, "batch": 1},
        {"T": 32, "batch": 4},
    ]
    assert [set_name(point) for point in points] == [
        "T=16-batch=1",
        "T=16-batch=4",
        "T=32-batch=1",
        "T=32-batch=4",
    ]


def test_a_graph_without_swept_dims_has_one_default_input_set() -> None:
    points = sweep_points(SPECS, InputPlan(sweep={"absent": (1, 2)}))

    assert points == [{}]
    assert set_name(points[0]) == "default"
    assert synthesize("encoder", SPECS, InputPlan(), {}, points[0]).name == "default"


def test_symbolic_dims_are_listed_once_in_first_seen_order() -> None:
    specs = (TensorSpec("a", "float32", ("T", "B", 2)), TensorSpec("b", "float32", ("B", "F")))

    assert symbolic_dims((*specs, TensorSpec("c", "float32", None))) == ["T", "B", "F"]


@pytest.mark.parametrize("tie", [("features", 1), ("features", -2)])
def test_a_tied_input_is_filled_with_the_size_of_the_tied_axis(tie: tuple[str, int]) -> None:
    rules = {"lengths": InputRule(tie=tie)}

    inputs = synthesize("encoder", SPECS, InputPlan(dims={"T": 37, "batch": 3}), rules)

    assert inputs.arrays["lengths"].dtype == np.int64
    np.testing.assert_array_equal(inputs.arrays["lengths"], [37, 37, 37])


def test_a_constant_value_fills_the_whole_input() -> None:
    specs = (TensorSpec("scale", "float16", (2, 3)),)

    inputs = synthesize("g", specs, InputPlan(), {"scale": InputRule(value=0.5)})

    assert inputs.arrays["scale"].dtype == np.float16
    np.testing.assert_array_equal(inputs.arrays["scale"], np.full((2, 3), 0.5))


def test_int_inputs_draw_from_the_rule_range_with_the_high_end_excluded() -> None:
    specs = (TensorSpec("ids", "int32", (4000,)),)

    ids = synthesize("g", specs, InputPlan(), {"ids": InputRule(range=(3, 6))}).arrays["ids"]

    assert ids.dtype == np.int32
    assert set(np.unique(ids).tolist()) == {3, 4, 5}


def test_int_inputs_default_to_the_plan_int_range() -> None:
    specs = (TensorSpec("ids", "int64", (4000,)),)

    ids = synthesize("g", specs, InputPlan(int_range=(7, 9)), {}).arrays["ids"]

    assert set(np.unique(ids).tolist()) == {7, 8}


def test_an_empty_int_range_still_yields_its_low_end() -> None:
    specs = (TensorSpec("ids", "int64", (10,)),)

    ids = synthesize("g", specs, InputPlan(), {"ids": InputRule(range=(5, 5))}).arrays["ids"]

    np.testing.assert_array_equal(ids, np.full(10, 5))


def test_bool_inputs_hold_both_values() -> None:
    specs = (TensorSpec("flags", "bool", (1000,)),)

    flags = synthesize("g", specs, InputPlan(), {}).arrays["flags"]

    assert flags.dtype == np.bool_
    assert set(np.unique(flags).tolist()) == {False, True}


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("float16", np.float16), ("float32", np.float32), ("bfloat16", np.float32)],
)
def test_float_inputs_are_uniform_in_the_float_range(dtype: str, expected: type) -> None:
    specs = (TensorSpec("x", dtype, (5000,)),)

    x = synthesize("g", specs, InputPlan(float_range=(-2.0, 3.0)), {}).arrays["x"]

    assert x.dtype == expected
    assert -2.0 <= x.min() < -1.9
    assert 2.9 < x.max() <= 3.0


def test_a_rule_range_overrides_the_float_range() -> None:
    specs = (TensorSpec("x", "float32", (100,)),)

    x = synthesize("g", specs, InputPlan(), {"x": InputRule(range=(10.0, 11.0))}).arrays["x"]

    assert x.min() >= 10.0
    assert x.max() <= 11.0


def test_a_rule_for_an_unknown_input_is_an_error_listing_the_inputs() -> None:
    expected = (
        "graph 'encoder': config has rules for unknown input(s) ['feats']; "
        "inputs are ['features', 'lengths']"
    )

    with pytest.raises(InputError, match=re.escape(expected)):
        synthesize("encoder", SPECS, InputPlan(), {"feats": InputRule(value=1)})


def test_a_tie_to_an_unknown_input_is_an_error() -> None:
    expected = (
        "graph 'encoder': input 'lengths' is tied to unknown input 'feats'; "
        "inputs are ['features', 'lengths']"
    )

    with pytest.raises(InputError, match=re.escape(expected)):
        synthesize("encoder", SPECS, InputPlan(), {"lengths": InputRule(tie=("feats", 1))})


@pytest.mark.parametrize("axis", [3, -4])
def test_a_tie_to_a_missing_axis_is_an_error(axis: int) -> None:
    expected = (
        f"graph 'encoder': input 'lengths' is tied to axis {axis} of 'features', "
        "which has only 3 axes"
    )

    with pytest.raises(InputError, match=re.escape(expected)):
        synthesize("encoder", SPECS, InputPlan(), {"lengths": InputRule(tie=("features", axis))})


def test_an_unshaped_input_is_an_error_with_the_fix() -> None:
    specs = (TensorSpec("x", "float32", None),)

    with pytest.raises(InputError, match=r"input 'x' has no declared shape; .*supply real inputs"):
        synthesize("g", specs, InputPlan(), {})


@pytest.mark.parametrize("dtype", ["str", "object"])
def test_a_string_input_cannot_be_synthesized(dtype: str) -> None:
    specs = (TensorSpec("text", dtype, (2,)),)

    with pytest.raises(
        InputError,
        match=re.escape(
            f"graph 'g': cannot synthesize input 'text' of type {dtype}; "
            "supply real inputs for this graph"
        ),
    ):
        synthesize("g", specs, InputPlan(), {})


def test_an_input_set_describes_itself_in_plain_json() -> None:
    inputs = synthesize("encoder", SPECS, InputPlan(seed=1), {}, {"T": 9})

    record = inputs.to_json()

    assert record == {
        "name": "T=9",
        "source": "synthesized",
        "synthesized": True,
        "seed": inputs.seed,
        "dims": {"batch": 4, "T": 9},
        "ties": {"lengths": "features:1"},
        "fills": {"features": "uniform in [-1, 1)", "lengths": "full length of features:1"},
        "shapes": {"features": [4, 9, 80], "lengths": [4]},
        "dtypes": {"features": "float32", "lengths": "int64"},
    }
    assert type(record["seed"]) is int
    json.dumps(record, allow_nan=False)


def test_a_length_input_defaults_to_the_full_signal_length() -> None:
    inputs = synthesize("encoder", SPECS, InputPlan(seed=3), {}, {"T": 37})

    assert inputs.arrays["lengths"].tolist() == [37, 37, 37, 37]
    assert inputs.ties == {"lengths": "features:1"}


def test_a_configured_range_beats_the_default_length_tie() -> None:
    rules = {"lengths": InputRule(range=(0, 5))}

    inputs = synthesize("encoder", SPECS, InputPlan(seed=3), rules, {"T": 37})

    assert 0 <= int(inputs.arrays["lengths"][0]) < 5
    assert inputs.ties == {}


def test_specs_read_from_an_onnx_value_info_feed_synthesis() -> None:
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", "T", 80])
    unknown = helper.make_tensor_value_info("lengths", TensorProto.INT64, [None])
    unshaped = helper.make_tensor_value_info("extra", TensorProto.FLOAT, None)

    specs = tuple(TensorSpec.from_value_info(v) for v in (features, unknown, unshaped))

    assert specs == (
        TensorSpec("features", "float32", ("batch", "T", 80)),
        TensorSpec("lengths", "int64", (None,)),
        TensorSpec("extra", "float32", None),
    )
    inputs = synthesize("encoder", specs[:2], InputPlan(dims={"T": 12}), {})
    assert inputs.arrays["features"].shape == (4, 12, 80)
    assert inputs.arrays["lengths"].shape == (4,)
