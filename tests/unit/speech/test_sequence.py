"""Unit tests for the pure core of the sequence gates: transcripts, comparisons, gates, config."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.speech.audio.clips import Clip
from pytest_onnxparity.speech.audio.source import ClipSource
from pytest_onnxparity.speech.sequence.clip_compare import (
    ClipComparison,
    argmax_mismatches,
    compare_clip,
    first_divergence,
    token_levenshtein,
)
from pytest_onnxparity.speech.sequence.config import parse_sequence_options
from pytest_onnxparity.speech.sequence.gates import SequenceGates
from pytest_onnxparity.speech.sequence.pipeline import AdapterError, PipelineOutput, run_adapter
from pytest_onnxparity.speech.sequence.report import per_clip_table, summary_lines
from pytest_onnxparity.speech.sequence.verdict import evaluate_clip, evaluate_sequence
from pytest_onnxparity.speech.transcripts import (
    ErrorCounts,
    TextNormalization,
    char_errors,
    corpus_rate,
    word_errors,
)

NORM = TextNormalization()


def clip(clip_id: str, text: str | None = None, seconds: float = 1.0) -> Clip:
    return Clip(
        id=clip_id, audio=np.zeros(int(16000 * seconds), np.float32), sample_rate=16000, text=text
    )


def compare(
    reference: Sequence[int],
    variant: Sequence[int],
    *,
    ref_text: str | None = None,
    var_text: str | None = None,
    truth: str | None = None,
    forced: PipelineOutput | None = None,
    clip_id: str = "c1",
) -> ClipComparison:
    return compare_clip(
        clip(clip_id, truth),
        PipelineOutput(tuple(reference), ref_text),
        PipelineOutput(tuple(variant), var_text),
        forced,
        NORM,
    )


def one_hot_logits(tokens: Sequence[int], vocab: int = 8) -> np.ndarray:
    return np.eye(vocab, dtype=np.float32)[list(tokens)]


def matcher(text: str) -> pytest.LineMatcher:
    return pytest.LineMatcher(text.splitlines())


# --------------------------------------------------------------------------------------------
# Token comparisons
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ((), (), 0),
        ((1, 2, 3), (1, 2, 3), 0),
        ((1, 2, 3), (1, 9, 3), 1),
        ((1, 2, 3), (1, 3), 1),
        ((1, 2), (1, 2, 3, 4), 2),
        ((), (5, 6), 2),
        ((1, 2, 3, 4), (2, 3, 4, 5), 2),
    ],
)
def test_token_levenshtein_counts_insertions_deletions_and_substitutions(
    a: tuple[int, ...], b: tuple[int, ...], distance: int
) -> None:
    assert token_levenshtein(a, b) == distance
    assert token_levenshtein(b, a) == distance


@pytest.mark.parametrize(
    ("a", "b", "position"),
    [
        ((1, 2, 3), (1, 2, 3), None),
        ((1, 2, 3), (1, 9, 3), 1),
        ((1, 2, 3), (1, 2), 2),
        ((), (4,), 0),
        ((7, 2), (8, 2), 0),
    ],
)
def test_first_divergence_is_the_first_differing_index_or_none(
    a: tuple[int, ...], b: tuple[int, ...], position: int | None
) -> None:
    assert first_divergence(a, b) == position


def test_argmax_mismatches_count_differing_steps_and_missing_steps() -> None:
    assert argmax_mismatches((1, 2, 3, 1), (1, 5, 3, 1)) == 1
    assert argmax_mismatches((1, 2, 3, 1), (1, 2)) == 2


def test_pipeline_output_turns_numpy_tokens_into_plain_ints() -> None:
    output = PipelineOutput(tokens=np.array([3, 4], dtype=np.int64), text="a b")  # type: ignore[arg-type]
    assert output.tokens == (3, 4)
    assert all(type(token) is int for token in output.tokens)
    assert json.dumps(output.to_json()) == '{"tokens": [3, 4], "text": "a b"}'


def test_pipeline_output_rejects_step_logits_that_are_not_two_dimensional() -> None:
    with pytest.raises(AdapterError, match=r"step_logits must be \[steps, vocab\]"):
        PipelineOutput(tokens=(1,), step_logits=np.zeros((1, 2, 3)))


def test_step_argmax_comes_from_logits_when_given_else_from_tokens() -> None:
    assert PipelineOutput((2, 3)).step_argmax == (2, 3)
    assert PipelineOutput((2, 3), step_logits=one_hot_logits([2, 3, 1])).step_argmax == (2, 3, 1)


# --------------------------------------------------------------------------------------------
# Transcripts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("norm", "text", "expected"),
    [
        (TextNormalization(), "Hello, World!", "hello world"),
        (TextNormalization(), "Don't  stop \t now.", "dont stop now"),
        (TextNormalization(), "well-known  fact", "wellknown fact"),
        (TextNormalization(), "costs $5 (approx.)", "costs $5 approx"),
        (TextNormalization(), "count 1-2-3-4-5-6-7-8-9-10.", "count 12345678910"),
        (TextNormalization(remove=("<unk>", "uh")), "uh I <UNK> saw Uhura", "i saw uhura"),
        (TextNormalization(lowercase=False), "Hello, World", "Hello World"),
        (TextNormalization(strip_punctuation=False), "Hello,  World!", "hello, world!"),
        (TextNormalization(collapse_whitespace=False), " a  b ", " a  b "),
        (TextNormalization(preset="none"), " Hello,  World! ", "Hello, World!"),
    ],
)
def test_text_normalization_applies_its_documented_steps(
    norm: TextNormalization, text: str, expected: str
) -> None:
    assert norm.apply(text) == expected


PUNCTUATED_CORPUS = [
    ("Count with me: 1-2-3-4-5-6-7-8-9-10.", "count with me 1 2 3 4 5 6 7 8 9 10"),
    ("It costs $4.99, doesn't it?", "it costs $499 doesnt it"),
    ("Well-known facts; e.g. the U.S.A.", "well known facts eg the usa"),
    ("Hello, World!", "hello world"),
    ("The year 1-9-9-9 was long", "the year 1999 was long"),
]


def test_default_normalisation_gives_jiwers_wer_with_remove_punctuation_lowercase_and_strip() -> (
    None
):
    jiwer = pytest.importorskip("jiwer")
    standard = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    references = [reference for reference, _ in PUNCTUATED_CORPUS]
    hypotheses = [hypothesis for _, hypothesis in PUNCTUATED_CORPUS]
    expected = jiwer.wer(
        references, hypotheses, reference_transform=standard, hypothesis_transform=standard
    )
    ours = corpus_rate([word_errors(r, h, NORM) for r, h in PUNCTUATED_CORPUS])
    assert ours == pytest.approx(expected)
    # Digits joined by punctuation are one word, as jiwer counts them, not ten.
    assert word_errors(*PUNCTUATED_CORPUS[0][:1], "count with me 12345678910", NORM).edits == 0


def test_whisper_presets_use_transformers_text_normalisers() -> None:
    pytest.importorskip("transformers")
    assert TextNormalization(preset="whisper").apply("Hello, Mr. Smith!") == "hello mister smith"
    assert TextNormalization(preset="whisper-basic").apply("Hello, World!") == "hello world"
    described = TextNormalization(preset="whisper", remove=("<unk>",)).to_json()
    assert described["preset"] == "whisper"
    assert described["description"].startswith("remove <unk>; then transformers' Whisper")


def test_word_errors_count_each_kind_of_edit_after_normalization() -> None:
    counts = word_errors("The cat sat on the mat.", "the cat sat on a mat mat", NORM)
    assert counts == ErrorCounts(
        edits=2, reference_length=6, substitutions=1, deletions=0, insertions=1, unit="word"
    )
    assert counts.rate == pytest.approx(2 / 6)


def test_character_errors_count_characters_including_spaces() -> None:
    counts = char_errors("ab cd", "ab", NORM)
    assert (counts.edits, counts.reference_length, counts.deletions) == (3, 5, 3)
    assert counts.unit == "char"


def test_an_empty_reference_has_zero_rate_unless_words_were_inserted() -> None:
    assert word_errors("", "", NORM).rate == 0.0
    inserted = word_errors("", "two words", NORM)
    assert inserted.rate == math.inf
    assert inserted.to_json()["rate"] is None


def test_corpus_rate_is_total_edits_over_total_words_not_a_mean_of_clip_rates() -> None:
    short = word_errors("yes", "no", NORM)  # 1 / 1
    long = word_errors(" ".join(["word"] * 9), " ".join(["word"] * 9), NORM)  # 0 / 9
    mean_of_rates = (short.rate + long.rate) / 2
    assert corpus_rate([short, long]) == pytest.approx(0.1)
    assert mean_of_rates == pytest.approx(0.5)


def test_corpus_wer_of_a_variant_set_is_total_edits_over_total_words() -> None:
    comparisons = [
        compare((1,), (2,), ref_text="yes", var_text="no", clip_id="short"),
        compare((1,) * 9, (1,) * 9, ref_text="w " * 9, var_text="w " * 9, clip_id="long"),
    ]
    result = evaluate_sequence(
        comparisons, SequenceGates(require_token_equality=False, max_wer=0.2), variant_set="int8"
    )
    assert result.passed, result.message
    corpus = result.details["corpus"]["wer_vs_reference"]
    assert (corpus["edits"], corpus["reference_length"], corpus["rate"]) == (1, 10, 0.1)
    per_clip = [c["wer_vs_reference"]["rate"] for c in result.details["clips"]]
    assert per_clip == [1.0, 0.0]


def test_word_errors_without_the_speech_extra_name_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "jiwer", None)
    with pytest.raises(ImportError, match=r"jiwer is needed .*: pip install jiwer "):
        word_errors("a", "b", NORM)


# --------------------------------------------------------------------------------------------
# compare_clip
# --------------------------------------------------------------------------------------------


def test_compare_clip_measures_tokens_texts_and_ground_truth() -> None:
    forced = PipelineOutput((5, 6, 7), step_logits=one_hot_logits([5, 4, 7, 1]))
    comparison = compare_clip(
        clip("c1", "Five six seven.", seconds=2.0),
        PipelineOutput((5, 6, 7), "five six seven", step_logits=one_hot_logits([5, 6, 7, 1])),
        PipelineOutput((5, 4), "five four", step_logits=one_hot_logits([5, 4, 1])),
        forced,
        NORM,
    )
    assert comparison.duration_s == 2.0
    assert comparison.token_edits == 2
    assert comparison.first_divergence == 1
    assert comparison.argmax_mismatches_free == 3  # 6->4, 7->EOS, one step missing
    assert comparison.argmax_mismatches_forced == 1
    assert comparison.transcript_match is False
    assert comparison.wer_vs_reference is not None and comparison.wer_vs_reference.edits == 2
    assert comparison.wer_vs_truth is not None and comparison.wer_vs_truth.rate == pytest.approx(
        2 / 3
    )
    assert comparison.reference_wer_vs_truth is not None
    assert comparison.reference_wer_vs_truth.edits == 0
    json.dumps(comparison.to_json(), allow_nan=False)


def test_compare_clip_leaves_text_metrics_empty_when_the_adapter_has_no_text() -> None:
    comparison = compare((1, 2), (1, 2), truth="one two")
    assert comparison.transcript_match is None
    assert comparison.wer_vs_reference is None
    assert comparison.wer_vs_truth is None


# --------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------


def identical_set() -> list[ClipComparison]:
    return [
        compare(
            (3, 4),
            (3, 4),
            ref_text="three four",
            var_text="three four",
            truth="three four",
            clip_id="a",
        ),
        compare((5,), (5,), ref_text="five", var_text="five", truth="five", clip_id="b"),
    ]


def diverging_set() -> list[ClipComparison]:
    forced = PipelineOutput((3, 4, 5), step_logits=one_hot_logits([3, 6, 5, 1]))
    return [
        compare(
            (3, 4),
            (3, 4),
            ref_text="three four",
            var_text="three four",
            truth="three four",
            clip_id="a",
        ),
        compare(
            (3, 4, 5),
            (3, 6, 5),
            ref_text="three four five",
            var_text="three six five",
            truth="three four five",
            forced=forced,
            clip_id="b",
        ),
    ]


def test_identical_outputs_pass_every_gate() -> None:
    gates = SequenceGates(
        max_argmax_mismatches=0,
        require_transcript_match=True,
        max_wer=0.0,
        max_wer_vs_truth=0.0,
        max_wer_increase_vs_truth=0.0,
        max_cer=0.0,
        max_token_edits=0,
    )
    result = evaluate_sequence(identical_set(), gates, variant_set="int8")
    assert result.passed
    assert result.message == ""
    assert (result.check, result.variant) == ("sequence", "int8")
    assert [gate["gate"] for gate in result.details["gates"]] == [
        "token_equality",
        "max_argmax_mismatches",
        "transcript_match",
        "max_wer",
        "max_wer_vs_truth",
        "max_wer_increase_vs_truth",
        "max_cer",
        "max_token_edits",
    ]
    json.dumps(result.to_json(), allow_nan=False)


GATE_FAILURES = [
    (SequenceGates(), "*token_equality: 1 > 0 (1 of 2 clips differ; first: b diverges at token 1)"),
    (
        SequenceGates(require_token_equality=False, max_argmax_mismatches=0),
        "*max_argmax_mismatches: 1 > 0 (worst clip b: 1 steps)",
    ),
    (
        SequenceGates(require_token_equality=False, require_transcript_match=True),
        "*transcript_match: 1 > 0 (1 of 2 clips differ; first: b)",
    ),
    (
        SequenceGates(require_token_equality=False, max_wer=0.1),
        "*max_wer: 0.2 > 0.1 (1 edits / 5 words; worst clip b: 0.333)",
    ),
    (
        SequenceGates(require_token_equality=False, max_wer_vs_truth=0.1),
        "*max_wer_vs_truth: 0.2 > 0.1 (1 edits / 5 words; worst clip b: 0.333)",
    ),
    (
        SequenceGates(require_token_equality=False, max_wer_increase_vs_truth=0.05),
        "*max_wer_increase_vs_truth: 0.2 > 0.05 (variant 0.2 vs reference 0 against ground truth)",
    ),
    (SequenceGates(require_token_equality=False, max_cer=0.05), "*max_cer: 0.1* > 0.05 (*chars*"),
    (
        SequenceGates(require_token_equality=False, max_token_edits=0),
        "*max_token_edits: 1 > 0 (of 5 reference tokens; worst clip b: 1 edits)",
    ),
    (
        SequenceGates(require_token_equality=False, min_first_divergence=2),
        "*min_first_divergence: 1 < 2 (earliest: clip b; 1 of 2 clips diverge earlier)",
    ),
    (
        SequenceGates(require_token_equality=False, max_clip_wer=0.25),
        "*max_clip_wer: 0.333 > 0.25 (worst clip b: 1 edits / 3 words; 1 of 2 clips above *)",
    ),
]


@pytest.mark.parametrize(
    ("gates", "line"),
    GATE_FAILURES,
    ids=[line.split(":")[0].strip("* ") for _, line in GATE_FAILURES],
)
def test_each_gate_fails_on_a_diverging_clip_with_value_and_limit(
    gates: SequenceGates, line: str
) -> None:
    result = evaluate_sequence(diverging_set(), gates, variant_set="int4")
    assert not result.passed
    matcher(result.message).fnmatch_lines(
        [
            "sequence gates failed for variant set 'int4': 1 of 1 gates on 2 clips",
            line,
            "per clip, fp32 ONNX reference vs variant:",
            "clip*dur_s*reference*variant*match*wer*edits*diverges",
            "a*1.00*three four*three four*yes*0*0*-",
            "b*1.00*three four five*three six five*NO*0.333*1*1",
            "Next: fix the graphs of variant set 'int4'*[sequence.overrides.int4]*",
        ]
    )


def test_forced_argmax_gate_fails_on_a_teacher_forced_mismatch() -> None:
    gates = SequenceGates(require_token_equality=False, max_forced_argmax_mismatches=0)
    comparisons = [diverging_set()[1]]
    result = evaluate_sequence(comparisons, gates, variant_set="int4")
    matcher(result.message).fnmatch_lines(
        ["*max_forced_argmax_mismatches: 1 > 0 (worst clip b: 1 steps)"]
    )


def test_forced_argmax_gate_fails_as_not_measured_without_a_forced_run() -> None:
    gates = SequenceGates(max_forced_argmax_mismatches=0)
    result = evaluate_sequence(identical_set(), gates, variant_set="int8")
    assert not result.passed
    matcher(result.message).fnmatch_lines(
        [
            "*max_forced_argmax_mismatches: n/a > 0 "
            "(not measured: clips a, b ran without teacher forcing)"
        ]
    )


def test_text_gates_fail_as_not_measured_when_the_adapter_returns_no_text() -> None:
    comparisons = [compare((1, 2), (1, 2), truth="one two")]
    gates = SequenceGates(require_transcript_match=True, max_wer=0.1, max_wer_vs_truth=0.1)
    result = evaluate_sequence(comparisons, gates, variant_set="int8")
    matcher(result.message).fnmatch_lines(
        [
            "*transcript_match: n/a > 0 (not measured: clips c1 have no text*",
            "*max_wer: n/a > 0.1 (not measured: clips c1 have no text; "
            "the adapter must return PipelineOutput(text=...))",
            "*max_wer_vs_truth: n/a > 0.1 (not measured: clips c1 have no text or no ground truth*",
            "c1*[1 2]*[1 2]*yes*-*0*-",
        ]
    )


def test_first_divergence_gate_passes_when_every_clip_has_equal_tokens() -> None:
    gates = SequenceGates(min_first_divergence=50)
    result = evaluate_sequence(identical_set(), gates, variant_set="int8")
    assert result.passed
    gate = result.details["gates"][1]
    assert (gate["gate"], gate["value"], gate["note"]) == (
        "min_first_divergence",
        None,
        "tokens equal on all 2 clips",
    )


def test_one_clip_is_held_to_every_gate_but_the_corpus_rates() -> None:
    gates = SequenceGates(
        max_wer=0.1,
        max_wer_vs_truth=0.1,
        max_cer=0.1,
        max_wer_increase_vs_truth=0.1,
        max_clip_wer=0.5,
        max_token_edits=3,
    )
    assert gates.for_one_clip() == SequenceGates(max_clip_wer=0.5, max_token_edits=3)


def test_a_clip_passes_when_only_a_corpus_rate_would_fail_on_it_alone() -> None:
    gates = SequenceGates(require_token_equality=False, max_wer=0.25, max_token_edits=1)
    diverging = diverging_set()
    assert evaluate_sequence(diverging, gates, variant_set="int8").passed
    clip = evaluate_clip(diverging[1], gates, variant_set="int8")  # its own WER is 0.333
    assert clip.passed
    assert (clip.check, clip.graph, clip.variant) == ("sequence-clip", "pipeline", "int8")
    assert [gate["gate"] for gate in clip.details["gates"]] == ["max_token_edits"]


def test_a_diverging_clip_fails_with_its_row_and_both_token_sequences() -> None:
    result = evaluate_clip(diverging_set()[1], SequenceGates(), variant_set="int4")
    assert not result.passed
    matcher(result.message).fnmatch_lines(
        [
            "sequence gates failed for clip 'b' of variant set 'int4': 1 of 1 gates",
            "  token_equality: 1 > 0 (1 of 1 clips differ; first: b diverges at token 1)",
            "clip*dur_s*reference*variant*match*wer*edits*diverges",
            "b*1.00*three four five*three six five*NO*0.333*1*1",
            "reference tokens: [[]3 4 5] (3 tokens)",
            "variant tokens:   [[]3 6 5] (3 tokens)",
            "Next: the test sequence[[]int4] gates the whole set with every clip's row; *",
        ]
    )
    assert result.details["clip"]["clip_id"] == "b"
    json.dumps(result.to_json(), allow_nan=False)


def test_long_token_sequences_are_shown_around_the_first_divergence() -> None:
    reference = tuple(range(2, 100))
    variant = (*reference[:40], 99, *reference[41:])
    result = evaluate_clip(compare(reference, variant), SequenceGates(), variant_set="q")
    matcher(result.message).fnmatch_lines(
        [
            "reference tokens: [[]... 37 38 39 40 41 42 * ...] (98 tokens)",
            "variant tokens:   [[]... 37 38 39 40 41 99 * ...] (98 tokens)",
        ]
    )


def test_the_summary_has_one_row_per_variant_set() -> None:
    records = [
        {
            "kind": "check",
            **evaluate_sequence(identical_set(), SequenceGates(), variant_set=name).to_json(),
        }
        for name in ("int8", "int4")
    ]
    failing = evaluate_sequence(diverging_set(), SequenceGates(), variant_set="damaged")
    records.append({"kind": "check", **failing.to_json()})
    records.append(
        {
            "kind": "check",
            **evaluate_clip(identical_set()[0], SequenceGates(), variant_set="int8").to_json(),
        }
    )
    matcher("\n".join(summary_lines(records))).fnmatch_lines(
        [
            "variant set*clips*tokens equal*forced argmax*wer*cer*wer vs truth (set / ref)*status",
            "int8*2*2/2*-*0*0*0 / 0*PASS",
            "int4*2*2/2*-*0*0*0 / 0*PASS",
            "damaged*2*1/2*-*0.2*0.16*0.2 / 0*FAIL",
        ]
    )
    assert len(summary_lines(records)) == 5


def test_an_empty_clip_list_fails_and_says_where_clips_come_from() -> None:
    result = evaluate_sequence([], SequenceGates(), variant_set="int8")
    assert not result.passed
    assert "no clips to compare; check clips_dir or dataset" in result.message


def test_the_per_clip_table_lists_only_differing_clips_past_its_row_limit() -> None:
    comparisons = [*identical_set(), *diverging_set()]
    lines = per_clip_table(comparisons, limit=2)
    matcher("\n".join(lines)).fnmatch_lines(
        [
            "clip*",
            "---*",
            "b*three four five*three six five*NO*",
            "... 3 more clips (all of them in the JSON results)",
        ]
    )


def test_the_per_clip_table_shortens_long_transcripts() -> None:
    long_text = "word " * 30
    lines = per_clip_table([compare((1,), (1,), ref_text=long_text, var_text=long_text)])
    assert "word word" in lines[2] and "..." in lines[2]
    assert max(len(line) for line in lines) <= 110


def test_gates_reject_negative_limits() -> None:
    with pytest.raises(ValueError, match="max_wer must be >= 0"):
        SequenceGates(max_wer=-0.1)


def test_only_the_forced_gate_needs_teacher_forcing() -> None:
    assert not SequenceGates(max_argmax_mismatches=3).needs_teacher_forcing
    assert SequenceGates(max_forced_argmax_mismatches=3).needs_teacher_forcing


# --------------------------------------------------------------------------------------------
# run_adapter
# --------------------------------------------------------------------------------------------


def test_run_adapter_rejects_an_adapter_that_returns_something_else() -> None:
    def adapter(
        graphs: Mapping[str, object], clip: Clip, *, forced_tokens: object = None
    ) -> object:
        return [1, 2]

    with pytest.raises(
        AdapterError,
        match=r"returned list for clip 'c1'; return pytest_onnxparity.PipelineOutput",
    ):
        run_adapter(adapter, {}, clip("c1"))  # type: ignore[arg-type]


def test_run_adapter_requires_step_logits_under_teacher_forcing() -> None:
    def adapter(
        graphs: Mapping[str, object], clip: Clip, *, forced_tokens: object = None
    ) -> PipelineOutput:
        return PipelineOutput((1, 2))

    with pytest.raises(AdapterError, match="returned no step_logits under forced_tokens"):
        run_adapter(adapter, {}, clip("c1"), forced_tokens=(1, 2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The [sequence] table
# --------------------------------------------------------------------------------------------

WHERE = "parity.toml [sequence]"


def test_a_full_sequence_table_parses_into_options() -> None:
    options = parse_sequence_options(
        {
            "clips_dir": "tests/data/clips",
            "limit": 20,
            "sample_rate": 16000,
            "graphs": ["encoder", "decoder_init", "decoder_step"],
            "variant_sets": {
                "int8": "int8",
                "mixed": {"decoder_init": "int4", "decoder_step": "int4"},
            },
            "require_token_equality": False,
            "max_forced_argmax_mismatches": 2,
            "max_wer": 0.02,
            "normalization": {"remove": ["<unk>"], "lowercase": False},
            "overrides": {"mixed": {"max_wer": 0.05}},
        },
        WHERE,
    )
    assert options.source == ClipSource(clips_dir="tests/data/clips", limit=20, sample_rate=16000)
    assert options.variant_sets == {
        "int8": {"encoder": "int8", "decoder_init": "int8", "decoder_step": "int8"},
        "mixed": {"encoder": "fp32", "decoder_init": "int4", "decoder_step": "int4"},
    }
    assert options.gates == SequenceGates(
        require_token_equality=False, max_forced_argmax_mismatches=2, max_wer=0.02
    )
    assert options.gates_for("int8") == options.gates
    assert options.gates_for("mixed").max_wer == 0.05
    assert options.gates_for("mixed").max_forced_argmax_mismatches == 2
    assert options.normalization == TextNormalization(lowercase=False, remove=("<unk>",))
    json.dumps(options.to_json())


def test_a_dataset_source_takes_its_columns_split_and_streaming() -> None:
    options = parse_sequence_options(
        {
            "dataset": "openslr/librispeech_asr",
            "dataset_config": "clean",
            "split": "test",
            "text_column": "",
            "streaming": True,
            "limit": 5,
        },
        WHERE,
    )
    assert options.source == ClipSource(
        dataset="openslr/librispeech_asr",
        dataset_config="clean",
        text_column=None,
        streaming=True,
        limit=5,
    )


def test_a_single_tag_set_without_graphs_waits_for_the_pipeline_graphs() -> None:
    options = parse_sequence_options(
        {
            "variant_sets": {"int8": "int8", "mixed": {"decoder_step": "int4"}},
            "overrides": {"mixed": {"max_wer": 0.1}},
        },
        WHERE,
    )
    assert options.variant_sets == {"int8": "int8", "mixed": {"decoder_step": "int4"}}
    assert options.gates_for("mixed").max_wer == 0.1


def test_overrides_without_variant_sets_are_checked_once_the_sets_are_known() -> None:
    options = parse_sequence_options({"overrides": {"int4": {"max_wer": 0.1}}}, WHERE)
    assert options.gates_for("int4").max_wer == 0.1


def test_an_empty_sequence_table_has_default_gates_and_no_source() -> None:
    options = parse_sequence_options({}, WHERE)
    assert options.gates == SequenceGates()
    assert options.source is None
    assert options.variant_sets == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"max_wrr": 0.1},
            "parity.toml [[]sequence]: unknown key 'max_wrr'; "
            "allowed keys: require_token_equality, *",
        ),
        ({"max_wer": "5%"}, "parity.toml [[]sequence]: max_wer must be a number >= 0, got '5%'"),
        (
            {"max_token_edits": 1.5},
            "parity.toml [[]sequence]: max_token_edits must be an integer >= 0, got 1.5",
        ),
        ({"require_token_equality": 1}, "*require_token_equality must be true or false, got 1"),
        ({"clips_dir": "a", "dataset": "b"}, "*set either clips_dir or dataset, not both"),
        (
            {"clips_dir": "a", "split": "train"},
            "*split apply to dataset, not clips_dir; remove them",
        ),
        ({"split": "train"}, "*split need clips_dir or dataset"),
        ({"clips_dir": "a", "limit": 0}, "*limit must be a positive integer, got 0"),
        ({"dataset": "x", "streaming": "yes"}, "*streaming must be true or false, got 'yes'"),
        (
            {"graphs": ["encoder"], "variant_sets": {"q": {"decoder": "int8"}}},
            "*variant_sets.q: unknown key 'decoder'; allowed keys: encoder",
        ),
        (
            {"variant_sets": {"q": 8}},
            "*variant_sets.q: expected a tag string or a table of graph = tag, got 8",
        ),
        (
            {"variant_sets": {"int8": "int8"}, "overrides": {"int4": {"max_wer": 0.1}}},
            "*overrides.int4: no variant set 'int4'; define it in variant_sets (defined: int8)",
        ),
        (
            {"min_first_divergence": 0.5},
            "*min_first_divergence must be an integer >= 0, got 0.5",
        ),
        ({"max_clip_wer": -1}, "*max_clip_wer must be a number >= 0, got -1"),
        (
            {
                "graphs": ["e"],
                "variant_sets": {"q": "int8"},
                "overrides": {"q": {"clips_dir": "x"}},
            },
            "*overrides.q: unknown key 'clips_dir'; allowed keys: require_token_equality*",
        ),
        (
            {"normalization": {"lower": True}},
            "*normalization: unknown key 'lower'; allowed keys: preset, lowercase*",
        ),
        (
            {"normalization": {"preset": "kaldi"}},
            "*normalization: preset must be one of 'default', 'none', 'whisper'*",
        ),
        (
            {"normalization": {"preset": "whisper", "lowercase": False}},
            '*normalization: lowercase switches a step of preset "default"*',
        ),
        (
            {"normalization": {"remove": "uh"}},
            "*normalization: remove must be a list of non-empty strings*",
        ),
    ],
)
def test_invalid_sequence_tables_fail_naming_the_key_and_the_fix(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_sequence_options(raw, WHERE)
    matcher(str(error.value)).fnmatch_lines([message])
