"""Discovery: which graph, variant and tier each file of an export folder is, and its sidecars."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from pytest_onnxparity.config import tolerances
from pytest_onnxparity.export.discovery import discover
from pytest_onnxparity.export.folder import (
    DiscoveryError,
    DiscoveryOverrides,
    ExportFolder,
    NotDiscoveredError,
    human_size,
)
from pytest_onnxparity.export.naming import TIERS_BY_PRECISION, split_name, tier_of_tag
from tests.paths import DATA

CASES_TABLE = DATA / "discovery-cases.tsv"


def _read_cases() -> dict[str, list[dict[str, str]]]:
    with CASES_TABLE.open(newline="") as table:
        rows = csv.DictReader((line for line in table if not line.startswith("#")), delimiter="\t")
        cases: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in rows:
            cases[row["case"]].append(row)
    return dict(cases)


CASES = _read_cases()


def _identity_model(*weights: TensorProto) -> onnx.ModelProto:
    source = weights[0].name if weights else "x"
    graph = helper.make_graph(
        [helper.make_node("Identity", [source], ["y"])],
        "identity",
        [] if weights else [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=list(weights),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(name: str, count: int = 4) -> TensorProto:
    return numpy_helper.from_array(np.arange(count, dtype=np.float32), name)


IDENTITY_BYTES = _identity_model().SerializeToString()


def _write_models(root: Path, relpaths: Iterable[str]) -> Path:
    for relpath in relpaths:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(IDENTITY_BYTES)
    return root


def _save_with_external_data(
    root: Path, relpath: str, location: str, *, weights: int = 1, one_file: bool = True
) -> Path:
    path = root / relpath
    (path.parent / location).parent.mkdir(parents=True, exist_ok=True)
    model = _identity_model(*(_weight(f"w{index}") for index in range(weights)))
    onnx.save_model(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=one_file,
        location=location,
        size_threshold=0,
    )
    return path


def _save_pointing_at(root: Path, relpath: str, *locations: str) -> Path:
    """A model whose tensors name ``locations`` as external data, without writing the data."""
    weights = [_weight(f"w{index}") for index in range(len(locations))]
    for weight, location in zip(weights, locations, strict=True):
        set_external_data(weight, location=location)
        weight.ClearField("raw_data")
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_identity_model(*weights).SerializeToString())
    return path


def _placements(folder: ExportFolder) -> set[tuple[str, str, str, str]]:
    return {
        (model.relpath, model.graph, model.variant, model.tier)
        for graph in folder.graphs
        for model in graph.files
    }


# --- the hub layouts of the cases table -----------------------------------------------------


def test_the_cases_table_holds_every_hub_layout() -> None:
    assert len(CASES) == 11
    assert sum(len(rows) for rows in CASES.values()) == 46


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_file_of_a_hub_layout_gets_the_graph_variant_and_tier_of_the_table(
    case: str, tmp_path: Path
) -> None:
    rows = CASES[case]

    folder = discover(_write_models(tmp_path, [row["path"] for row in rows]))

    assert _placements(folder) == {
        (row["path"], row["graph"], row["variant"], row["tier"]) for row in rows
    }
    assert all(model.problem is None for graph in folder.graphs for model in graph.files)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_untagged_file_of_each_graph_is_its_reference(case: str, tmp_path: Path) -> None:
    rows = CASES[case]

    folder = discover(_write_models(tmp_path, [row["path"] for row in rows]))

    assert {graph.name: graph.reference_file.relpath for graph in folder.graphs} == {
        row["graph"]: row["path"] for row in rows if row["variant"] == "fp32"
    }


def test_variants_follow_the_reference_sorted_by_tag(tmp_path: Path) -> None:
    rows = CASES["transformers-js"]

    folder = discover(_write_models(tmp_path, [row["path"] for row in reversed(rows)]))

    (graph,) = folder.graphs
    assert graph.reference == "fp32"
    assert graph.variants == ("bnb4", "fp16", "int8", "q4", "q4f16", "uint8")
    assert [model.variant for model in graph.files] == ["fp32", *graph.variants]


# --- tags the parser does not know -----------------------------------------------------------


def test_an_unknown_dot_tag_beside_its_graph_inherits_the_reference_tier_and_is_listed(
    tmp_path: Path,
) -> None:
    folder = discover(_write_models(tmp_path, ["encoder-model.onnx", "encoder-model.preq.onnx"]))

    preq = folder.graph("encoder-model").file("preq")
    assert (preq.tier, preq.known_tag) == ("fp32", False)
    assert folder.unknown_tags == ("encoder-model.preq.onnx",)


def test_an_unknown_dot_tag_inherits_the_tier_of_a_chosen_int8_reference(tmp_path: Path) -> None:
    folder = discover(
        _write_models(tmp_path, ["encoder.onnx", "encoder.preq.onnx", "encoder_int8.onnx"]),
        DiscoveryOverrides(references={"encoder": "int8"}),
    )

    assert folder.graph("encoder").file("preq").tier == "int8"


def test_an_unknown_dot_tag_without_a_sibling_graph_stays_part_of_the_name(
    tmp_path: Path,
) -> None:
    folder = discover(_write_models(tmp_path, ["encoder-model.preq.onnx"]))

    assert _placements(folder) == {
        ("encoder-model.preq.onnx", "encoder-model.preq", "fp32", "fp32")
    }
    assert folder.unknown_tags == ()


def test_an_unknown_dot_tag_needs_its_graph_in_the_same_folder(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["a/encoder.onnx", "b/encoder.preq.onnx"]))

    assert [graph.name for graph in folder.graphs] == ["encoder", "encoder.preq"]


def test_unknown_dot_tags_do_not_chain_onto_each_other(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["a.onnx", "a.b.onnx", "a.b.c.onnx"]))

    assert {graph.name: graph.variants for graph in folder.graphs} == {"a": ("b",), "a.b.c": ()}


def test_a_version_number_after_a_dot_is_never_a_tag(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["kokoro-v1.onnx", "kokoro-v1.0.onnx"]))

    assert [graph.name for graph in folder.graphs] == ["kokoro-v1", "kokoro-v1.0"]


# --- folders ----------------------------------------------------------------------------------


def test_one_graph_name_in_two_container_folders_makes_two_qualified_graphs(
    tmp_path: Path,
) -> None:
    folder = discover(
        _write_models(tmp_path, ["a/model.onnx", "a/model_int8.onnx", "b/model.onnx", "x.onnx"])
    )

    assert [graph.name for graph in folder.graphs] == ["a/model", "b/model", "x"]
    assert folder.graph("a/model").variants == ("int8",)


def test_variant_folders_inside_a_container_join_the_graph_beside_them(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["onnx/model.onnx", "onnx/cuda-int4/model.onnx"]))

    assert _placements(folder) == {
        ("onnx/model.onnx", "model", "fp32", "fp32"),
        ("onnx/cuda-int4/model.onnx", "model", "cuda-int4", "int4"),
    }


def test_hidden_files_hidden_folders_and_other_files_are_ignored(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx", "._model_int8.onnx", ".cache/model_fp16.onnx"])
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / "model.onnx.json").write_text("{}")

    assert _placements(discover(tmp_path)) == {("model.onnx", "model", "fp32", "fp32")}


# --- reference choice -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "reference"),
    [
        (["m_int4.onnx", "m_int8.onnx", "m_fp16.onnx", "m_bf16.onnx"], "bf16"),
        (["m_int4.onnx", "m_int8.onnx", "m_fp16.onnx"], "fp16"),
        (["m_q4.onnx", "m_uint8.onnx"], "uint8"),
        (["m_float32.onnx", "m_fp16.onnx"], "float32"),
        (["m.onnx", "m_float32.onnx"], "fp32"),
        (["m_q4.onnx"], "q4"),
    ],
)
def test_a_graph_without_an_fp32_file_takes_its_most_precise_variant_as_reference(
    names: list[str], reference: str, tmp_path: Path
) -> None:
    (graph,) = discover(_write_models(tmp_path, names)).graphs

    assert graph.reference == reference
    assert graph.reference_file.variant == reference
    assert reference not in graph.variants


def test_a_graph_with_a_single_file_has_no_variants(tmp_path: Path) -> None:
    (graph,) = discover(_write_models(tmp_path, ["model_int8.onnx"])).graphs

    assert (graph.name, graph.reference, graph.variants) == ("model", "int8", ())


def test_a_reference_override_puts_the_chosen_variant_first(tmp_path: Path) -> None:
    folder = discover(
        _write_models(tmp_path, ["model.onnx", "model_fp16.onnx", "model_int8.onnx"]),
        DiscoveryOverrides(references={"model": "fp16"}),
    )

    (graph,) = folder.graphs
    assert (graph.reference, graph.variants) == ("fp16", ("fp32", "int8"))


def test_a_reference_override_for_a_missing_variant_lists_the_variants(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx", "model_int8.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path, DiscoveryOverrides(references={"model": "fp16"}))

    assert str(error.value) == (
        "[graphs.\"model\"] reference is 'fp16', not a variant of model; use one of fp32, int8"
    )


def test_a_reference_override_for_a_missing_graph_lists_the_graphs(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx", "other.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path, DiscoveryOverrides(references={"modle": "fp32"}))

    assert str(error.value) == (
        f"[graphs.\"modle\"] reference: there is no graph 'modle' under {tmp_path.resolve()}; "
        "graphs are: model, other"
    )


# --- overrides --------------------------------------------------------------------------------


def test_a_file_override_sets_any_of_graph_variant_and_tier(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx", "export_v2.onnx", "model_int8.onnx", "odd.onnx"])

    folder = discover(
        tmp_path,
        DiscoveryOverrides(
            files={
                "export_v2.onnx": {"graph": "model", "variant": "rtn", "tier": "int4"},
                "model_int8.onnx": {"tier": "int4"},
                "odd.onnx": {"graph": "model", "variant": "gptq"},
            }
        ),
    )

    assert _placements(folder) == {
        ("model.onnx", "model", "fp32", "fp32"),
        ("export_v2.onnx", "model", "rtn", "int4"),
        ("model_int8.onnx", "model", "int8", "int4"),
        ("odd.onnx", "model", "gptq", "fp32"),
    }
    assert folder.unknown_tags == ("odd.onnx",)


def test_a_tiers_override_makes_an_unknown_tag_known_and_parsed(tmp_path: Path) -> None:
    _write_models(tmp_path, ["encoder.onnx", "encoder.preq.onnx", "encoder_awq.onnx"])

    folder = discover(tmp_path, DiscoveryOverrides(tiers={"preq": "fp32", "AWQ": "int4"}))

    encoder = folder.graph("encoder")
    assert [(m.variant, m.tier, m.known_tag) for m in encoder.files] == [
        ("fp32", "fp32", True),
        ("awq", "int4", True),
        ("preq", "fp32", True),
    ]
    assert folder.unknown_tags == ()


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        (DiscoveryOverrides(tiers={"awq": "int3"}), "[tags] 'awq' is 'int3'"),
        (DiscoveryOverrides(files={"model.onnx": {"tier": "fp64"}}), '[files."model.onnx"] tier'),
    ],
)
def test_an_unknown_tier_in_the_overrides_is_an_error_listing_the_tiers(
    overrides: DiscoveryOverrides, where: str, tmp_path: Path
) -> None:
    _write_models(tmp_path, ["model.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path, overrides)

    assert where in str(error.value)
    assert str(error.value).endswith("not a tier; use one of fp32, bf16, fp16, int8, int4")


def test_a_file_override_with_an_unknown_key_names_the_allowed_keys(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx"])

    with pytest.raises(DiscoveryError, match=r"has key 'precision'; use any of graph, variant"):
        discover(tmp_path, DiscoveryOverrides(files={"model.onnx": {"precision": "int8"}}))


def test_a_file_override_for_a_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path, DiscoveryOverrides(files={"onnx/model.onnx": {"variant": "x"}}))

    message = str(error.value)
    assert message.startswith('[files."onnx/model.onnx"] names no discovered .onnx file under')
    assert message.endswith("fix the path or remove the entry")


def test_two_files_mapped_to_one_graph_and_variant_fail_naming_both(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx", "model_int8.onnx", "export.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(
            tmp_path,
            DiscoveryOverrides(files={"export.onnx": {"graph": "model", "variant": "int8"}}),
        )

    assert str(error.value) == (
        f"{tmp_path.resolve()}: export.onnx and model_int8.onnx are both variant 'int8' of graph "
        'model; exclude one, or give it a variant of its own with [files."model_int8.onnx"] '
        'variant = "..."'
    )


def test_two_names_with_the_same_tag_fail_naming_both(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model_int8.onnx", "model.int8.onnx"])

    with pytest.raises(DiscoveryError, match=r"model.int8.onnx and model_int8.onnx are both"):
        discover(tmp_path)


def test_exclude_globs_match_the_relative_posix_path(tmp_path: Path) -> None:
    rows = CASES["transformers-js"]
    _write_models(tmp_path, [row["path"] for row in rows])

    folder = discover(tmp_path, DiscoveryOverrides(exclude=("onnx/*q4*", "*_bnb4.onnx")))

    assert folder.graph("model").variants == ("fp16", "int8", "uint8")


def test_excluding_every_file_is_an_error(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx"])

    with pytest.raises(DiscoveryError, match=r"every \.onnx file is excluded by '\*'; narrow"):
        discover(tmp_path, DiscoveryOverrides(exclude=("*",)))


# --- external data ----------------------------------------------------------------------------


def test_a_sidecar_shared_by_two_graphs_is_listed_on_both(tmp_path: Path) -> None:
    _save_with_external_data(tmp_path, "encoder.onnx", "weights.bin")
    _save_with_external_data(tmp_path, "decoder.onnx", "weights.bin")

    folder = discover(tmp_path)

    shared = tmp_path.resolve() / "weights.bin"
    encoder, decoder = folder.graph("encoder"), folder.graph("decoder")
    assert encoder.reference_file.external_data == (shared,)
    assert decoder.reference_file.external_data == (shared,)
    assert encoder.reference_file.total_bytes == (
        encoder.reference_file.size_bytes + shared.stat().st_size
    )


@pytest.mark.parametrize("location", ["model.onnx_data", "model.onnx.data", "weights/model.bin"])
def test_a_sidecar_is_found_from_the_location_the_model_names(
    location: str, tmp_path: Path
) -> None:
    _save_with_external_data(tmp_path, "onnx/model.onnx", location)

    model = discover(tmp_path).graph("model").reference_file

    assert model.external_data == (tmp_path.resolve() / "onnx" / location,)
    assert model.problem is None


def test_a_graph_with_one_file_per_tensor_lists_every_sidecar_sorted(tmp_path: Path) -> None:
    _save_with_external_data(tmp_path, "model.onnx", "unused", weights=3, one_file=False)

    model = discover(tmp_path).graph("model").reference_file

    assert [path.name for path in model.external_data] == ["w0", "w1", "w2"]
    assert model.total_bytes == model.size_bytes + 3 * 16


def test_sidecars_named_by_node_attributes_and_subgraphs_are_found(tmp_path: Path) -> None:
    constant, branch_constant = _weight("c"), _weight("b")
    for tensor, location in ((constant, "constant.bin"), (branch_constant, "branch.bin")):
        set_external_data(tensor, location=location)
        tensor.ClearField("raw_data")
        (tmp_path / location).write_bytes(b"\0" * 16)
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["z"], value=branch_constant)],
        "branch",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value=constant),
            helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (tmp_path / "model.onnx").write_bytes(model.SerializeToString())

    found = discover(tmp_path).graph("model").reference_file.external_data

    assert [path.name for path in found] == ["branch.bin", "constant.bin"]


def test_an_onnx_file_named_as_external_data_is_not_listed_as_a_model(tmp_path: Path) -> None:
    _save_with_external_data(tmp_path, "model.onnx", "model.weights.onnx")

    folder = discover(tmp_path)

    assert _placements(folder) == {("model.onnx", "model", "fp32", "fp32")}


def test_a_missing_sidecar_is_a_problem_of_that_file_only(tmp_path: Path) -> None:
    _save_pointing_at(tmp_path, "onnx/model.onnx", "model.onnx_data")
    _write_models(tmp_path, ["onnx/model_int8.onnx"])

    graph = discover(tmp_path).graph("model")

    assert graph.file("fp32").problem == (
        "onnx/model.onnx: external data 'model.onnx_data' not found next to the model; copy the "
        f"sidecar into {tmp_path.resolve() / 'onnx'} or re-save with "
        "onnx.save_model(..., save_as_external_data=True)"
    )
    assert graph.file("fp32").external_data == ()
    assert graph.file("int8").problem is None


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../../w.data", "points outside the export folder"),
        ("/tmp/w.data", "points outside the export folder (absolute path)"),
        ("../w.data", "climbs out of the model's folder, which onnx.load refuses"),
    ],
)
def test_a_sidecar_location_leaving_the_model_folder_is_a_problem(
    location: str, why: str, tmp_path: Path
) -> None:
    (tmp_path / "w.data").write_bytes(b"\0" * 16)
    _save_pointing_at(tmp_path, "onnx/model.onnx", location)

    model = discover(tmp_path).graph("model").reference_file

    assert model.problem == (
        f"onnx/model.onnx: external data {location!r} {why}; move the data next to the model and "
        "re-save with onnx.save_model(..., save_as_external_data=True, location=<a file name>)"
    )
    assert model.external_data == ()


# --- unreadable files and unusable folders ---------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"version https://git-lfs.github.com/spec/v1\n", "corrupt protobuf"),
        (IDENTITY_BYTES[: len(IDENTITY_BYTES) // 2], "corrupt protobuf"),
        (IDENTITY_BYTES[:2], "no graph, truncated?"),
        (b"", "empty file"),
    ],
    ids=["lfs-pointer", "cut-mid-field", "cut-between-fields", "empty"],
)
def test_an_unreadable_model_is_a_problem_of_that_file_only(
    content: bytes, reason: str, tmp_path: Path
) -> None:
    _write_models(tmp_path, ["model.onnx"])
    (tmp_path / "model_int8.onnx").write_bytes(content)

    graph = discover(tmp_path).graph("model")

    assert graph.file("int8").problem == (
        f"model_int8.onnx: not a readable ONNX model ({reason}); "
        "re-export it or remove it from the folder"
    )
    assert graph.file("int8").size_bytes == len(content)
    assert graph.file("fp32").problem is None


def test_a_model_whose_graph_inputs_are_corrupt_is_a_problem_not_a_collection_traceback(
    tmp_path: Path,
) -> None:
    # The graph input's dim_value field (the first dimension, b"\n\x02\x08\x04") gets wire
    # type 4, which ONNX never uses: the model scan skips shapes, the signature read fails.
    at = IDENTITY_BYTES.index(b"\n\x02\x08\x04") + 2
    corrupt = IDENTITY_BYTES[:at] + b"\x0c" + IDENTITY_BYTES[at + 1 :]
    _write_models(tmp_path, ["model.onnx"])
    (tmp_path / "model_int8.onnx").write_bytes(corrupt)

    graph = discover(tmp_path).graph("model")

    assert graph.file("int8").problem == (
        "model_int8.onnx: not a readable ONNX model (corrupt signature: wire type 4 is not used "
        "by ONNX); re-export it or remove it from the folder"
    )


def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path / "nowhere")

    assert str(error.value) == (
        f"{tmp_path / 'nowhere'} does not exist; pass the folder your export wrote (--onnx-dir)"
    )


def test_a_file_given_as_the_folder_points_at_its_folder(tmp_path: Path) -> None:
    model = _write_models(tmp_path, ["model.onnx"]) / "model.onnx"

    with pytest.raises(DiscoveryError) as error:
        discover(model)

    assert str(error.value) == (
        f"{model} is a file, not a folder; pass the folder that holds it: {tmp_path}"
    )


def test_a_folder_without_onnx_files_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "model.onnx_data").write_bytes(b"\0")

    with pytest.raises(DiscoveryError) as error:
        discover(str(tmp_path))

    assert str(error.value) == (
        f"{tmp_path.resolve()} holds no .onnx file; pass the folder your export wrote (--onnx-dir)"
    )


# --- what the plugin reads back ----------------------------------------------------------------


def test_table_lines_show_each_graph_with_sidecars_counted_once_per_graph(tmp_path: Path) -> None:
    _save_with_external_data(tmp_path, "encoder.onnx", "encoder.data")
    (tmp_path / "encoder.data").write_bytes(b"\0" * 1_500_000)
    # The int8 variant names the same sidecar; the graph's size counts it once.
    _save_pointing_at(tmp_path, "encoder_int8.onnx", "encoder.data")
    _write_models(tmp_path, ["encoder-x.onnx", "encoder-x.preq.onnx"])

    folder = discover(tmp_path)

    encoder = folder.graph("encoder")
    assert encoder.total_bytes == 1_500_000 + sum(m.size_bytes for m in encoder.files)
    model_bytes = len(IDENTITY_BYTES)
    assert folder.table_lines() == [
        "graph      reference  variants  files       size",
        "encoder    fp32       int8      2 + 1 data  1.5 MB",
        f"encoder-x  fp32       preq      2           {2 * model_bytes} B",
        "unknown tag 'preq' in encoder-x.preq.onnx: taken as a variant of encoder-x with its "
        'reference\'s tier fp32 (set [tags] "preq" = "int8" or another tier if it differs)',
    ]


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (12_345, "12.3 kB"),
        (4_500_000, "4.5 MB"),
        (999_999, "1.0 MB"),
        (2 * 10**12, "2.0 TB"),
    ],
)
def test_human_size_uses_decimal_units(size: int, text: str) -> None:
    assert human_size(size) == text


def test_the_export_folder_serialises_to_plain_json(tmp_path: Path) -> None:
    _save_with_external_data(tmp_path, "model.onnx", "model.onnx_data")
    _write_models(tmp_path, ["model_int8.onnx"])

    as_json = discover(tmp_path).to_json()

    assert json.loads(json.dumps(as_json)) == as_json
    (graph,) = as_json["graphs"]
    assert (graph["name"], graph["reference"], graph["variants"]) == ("model", "fp32", ["int8"])
    reference = graph["files"][0]
    assert reference["external_data"] == [str(tmp_path.resolve() / "model.onnx_data")]
    assert reference["total_bytes"] == reference["size_bytes"] + 16
    assert set(reference) == {
        "path", "relpath", "graph", "variant", "tier", "size_bytes", "total_bytes",
        "external_data", "known_tag", "problem",
    }  # fmt: skip


def test_asking_for_a_graph_or_variant_that_is_not_there_lists_what_is(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["model.onnx", "model_int8.onnx", "vad.onnx"]))

    with pytest.raises(NotDiscoveredError) as missing_variant:
        folder.graph("model").file("fp16")
    with pytest.raises(KeyError) as missing_graph:
        folder.graph("encoder")

    assert str(missing_variant.value) == "graph 'model' has no variant 'fp16'; it has: fp32, int8"
    assert str(missing_graph.value).endswith("has no graph 'encoder'; it has: model, vad")


def test_importing_discovery_loads_neither_onnx_nor_pytest() -> None:
    code = (
        "import sys, pytest_onnxparity.export.discovery; "
        "print(sorted({'onnx', 'pytest', 'numpy'} & set(sys.modules)))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert imported.strip() == "[]"


def test_discovery_knows_the_same_tiers_as_the_tolerances() -> None:
    assert sorted(TIERS_BY_PRECISION) == sorted(tolerances.TIERS)


# --- the name parser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "tier"),
    [
        ("fp32", "fp32"),
        ("none", "fp32"),
        ("FP16", "fp16"),
        ("half", "fp16"),
        ("fp16w", "fp16"),
        ("bf16", "bf16"),
        ("q8", "int8"),
        ("uint8", "int8"),
        ("quantized", "int8"),
        ("q4f16", "int4"),
        ("bnb4", "int4"),
        ("int4_full", "int4"),
        ("fp16_int8", "int8"),
        ("cpu-int4-rtn-block-32", "int4"),
        ("onnx", None),
        ("preq", None),
        ("16k", None),
        ("op15", None),
    ],
)
def test_a_tag_takes_the_tier_of_its_least_precise_word(tag: str, tier: str | None) -> None:
    assert tier_of_tag(tag) == tier


@pytest.mark.parametrize(
    ("stem", "graph", "tag"),
    [
        ("encoder", "encoder", None),
        ("encoder.int4", "encoder", "int4"),
        ("encoder_int8", "encoder", "int8"),
        ("decoder_joint-model.int8", "decoder_joint-model", "int8"),
        ("model_int4_full", "model", "int4_full"),
        ("kokoro-v1.0.fp16", "kokoro-v1.0", "fp16"),
        ("kokoro-v1.0", "kokoro-v1.0", None),
        ("kokoro-v1.0_int8", "kokoro-v1.0", "int8"),
        ("whisper-tiny-int8", "whisper-tiny", "int8"),
        ("quantized", "quantized", None),
        ("int8_model", "int8_model", None),
        ("decoder_with_past_model", "decoder_with_past_model", None),
        ("encoder-model.preq", "encoder-model.preq", None),
    ],
)
def test_the_tag_starts_at_the_first_precision_word_after_the_first_word(
    stem: str, graph: str, tag: str | None
) -> None:
    assert split_name(stem) == (graph, tag)


# --- files whose place is decided, not read off the name ------------------------------------


def _other_signature_bytes() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["tokens"], ["y"])],
        "other",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_an_unknown_underscore_tag_with_the_same_signature_is_a_variant(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["model.onnx", "model_qdq8.onnx"]))

    assert _placements(folder) == {
        ("model.onnx", "model", "fp32", "fp32"),
        ("model_qdq8.onnx", "model", "qdq8", "fp32"),
    }
    assert folder.unknown_tags == ("model_qdq8.onnx",)


def test_an_underscore_word_with_another_signature_stays_a_graph(tmp_path: Path) -> None:
    _write_models(tmp_path, ["decoder_model.onnx"])
    (tmp_path / "decoder_model_merged.onnx").write_bytes(_other_signature_bytes())

    folder = discover(tmp_path)

    assert [graph.name for graph in folder.graphs] == ["decoder_model", "decoder_model_merged"]


def test_underscore_tags_do_not_chain_onto_each_other(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["a.onnx", "a_b.onnx", "a_b_c.onnx"]))

    assert {(m.relpath, m.graph, m.variant) for g in folder.graphs for m in g.files} == {
        ("a.onnx", "a", "fp32"),
        ("a_b.onnx", "a", "b"),
        ("a_b_c.onnx", "a_b_c", "fp32"),
    }


def test_a_model_named_as_external_data_stays_a_model_and_its_namer_is_broken(
    tmp_path: Path,
) -> None:
    _write_models(tmp_path, ["model.onnx"])
    _save_pointing_at(tmp_path, "model_int8.onnx", "model.onnx")

    folder = discover(tmp_path)

    (graph,) = folder.graphs
    assert graph.reference_file.relpath == "model.onnx"
    variant = graph.file("int8")
    assert variant.problem is not None
    assert variant.problem.startswith(
        "model_int8.onnx: names model.onnx, an ONNX model of this folder, as its external data"
    )
    assert variant.external_data == ()


def test_graphs_without_a_variant_are_listed_in_the_header(tmp_path: Path) -> None:
    folder = discover(_write_models(tmp_path, ["model.onnx", "model_int8.onnx", "vad.onnx"]))

    assert folder.table_lines()[-1].startswith("no variant, only checked to load: vad (")


@pytest.mark.parametrize("graph", ["../../x", "/tmp/x", "a/../b", "c:\\x", "a//b"])
def test_a_file_override_cannot_name_a_graph_that_leaves_the_folder(
    tmp_path: Path, graph: str
) -> None:
    _write_models(tmp_path, ["model.onnx"])

    with pytest.raises(DiscoveryError, match="a graph name is a plain name"):
        discover(tmp_path, DiscoveryOverrides(files={"model.onnx": {"graph": graph}}))


def test_an_exclude_pattern_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    _write_models(tmp_path, ["model.onnx"])

    with pytest.raises(DiscoveryError, match=r"exclude pattern '\*_q4.onnx' matches no \.onnx"):
        discover(tmp_path, DiscoveryOverrides(exclude=("*_q4.onnx",)))
