"""Sizes of files and variant bundles, compression ratios, and size budgets."""

from __future__ import annotations

import shutil
from pathlib import Path

import modelkit
import pytest

from pytest_onnxparity.export.discovery import discover
from pytest_onnxparity.export.folder import ExportFolder, Graph, ModelFile
from pytest_onnxparity.export.sizes import bundle_bytes, size_report
from pytest_onnxparity.speed.budgets import Budget, BudgetError
from pytest_onnxparity.speed.sizes import (
    SIZE_KEYS,
    bundle_budgets,
    evaluate_bundle,
    evaluate_file,
    file_budgets,
    resolve_size_options,
    size_budget,
    size_lines,
)

ROOT = Path("/export")


def model(
    graph: str,
    variant: str,
    size: int,
    sidecars: dict[str, int] | None = None,
    tier: str | None = None,
) -> ModelFile:
    sidecars = sidecars or {}
    return ModelFile(
        path=ROOT / f"{graph}.{variant}.onnx",
        relpath=f"{graph}.{variant}.onnx",
        graph=graph,
        variant=variant,
        tier=tier or variant,
        size_bytes=size,
        external_data=tuple(ROOT / name for name in sidecars),
        external_data_sizes=tuple(sidecars.values()),
    )


def folder(*graphs: Graph) -> ExportFolder:
    return ExportFolder(root=ROOT, graphs=graphs)


# encoder and decoder int4 share one weights file, as exporters of merged decoders write them.
SHARED = folder(
    Graph(
        "decoder",
        "fp32",
        (
            model("decoder", "fp32", 1_000, {"decoder.fp32.data": 300_000_000}),
            model("decoder", "int4", 1_000, {"weights.int4.data": 100_000_000}),
        ),
    ),
    Graph(
        "encoder",
        "fp32",
        (
            model("encoder", "fp32", 1_000, {"encoder.fp32.data": 100_000_000}),
            model("encoder", "int4", 1_000, {"weights.int4.data": 100_000_000}),
            model("encoder", "int8", 60_000_000),
        ),
    ),
)


def budget(text: str) -> Budget:
    return size_budget(text, "--parity-size-budget")


def test_a_sidecar_shared_by_two_graphs_is_counted_once_in_their_bundle() -> None:
    report = size_report(SHARED)
    int4 = report.bundle("int4")
    assert [file.graph for file in int4.files] == ["decoder", "encoder"]
    assert int4.total_bytes == 2_000 + 100_000_000
    assert int4.reference_bytes == 2_000 + 400_000_000
    assert int4.ratio == pytest.approx(400_002_000 / 100_002_000)


def test_each_file_counts_its_own_sidecars_and_compares_with_its_graph_reference() -> None:
    files = {(f.graph, f.variant): f for f in size_report(SHARED).files}
    encoder_int4 = files[("encoder", "int4")]
    assert encoder_int4.total_bytes == 100_001_000
    assert encoder_int4.sidecars == {"weights.int4.data": 100_000_000}
    assert encoder_int4.reference_bytes == 100_001_000
    assert encoder_int4.ratio == pytest.approx(1.0)
    assert files[("encoder", "int8")].ratio == pytest.approx(100_001_000 / 60_000_000)
    assert files[("decoder", "fp32")].is_reference


def test_bundles_list_the_reference_first_then_variants_by_tag() -> None:
    report = size_report(SHARED)
    assert report.variants == ("fp32", "int4", "int8")
    assert report.bundle("fp32").is_reference and report.bundle("fp32").ratio == 1.0
    int8 = report.bundle("int8")
    assert [f.graph for f in int8.files] == ["encoder"]
    # Only the graphs the bundle has are in its reference side.
    assert int8.reference_bytes == 100_001_000
    with pytest.raises(KeyError, match="no bundle 'int2'; bundles: fp32, int4, int8"):
        report.bundle("int2")


def test_bundle_bytes_of_models_without_sidecars_is_their_sum() -> None:
    assert bundle_bytes([model("a", "fp32", 10), model("b", "fp32", 5)]) == 15


def test_the_size_tables_show_files_then_bundles_with_ratios() -> None:
    lines = size_lines(size_report(SHARED))
    assert lines[0].split() == ["graph", "variant", "file", "size", "ratio", "vs", "reference"]
    assert lines[2].split()[:6] == ["decoder", "fp32", "decoder.fp32.onnx", "+", "1", "data"]
    assert lines[2].split()[6:] == ["300.0", "MB", "reference"]
    assert "encoder.int8.onnx" in lines[6] and lines[6].endswith("1.67x smaller")
    bundles = lines[lines.index("") + 1 :]
    assert bundles[0].split() == ["bundle", "tier", "files", "size", "ratio", "vs", "reference"]
    assert bundles[2].split() == ["fp32", "fp32", "2", "400.0", "MB", "reference"]
    assert bundles[3].split() == ["int4", "int4", "2", "100.0", "MB", "4.00x", "smaller"]


def test_an_oversize_bundle_fails_its_size_gate_with_the_largest_file_and_next_step() -> None:
    int4 = size_report(SHARED).bundle("int4")
    result = evaluate_bundle(int4, [budget("size_mb<=50")])
    assert not result.passed and result.enforced and result.check == "size"
    assert result.message.splitlines() == [
        "bundle int4 (2 file(s)): size_mb 100 exceeds 50 (budget size_mb<=50 from "
        "--parity-size-budget)",
        "  largest file: decoder.int4.onnx 100.0 MB (with 1 sidecar(s))",
        "  next step: quantize further or drop unused initializers (onnx.external_data / "
        "onnxruntime's transformers optimizer), or, if this size is acceptable, relax the "
        "budget: --parity-size-budget int4:size_mb<=<limit> or [tool.onnxparity.size] budgets",
    ]
    details = result.to_json()["details"]
    assert details["total_bytes"] == 100_002_000
    assert details["budgets"][0]["value"] == pytest.approx(100.002)
    assert details["budgets"][0]["passed"] is False


def test_a_bundle_that_compresses_too_little_fails_its_ratio_gate() -> None:
    int4 = size_report(SHARED).bundle("int4")
    result = evaluate_bundle(int4, [budget("int4:ratio>=5")])
    assert result.message.splitlines()[0] == (
        "bundle int4 (2 file(s)): compression ratio 4 is below 5 (budget int4:ratio>=5 "
        "from --parity-size-budget): 100.0 MB against the reference's 400.0 MB"
    )
    assert evaluate_bundle(int4, [budget("int4:ratio>=3.5"), budget("size_mb<=450")]).passed


def test_a_relative_size_budget_scales_the_reference_size() -> None:
    file = next(f for f in size_report(SHARED).files if (f.graph, f.variant) == ("encoder", "int8"))
    result = evaluate_file(file, [budget("encoder/int8:size_mb<=0.5x")])
    assert result.message.splitlines()[0] == (
        "encoder[int8] (encoder.int8.onnx): size_mb 60 exceeds 50 = 0.5x the reference's 100 MB "
        "(budget encoder/int8:size_mb<=0.5x from --parity-size-budget)"
    )
    assert evaluate_file(file, [budget("encoder/int8:size_mb<=0.7x")]).passed


def test_bundles_take_unscoped_tier_and_tag_budgets_and_files_take_graph_budgets() -> None:
    report = size_report(SHARED)
    budgets = [
        budget("size_mb<=450"),
        budget("int4:ratio>=3.5"),
        budget("encoder:size_mb<=200"),
        budget("encoder/int4:ratio>=2"),
        budget("ratio>=1.2"),
    ]
    int4 = [b.text for b in bundle_budgets(budgets, report.bundle("int4"))]
    assert int4 == ["int4:ratio>=3.5", "size_mb<=450"]
    # The reference bundle gets no ratio gate: comparing it with itself says nothing.
    assert [b.text for b in bundle_budgets(budgets, report.bundle("fp32"))] == ["size_mb<=450"]
    files = {(f.graph, f.variant): f for f in report.files}
    on_file = [b.text for b in file_budgets(budgets, files[("encoder", "int4")])]
    assert on_file == ["encoder/int4:ratio>=2", "encoder:size_mb<=200"]
    assert [b.text for b in file_budgets(budgets, files[("encoder", "fp32")])] == [
        "encoder:size_mb<=200"
    ]
    assert file_budgets(budgets, files[("decoder", "int4")]) == []


def test_a_tier_scope_reaches_a_bundle_whose_tag_is_not_the_tier_name() -> None:
    q4 = folder(
        Graph(
            "model",
            "fp32",
            (model("model", "fp32", 4_000_000), model("model", "q4f16", 1_500_000, tier="int4")),
        )
    )
    bundle = size_report(q4).bundle("q4f16")
    assert bundle.tiers == ("int4",)
    result = evaluate_bundle(bundle, bundle_budgets([budget("int4:ratio>=3.5")], bundle))
    assert not result.passed and "compression ratio 2.67 is below 3.5" in result.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("size_mb>=1", "size_mb is an upper bound: write size_mb<=LIMIT"),
        ("ratio<=3", "ratio is a lower bound: write ratio>=LIMIT"),
        ("ratio>=3x", "ratio cannot be relative to the reference"),
        (
            "latency_ms<=4",
            "unknown metric 'latency_ms' in 'latency_ms<=4'; allowed: size_mb, ratio",
        ),
    ],
)
def test_invalid_size_budgets_are_rejected(text: str, expected: str) -> None:
    with pytest.raises(BudgetError, match=expected):
        budget(text)


def test_the_size_table_rejects_unknown_keys_naming_the_file_and_the_allowed_keys() -> None:
    with pytest.raises(BudgetError) as error:
        resolve_size_options({"max_mb": 3}, "parity.toml")
    assert str(error.value) == "parity.toml [size]: unknown key 'max_mb'; allowed keys: budgets"
    assert SIZE_KEYS == ("budgets",)


def test_size_budgets_come_from_the_file_then_ini_then_the_command_line() -> None:
    options = resolve_size_options(
        {"budgets": ["size_mb<=500"]},
        "pyproject.toml [tool.onnxparity]",
        ini_budgets=["size_mb<=450"],
        cli_budgets=[budget("size_mb<=400")],
    )
    assert [(b.text, b.source) for b in options.budgets] == [
        ("size_mb<=500", "pyproject.toml [tool.onnxparity] [size] budgets"),
        ("size_mb<=450", "ini parity_size_budgets"),
        ("size_mb<=400", "--parity-size-budget"),
    ]
    bundle = size_report(SHARED).bundle("int4")
    assert [b.text for b in bundle_budgets(options.budgets, bundle)] == ["size_mb<=400"]
    assert not resolve_size_options({}, "cfg").active


def test_sizes_of_a_real_folder_with_a_shared_sidecar(tmp_path: Path) -> None:
    source = tmp_path / "src.onnx"
    modelkit.export_model(modelkit.build_model("mlp"), source)
    root = tmp_path / "export"
    root.mkdir()
    shutil.copy(source, root / "encoder.onnx")
    shutil.copy(source, root / "decoder.onnx")
    modelkit.save_with_external_data(source, root / "encoder.int8.onnx", location="shared.data")
    # A second graph whose model names the same sidecar.
    shutil.copy(root / "encoder.int8.onnx", root / "decoder.int8.onnx")

    report = size_report(discover(root))
    int8 = report.bundle("int8")
    sidecar = (root / "shared.data").stat().st_size
    model_bytes = (root / "encoder.int8.onnx").stat().st_size
    assert int8.total_bytes == 2 * model_bytes + sidecar
    assert [f.sidecars for f in int8.files] == [{"shared.data": sidecar}] * 2
    assert int8.reference_bytes == 2 * source.stat().st_size
