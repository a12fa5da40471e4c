"""Unit tests for one process's share of a sequence run: variant sets resolved against a
folder, and the cache that decodes each clip with the reference once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.export.folder import ExportFolder, Graph, ModelFile
from pytest_onnxparity.speech.audio.clips import Clip, ClipError
from pytest_onnxparity.speech.sequence.pipeline import AdapterError, PipelineOutput
from pytest_onnxparity.speech.sequence.run import SequenceCache, VariantSet, resolve_variant_sets
from pytest_onnxparity.speech.transcripts import TextNormalization

ROLES = ("encoder", "decoder")


def model(graph: str, variant: str, tier: str | None = None) -> ModelFile:
    name = f"{graph}.onnx" if variant == "fp32" else f"{graph}.{variant}.onnx"
    return ModelFile(
        path=Path("/export") / name,
        relpath=name,
        graph=graph,
        variant=variant,
        tier=tier or {"q4f16": "int4"}.get(variant, variant),
        size_bytes=1,
    )


def folder(tags: Mapping[str, Sequence[str]]) -> ExportFolder:
    graphs = tuple(
        Graph(name, "fp32", (model(name, "fp32"), *(model(name, tag) for tag in variants)))
        for name, variants in tags.items()
    )
    return ExportFolder(Path("/export"), graphs)


FOLDER = folder({"encoder": ["int4", "int8"], "decoder": ["int4", "int8", "q4f16"]})


def matcher(text: str) -> pytest.LineMatcher:
    return pytest.LineMatcher(text.splitlines())


# --------------------------------------------------------------------------------------------
# Variant sets
# --------------------------------------------------------------------------------------------


def test_without_configured_sets_each_tag_every_graph_has_is_a_set() -> None:
    reference, sets = resolve_variant_sets(FOLDER, ROLES, {})
    assert reference.name == "fp32"
    assert {role: m.relpath for role, m in reference.files.items()} == {
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
    }
    assert [s.name for s in sets] == ["int4", "int8"]
    assert sets[1].tags == {"encoder": "int8", "decoder": "int8"}


def test_a_mixed_set_keeps_the_reference_of_the_graphs_it_leaves_out() -> None:
    _, (mixed,) = resolve_variant_sets(FOLDER, ROLES, {"mixed": {"decoder": "int4"}})
    assert mixed.tags == {"encoder": "fp32", "decoder": "int4"}
    assert mixed.tier == "int4"
    assert mixed.to_json()["files"] == {"encoder": "encoder.onnx", "decoder": "decoder.int4.onnx"}


def test_a_single_tag_set_takes_that_tag_for_every_graph() -> None:
    _, (int8,) = resolve_variant_sets(FOLDER, ROLES, {"int8": "int8"})
    assert int8.tags == {"encoder": "int8", "decoder": "int8"}


def test_selected_sets_are_kept_in_their_configured_order() -> None:
    _, sets = resolve_variant_sets(FOLDER, ROLES, {}, selected=("int8",))
    assert [s.name for s in sets] == ["int8"]


def test_a_set_of_reference_files_has_the_same_files_as_the_reference() -> None:
    reference, (same,) = resolve_variant_sets(FOLDER, ROLES, {"same": "fp32"})
    assert same.same_files(reference)


@pytest.mark.parametrize(
    ("roles", "configured", "kwargs", "message"),
    [
        (
            (),
            {},
            {},
            "[[]sequence]: name the pipeline's graphs with graphs = [[]...] (graphs of "
            "/export: encoder, decoder), or give the adapter a graphs attribute",
        ),
        (
            ("encoder", "joiner"),
            {},
            {},
            "[[]sequence]: graphs joiner are not in /export (it has: "
            "encoder, decoder); fix graphs = [[]...] or the export",
        ),
        (
            ROLES,
            {"q": {"encoder": "int2"}},
            {},
            "[[]sequence] variant_sets.q: graph 'encoder' has "
            "no variant 'int2' (it has fp32, int4, int8); export it or fix the set",
        ),
        (
            ROLES,
            {"q": {"joiner": "int8"}},
            {},
            "[[]sequence] variant_sets.q: joiner is not a graph of the pipeline (encoder, decoder)",
        ),
        (
            ROLES,
            {},
            {"selected": ("int3",)},
            "--parity-variant-set int3: no such variant set (sets: int4, int8)",
        ),
        (
            ROLES,
            {},
            {"overrides": ("int3",)},
            "[[]sequence] overrides.int3: no variant set 'int3' (sets: int4, int8)",
        ),
    ],
    ids=[
        "no-roles",
        "unknown-graph",
        "unknown-tag",
        "stray-role",
        "unknown-selection",
        "unknown-override",
    ],
)
def test_names_that_resolve_to_nothing_fail_listing_what_exists(
    roles: tuple[str, ...],
    configured: dict[str, object],
    kwargs: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_variant_sets(FOLDER, roles, configured, **kwargs)  # type: ignore[arg-type]
    matcher(str(error.value)).fnmatch_lines([message])


def test_graphs_sharing_no_tag_have_no_default_set() -> None:
    lonely = folder({"encoder": ["int8"], "decoder": ["int4"]})
    with pytest.raises(ConfigError, match="share no variant tag"):
        resolve_variant_sets(lonely, ROLES, {})


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


class CountingAdapter:
    """Decodes a clip to the variant tag's length in tokens; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(
        self,
        graphs: Mapping[str, object],
        clip: Clip,
        *,
        forced_tokens: Sequence[int] | None = None,
    ) -> PipelineOutput:
        tag = str(graphs["decoder"])
        self.calls.append((tag, clip.id, forced_tokens is not None))
        tokens = (3, 4, 5) if tag in ("fp32", "int8") else (3, 9, 5)
        if forced_tokens is not None:
            return PipelineOutput(tokens, step_logits=np.eye(10)[[*tokens, 1]])
        return PipelineOutput(tokens, text=" ".join(str(t) for t in tokens))


def clips() -> list[Clip]:
    return [
        Clip(id=name, audio=np.zeros(1600, np.float32), sample_rate=16000, text="3 4 5")
        for name in ("a", "b")
    ]


def make_cache(adapter: CountingAdapter, load: object = clips) -> tuple[SequenceCache, list[int]]:
    loads: list[int] = []
    reference, _ = resolve_variant_sets(FOLDER, ROLES, {})

    def load_clips() -> list[Clip]:
        loads.append(1)
        return load()  # type: ignore[operator]

    def open_graphs(variant_set: VariantSet) -> dict[str, object]:
        return dict(variant_set.tags)

    cache = SequenceCache(
        adapter,
        reference,
        load_clips=load_clips,
        open_graphs=open_graphs,  # type: ignore[arg-type]
        normalization=TextNormalization(),
    )
    return cache, loads


def test_each_clip_is_decoded_by_the_reference_once_whatever_the_sets_and_items() -> None:
    adapter = CountingAdapter()
    cache, loads = make_cache(adapter)
    _, sets = resolve_variant_sets(FOLDER, ROLES, {})
    assert not cache.loaded
    for variant_set in sets:
        for clip_id in ("a", "b"):
            cache.comparison(variant_set, clip_id, teacher_forcing=True)
        cache.comparisons(variant_set, ["a", "b"], teacher_forcing=True)  # the corpus item
    assert loads == [1]
    assert sorted(call for call in adapter.calls if call[0] == "fp32") == [
        ("fp32", "a", False),
        ("fp32", "b", False),
    ]
    assert len(adapter.calls) == cache.decodes == 2 + 2 * 2 * 2
    int4 = cache.comparison(sets[0], "b", teacher_forcing=True)
    assert (int4.token_edits, int4.first_divergence, int4.argmax_mismatches_forced) == (1, 1, 1)


def test_a_failed_clip_load_is_raised_again_without_loading_again() -> None:
    def broken() -> list[Clip]:
        raise ClipError("clips: no such folder")

    cache, loads = make_cache(CountingAdapter(), broken)
    _, sets = resolve_variant_sets(FOLDER, ROLES, {})
    for _ in range(2):
        with pytest.raises(ClipError, match="no such folder"):
            cache.comparison(sets[0], "a", teacher_forcing=False)
    assert loads == [1]


def test_a_failed_reference_decode_is_kept_for_every_set() -> None:
    class Failing(CountingAdapter):
        def __call__(self, graphs: Mapping[str, object], clip: Clip, **kwargs: object) -> object:  # type: ignore[override]
            self.calls.append((str(graphs["decoder"]), clip.id, False))
            return "not an output"

    adapter = Failing()
    cache, _ = make_cache(adapter)
    _, sets = resolve_variant_sets(FOLDER, ROLES, {})
    for variant_set in sets:
        with pytest.raises(AdapterError, match="returned str for clip 'a'"):
            cache.comparison(variant_set, "a", teacher_forcing=False)
    assert adapter.calls == [("fp32", "a", False)]


def test_a_clip_listed_at_collection_but_not_loaded_is_named() -> None:
    cache, _ = make_cache(CountingAdapter())
    _, sets = resolve_variant_sets(FOLDER, ROLES, {})
    with pytest.raises(ClipError, match="clip 'z' was listed at collection but is not among"):
        cache.comparison(sets[0], "z", teacher_forcing=False)
