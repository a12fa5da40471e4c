"""Discovery: which graph, variant and tier each file of an export folder is."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

from pytest_onnxparity.discovery import (
    Discovery,
    DiscoveryError,
    discover,
    split_variant_tag,
    tier_of_tag,
)

CASES_TABLE = Path(__file__).with_name("discovery_cases.tsv")


def _read_cases() -> dict[str, list[dict[str, str]]]:
    with CASES_TABLE.open(newline="") as table:
        data_lines = (line for line in table if not line.startswith("#"))
        rows = list(csv.DictReader(data_lines, delimiter="\t"))
    cases: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        cases[row["case"]].append(row)
    return dict(cases)


CASES = _read_cases()


def _make_export_folder(root: Path, relative_paths: list[str]) -> Path:
    for relative_path in relative_paths:
        path = root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


def _rows(discovery: Discovery) -> set[tuple[str, str, str, str]]:
    return {
        (export.relative_path, export.graph, export.variant, export.tier)
        for graph in discovery.graphs
        for export in ((graph.reference,) if graph.reference else ()) + graph.variants
    }


def test_the_cases_table_covers_every_hub_layout() -> None:
    assert len(CASES) == 11
    assert sum(len(rows) for rows in CASES.values()) == 46


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_hub_layout_is_discovered_as_the_table_says(case: str, tmp_path: Path) -> None:
    rows = CASES[case]
    discovery = discover(_make_export_folder(tmp_path, [row["path"] for row in rows]))

    expected = {(row["path"], row["graph"], row["variant"], row["tier"]) for row in rows}
    assert _rows(discovery) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_untagged_fp32_file_of_each_graph_is_its_reference(case: str, tmp_path: Path) -> None:
    rows = CASES[case]
    discovery = discover(_make_export_folder(tmp_path, [row["path"] for row in rows]))

    expected = {row["graph"]: row["path"] for row in rows if row["variant"] == "fp32"}
    assert {
        graph.name: graph.reference.relative_path for graph in discovery.graphs if graph.reference
    } == expected
    assert all(graph.reference is not None for graph in discovery.graphs)


def test_unknown_dot_tag_beside_its_graph_is_a_variant_named_in_the_header(
    tmp_path: Path,
) -> None:
    discovery = discover(
        _make_export_folder(tmp_path, ["encoder-model.onnx", "encoder-model.preq.onnx"])
    )

    (graph,) = discovery.graphs
    (inferred,) = discovery.inferred_variants
    assert graph.variants == (inferred,)
    assert (inferred.variant, inferred.tier, inferred.tag_origin) == ("preq", "fp32", "inferred")
    assert (
        "onnx-dir: unknown tag 'preq' in encoder-model.preq.onnx taken as a variant of "
        "encoder-model (tier fp32)"
    ) in discovery.header_lines()


def test_unknown_dot_tag_without_a_sibling_graph_stays_part_of_the_graph_name(
    tmp_path: Path,
) -> None:
    discovery = discover(_make_export_folder(tmp_path, ["encoder-model.preq.onnx"]))

    (graph,) = discovery.graphs
    assert graph.name == "encoder-model.preq"
    assert graph.variants == ()
    assert discovery.inferred_variants == ()


def test_unknown_dot_tag_must_name_a_graph_in_the_same_folder(tmp_path: Path) -> None:
    discovery = discover(_make_export_folder(tmp_path, ["a/encoder.onnx", "b/encoder.preq.onnx"]))

    assert [graph.id for graph in discovery.graphs] == ["a/encoder", "b/encoder.preq"]


def test_a_version_number_after_a_dot_is_not_a_tag(tmp_path: Path) -> None:
    discovery = discover(_make_export_folder(tmp_path, ["kokoro-v1.onnx", "kokoro-v1.0.onnx"]))

    assert sorted(graph.name for graph in discovery.graphs) == ["kokoro-v1", "kokoro-v1.0"]


def test_unknown_dot_tags_do_not_chain_onto_each_other(tmp_path: Path) -> None:
    discovery = discover(_make_export_folder(tmp_path, ["a.onnx", "a.b.onnx", "a.b.c.onnx"]))

    assert {graph.name: [v.variant for v in graph.variants] for graph in discovery.graphs} == {
        "a": ["b"],
        "a.b.c": [],
    }


def test_variant_folders_gather_the_graphs_beside_them(tmp_path: Path) -> None:
    discovery = discover(
        _make_export_folder(tmp_path, ["onnx/model.onnx", "onnx/int8/model.onnx", "onnx/x.onnx"])
    )

    assert [graph.id for graph in discovery.graphs] == ["onnx/model", "onnx/x"]
    (int8,) = discovery.graphs[0].variants
    assert (int8.relative_path, int8.variant, int8.tier, int8.tag_origin) == (
        "onnx/int8/model.onnx",
        "int8",
        "int8",
        "folder",
    )


def test_runtime_build_folders_without_a_reference_make_a_graph_with_no_reference(
    tmp_path: Path,
) -> None:
    discovery = discover(
        _make_export_folder(tmp_path, ["cuda-fp16/model.onnx", "cpu-int4-rtn-block-32/model.onnx"])
    )

    (graph,) = discovery.graphs
    assert graph.reference is None
    assert [(v.variant, v.tier) for v in graph.variants] == [
        ("cuda-fp16", "fp16"),
        ("cpu-int4-rtn-block-32", "int4"),
    ]
    assert "onnx-dir: graph model has no fp32 reference file" in discovery.header_lines()


def test_the_same_graph_name_in_two_folders_makes_two_graphs(tmp_path: Path) -> None:
    discovery = discover(_make_export_folder(tmp_path, ["a/model.onnx", "b/model.onnx"]))

    assert [graph.id for graph in discovery.graphs] == ["a/model", "b/model"]


def test_variants_are_listed_most_precise_tier_first(tmp_path: Path) -> None:
    rows = CASES["transformers-js"]
    discovery = discover(_make_export_folder(tmp_path, [row["path"] for row in reversed(rows)]))

    (graph,) = discovery.graphs
    assert [v.variant for v in graph.variants] == ["fp16", "int8", "uint8", "bnb4", "q4", "q4f16"]


def test_hidden_files_hidden_folders_and_external_data_are_ignored(tmp_path: Path) -> None:
    discovery = discover(
        _make_export_folder(
            tmp_path,
            [
                "model.onnx",
                "model.onnx_data",
                "model.onnx.data",
                "._model_int8.onnx",
                ".cache/model_fp16.onnx",
            ],
        )
    )

    assert _rows(discovery) == {("model.onnx", "model", "fp32", "fp32")}


def test_an_upper_case_suffix_is_still_an_onnx_file(tmp_path: Path) -> None:
    discovery = discover(_make_export_folder(tmp_path, ["Model.ONNX", "Model_INT8.ONNX"]))

    assert _rows(discovery) == {
        ("Model.ONNX", "Model", "fp32", "fp32"),
        ("Model_INT8.ONNX", "Model", "INT8", "int8"),
    }


def test_two_files_claiming_one_variant_fail_naming_both(tmp_path: Path) -> None:
    _make_export_folder(tmp_path, ["model_int8.onnx", "model.int8.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path)

    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "model_int8.onnx") in message
    assert str(tmp_path / "model.int8.onnx") in message
    assert "both variant 'int8' of graph model; remove one" in message


def test_an_fp32_folder_beside_the_untagged_file_is_a_clash(tmp_path: Path) -> None:
    _make_export_folder(tmp_path, ["encoder.onnx", "fp32/encoder.onnx"])

    with pytest.raises(DiscoveryError, match=r"both variant 'fp32' of graph encoder"):
        discover(tmp_path)


def test_two_fp32_exports_of_one_graph_leave_no_reference(tmp_path: Path) -> None:
    _make_export_folder(tmp_path, ["model.onnx", "model_float32.onnx"])

    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path)

    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "model_float32.onnx") in message
    assert "are all fp32 exports of graph model, so none is the reference" in message
    assert "model.opt.onnx" in message


def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"nowhere does not exist; pass the folder"):
        discover(tmp_path / "nowhere")


def test_a_file_given_as_the_folder_points_at_its_folder(tmp_path: Path) -> None:
    model = _make_export_folder(tmp_path, ["model.onnx"]) / "model.onnx"

    with pytest.raises(DiscoveryError) as error:
        discover(model)

    assert str(error.value) == (
        f"{model} is a file, not a folder; pass the folder that holds it: {tmp_path}"
    )


def test_a_folder_without_onnx_files_is_an_error(tmp_path: Path) -> None:
    _make_export_folder(tmp_path, ["model.onnx_data", "README.md"])

    with pytest.raises(DiscoveryError, match=r"holds no \.onnx file"):
        discover(tmp_path)


def test_discovery_serialises_to_plain_json(tmp_path: Path) -> None:
    rows = CASES["parakeet"]
    discovery = discover(_make_export_folder(tmp_path, [row["path"] for row in rows]))

    as_json = discovery.to_json()
    assert json.loads(json.dumps(as_json)) == as_json
    encoder = next(graph for graph in as_json["graphs"] if graph["id"] == "encoder-model")
    assert encoder["reference"] == {
        "path": "encoder-model.onnx",
        "graph": "encoder-model",
        "variant": "fp32",
        "tier": "fp32",
        "tag_origin": "none",
    }
    assert [v["variant"] for v in encoder["variants"]] == ["preq", "int4"]


@pytest.mark.parametrize(
    ("tag", "tier"),
    [
        ("fp32", "fp32"),
        ("FP16", "fp16"),
        ("half", "fp16"),
        ("fp16w", "fp16"),
        ("bf16", "bf16"),
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
def test_tier_of_tag_takes_the_least_precise_word(tag: str, tier: str | None) -> None:
    assert tier_of_tag(tag) == tier


@pytest.mark.parametrize(
    ("stem", "graph", "tag"),
    [
        ("encoder", "encoder", None),
        ("encoder.int4", "encoder", "int4"),
        ("encoder_int8", "encoder", "int8"),
        ("decoder_joint-model.int8", "decoder_joint-model", "int8"),
        ("model_int4_full", "model", "int4_full"),
        ("encoder_model_q4", "encoder_model", "q4"),
        ("kokoro-v1.0.fp16", "kokoro-v1.0", "fp16"),
        ("kokoro-v1.0", "kokoro-v1.0", None),
        ("whisper-tiny-int8", "whisper-tiny", "int8"),
        ("encoder.int8_dynamic", "encoder", "int8_dynamic"),
        ("quantized", "quantized", None),
        ("int8_model", "int8_model", None),
        ("encoder-model.preq", "encoder-model.preq", None),
    ],
)
def test_split_variant_tag_finds_the_first_precision_word_after_the_first(
    stem: str, graph: str, tag: str | None
) -> None:
    assert split_variant_tag(stem) == (graph, tag)
