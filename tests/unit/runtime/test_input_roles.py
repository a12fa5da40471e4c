"""Unit tests for graph-aware synthesis: roles read from names and the graph, the padded set,
seeded draws for a graph without a batch axis, and token ids inside their embedding table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.config.project import InputRule
from pytest_onnxparity.onnxfile.index_tables import index_table_sizes
from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.runtime.input_roles import (
    INDICES,
    LENGTHS,
    MASK,
    PAST,
    PLAIN,
    POSITIONS,
    SAMPLE_RATE,
    STATE,
    TOKEN_TYPES,
    WAVEFORM,
    has_dynamic_batch,
    input_roles,
)
from pytest_onnxparity.runtime.inputs import InputPlan, patterns, set_name, synthesize

BERT = (
    TensorSpec("input_ids", "int64", ("batch", "sequence")),
    TensorSpec("attention_mask", "int64", ("batch", "sequence")),
    TensorSpec("token_type_ids", "int64", ("batch", "sequence")),
)
ROWS = {"input_ids": 30522, "token_type_ids": 2}
DECODER = (
    TensorSpec("input_ids", "int64", ("batch", "tokens")),
    TensorSpec("encoder_hidden_states", "float32", ("batch", "frames", 384)),
    TensorSpec("past_key_values.0.key", "float32", ("batch", 6, "past", 64)),
    TensorSpec("past_key_values.0.value", "float32", ("batch", 6, "past", 64)),
    TensorSpec("attention_mask", "int64", ("batch", "past + tokens")),
)

VAD = (  # silero-vad's signature
    TensorSpec("input", "float32", ("batch", "sequence")),
    TensorSpec("state", "float32", (2, "batch", 128)),
    TensorSpec("sr", "int64", ()),
)


def test_bert_inputs_are_ids_in_the_vocabulary_a_mask_of_ones_and_token_types_of_zero() -> None:
    inputs = synthesize("model", BERT, InputPlan(), {}, table_rows=ROWS)

    ids = inputs.arrays["input_ids"]
    assert ids.shape == (4, 16)
    assert ids.min() >= 0 and ids.max() < 30522 and ids.max() > 1000
    np.testing.assert_array_equal(inputs.arrays["attention_mask"], np.ones((4, 16)))
    np.testing.assert_array_equal(inputs.arrays["token_type_ids"], np.zeros((4, 16)))
    assert inputs.fills == {
        "input_ids": "ids in [0, 30522) (rows of the table they index)",
        "attention_mask": "attention mask: ones",
        "token_type_ids": "token types: zeros",
    }


def test_the_padded_set_ends_each_row_with_padding_of_its_own_length() -> None:
    inputs = synthesize("model", BERT, InputPlan(), {}, table_rows=ROWS, pattern="padded")

    mask = inputs.arrays["attention_mask"]
    assert inputs.name == "padded"
    assert mask.sum(axis=1).tolist() == [13, 10, 7, 4]
    assert (inputs.arrays["input_ids"][mask == 0] == 0).all()
    assert (inputs.arrays["input_ids"][mask == 1] > 0).mean() > 0.9
    assert inputs.fills["attention_mask"].startswith("attention mask: rows of 13, 10, 7, 4 real")


def test_a_graph_with_an_attention_mask_gets_a_padded_set_and_a_rule_can_take_it_away() -> None:
    plan = InputPlan()

    assert patterns(BERT, plan, {}) == ["", "padded"]
    assert patterns(BERT, plan, {"attention_mask": InputRule(value=1)}) == ["", "padded"]
    assert patterns(BERT, plan, {"attention_mask": InputRule(range=(0, 2))}) == [""]
    assert set_name({"sequence": 32}, "padded") == "sequence=32-padded"


def test_a_graph_without_a_dynamic_batch_axis_gets_several_seeded_draws() -> None:
    fixed = (TensorSpec("x", "float32", (1, 16)),)

    found = patterns(fixed, InputPlan(), {})
    sets = [synthesize("g", fixed, InputPlan(), {}, pattern=pattern) for pattern in found]

    assert found == ["", "draw2", "draw3"]
    assert [s.name for s in sets] == ["default", "draw2", "draw3"]
    assert not np.array_equal(sets[0].arrays["x"], sets[1].arrays["x"])
    assert not has_dynamic_batch(fixed)


def test_a_dynamic_batch_holds_several_rows_and_the_plan_can_shrink_it() -> None:
    spec = (TensorSpec("x", "float32", ("batch", 3)),)

    assert synthesize("g", spec, InputPlan(), {}).arrays["x"].shape == (4, 3)
    assert synthesize("g", spec, InputPlan(dims={"batch": 1}), {}).arrays["x"].shape == (1, 3)
    assert patterns(spec, InputPlan(), {}) == [""]


def test_roles_come_from_names_dtypes_and_the_tables_inputs_index() -> None:
    specs = (
        *BERT,
        TensorSpec("position_ids", "int64", ("batch", "sequence")),
        TensorSpec("past_key_values.0.key", "float32", ("batch", 2, "past", 8)),
        TensorSpec("features", "float32", ("batch", "T", 8)),
        TensorSpec("feature_lengths", "int64", ("batch",)),
        TensorSpec("codes", "int64", ("batch",)),
    )

    roles = {name: role.kind for name, role in input_roles(specs, ROWS).items()}

    assert roles == {
        "input_ids": INDICES,
        "attention_mask": MASK,
        "token_type_ids": TOKEN_TYPES,
        "position_ids": POSITIONS,
        "past_key_values.0.key": PAST,
        "features": PLAIN,
        "feature_lengths": LENGTHS,
        "codes": PLAIN,
    }


def test_positions_count_along_the_sequence() -> None:
    specs = (TensorSpec("position_ids", "int64", ("batch", "sequence")),)

    positions = synthesize("g", specs, InputPlan(default_dim=5), {}).arrays["position_ids"]

    np.testing.assert_array_equal(positions, np.tile(np.arange(5), (4, 1)))


def test_past_keys_get_a_past_length_and_a_sum_dim_adds_its_terms() -> None:
    inputs = synthesize("decoder", DECODER, InputPlan(), {}, table_rows={"input_ids": 51864})

    assert inputs.arrays["past_key_values.0.key"].shape == (4, 6, 8, 64)
    assert inputs.arrays["attention_mask"].shape == (4, 8 + 16)
    assert inputs.arrays["input_ids"].max() < 51864
    assert inputs.dims["past"] == 8


def test_a_rule_beats_the_role() -> None:
    rules = {"input_ids": InputRule(range=(1000, 1002)), "attention_mask": InputRule(value=0)}

    inputs = synthesize("model", BERT, InputPlan(), rules, table_rows=ROWS)

    assert set(np.unique(inputs.arrays["input_ids"]).tolist()) <= {1000, 1001}
    assert not inputs.arrays["attention_mask"].any()


def _embedding_model(path: Path) -> Path:
    """ids -> Gather(words[100, 4]) + Gather(Cast(types) into types[2, 4]) -> hidden."""
    words = numpy_helper.from_array(np.zeros((100, 4), np.float32), "words")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    types_q = numpy_helper.from_array(np.zeros((2, 4), np.int8), "types_q")
    nodes = [
        helper.make_node("Gather", ["words", "ids"], ["w"]),
        helper.make_node("DequantizeLinear", ["types_q", "scale"], ["types"]),
        helper.make_node("Cast", ["token_type_ids"], ["t64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["types", "t64"], ["t"], axis=0),
        helper.make_node("Add", ["w", "t"], ["hidden"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT32, ["batch", 3]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, None)],
        [words, scale, types_q],
    )
    onnx.save(helper.make_model(graph), path)
    return path


def test_index_tables_are_read_through_casts_and_dequantization(tmp_path: Path) -> None:
    model = _embedding_model(tmp_path / "m.onnx")

    assert index_table_sizes(model, ("ids", "token_type_ids", "absent")) == {
        "ids": 100,
        "token_type_ids": 2,
    }


@pytest.mark.parametrize("pattern", ["", "padded"])
def test_every_set_is_reproducible(pattern: str) -> None:
    first = synthesize("model", BERT, InputPlan(seed=5), {}, table_rows=ROWS, pattern=pattern)
    second = synthesize("model", BERT, InputPlan(seed=5), {}, table_rows=ROWS, pattern=pattern)

    for name in first.arrays:
        np.testing.assert_array_equal(first.arrays[name], second.arrays[name])


def test_a_vad_gets_a_16_khz_rate_a_quiet_512_sample_chunk_and_a_zero_state() -> None:
    roles = input_roles(VAD)
    inputs = synthesize("silero_vad", VAD, InputPlan(), {})

    assert [roles[name].kind for name in ("input", "state", "sr")] == [WAVEFORM, STATE, SAMPLE_RATE]
    assert inputs.arrays["input"].shape == (4, 512)
    assert 0.005 < inputs.arrays["input"].std() < 0.02
    np.testing.assert_array_equal(inputs.arrays["state"], np.zeros((2, 4, 128)))
    assert inputs.arrays["sr"].shape == () and int(inputs.arrays["sr"]) == 16000
    assert inputs.fills["sr"] == "sample rate: 16000 Hz"


def test_a_float_input_without_a_sample_rate_beside_it_is_not_audio() -> None:
    specs = (TensorSpec("input", "float32", ("batch", "sequence")),)

    assert input_roles(specs)["input"].kind == PLAIN
    assert synthesize("m", specs, InputPlan(), {}).arrays["input"].shape == (4, 16)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("h0", STATE), ("lstm_state", STATE), ("encoder_hidden_state", PLAIN), ("states", PLAIN)],
)
def test_recurrent_states_are_recognised_by_name_and_hidden_states_are_not(
    name: str, kind: str
) -> None:
    assert input_roles((TensorSpec(name, "float32", (1, 64)),))[name].kind == kind


def test_a_configured_sample_rate_and_length_win_over_the_roles() -> None:
    plan = InputPlan(dims={"sequence": 256})
    inputs = synthesize("vad", VAD, plan, {"sr": InputRule(value=8000)})

    assert inputs.arrays["input"].shape == (4, 256)
    assert int(inputs.arrays["sr"]) == 8000
