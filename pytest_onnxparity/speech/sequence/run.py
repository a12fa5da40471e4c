"""One process's share of a sequence run: the variant sets resolved against the export folder,
the clips loaded once, each clip's reference decodes (the fp32 ONNX set's and, when given, the
upstream PyTorch pipeline's) and each (set, clip, reference) comparison cached.

No pytest here. The glue makes one :class:`SequenceCache` per process (per xdist worker) and
asks it for comparisons item by item; whichever item needs a clip first loads the clips, and
whichever needs a reference decode first runs it, so a clip is decoded by the reference graphs
once per process, whatever the number of variant sets and whatever the order of the items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.export.folder import ExportFolder, ModelFile
from pytest_onnxparity.export.naming import TIERS_BY_PRECISION
from pytest_onnxparity.runtime.sessions import OnnxRunner
from pytest_onnxparity.speech.audio.clips import Clip, ClipError
from pytest_onnxparity.speech.sequence.clip_compare import ClipComparison, compare_clip
from pytest_onnxparity.speech.sequence.pipeline import (
    REFERENCE_TAG,
    TORCH_REFERENCE,
    PipelineAdapter,
    PipelineOutput,
    ReferencePipeline,
    run_adapter,
    run_reference_pipeline,
)
from pytest_onnxparity.speech.transcripts import TextNormalization

REFERENCE_SET = REFERENCE_TAG
"""The name of the set of every role's reference file (the baseline of all comparisons)."""


@dataclass(frozen=True)
class VariantSet:
    """The file each graph role of a pipeline runs with, under one name (``int8``, ``mixed``)."""

    name: str
    files: Mapping[str, ModelFile]
    """Role (a graph of the export folder) -> the file of the tag the set names for it."""

    @property
    def tags(self) -> dict[str, str]:
        return {role: model.variant for role, model in self.files.items()}

    @property
    def tier(self) -> str:
        """The narrowest precision among its files (``int4`` for fp32 encoder + int4 decoders):
        what a speed budget scoped to a tier matches."""
        return max((m.tier for m in self.files.values()), key=TIERS_BY_PRECISION.index)

    def same_files(self, other: VariantSet) -> bool:
        return {r: m.path for r, m in self.files.items()} == {
            r: m.path for r, m in other.files.items()
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tier": self.tier,
            "files": {role: model.relpath for role, model in self.files.items()},
            "tags": self.tags,
        }


def resolve_variant_sets(
    folder: ExportFolder,
    roles: Sequence[str],
    configured: Mapping[str, str | Mapping[str, str]],
    *,
    selected: Sequence[str] = (),
    overrides: Sequence[str] = (),
    where: str = "[sequence]",
) -> tuple[VariantSet, list[VariantSet]]:
    """The reference set and the variant sets to gate, in order.

    ``roles`` are graph names of ``folder``. ``configured`` maps each set to a tag per role
    (``"fp32"`` is the role's reference file; a role left out keeps it), or to one tag for every
    role; without any, every tag
    that all roles have beside their reference is a set of that name. ``selected``
    (``--parity-variant-set``) keeps only those sets; ``overrides`` are the set names the config
    gives limits for. A name that resolves to nothing is a :class:`ConfigError` listing what
    exists.
    """
    if not roles:
        raise ConfigError(
            f"{where}: name the pipeline's graphs with graphs = [...] (graphs of "
            f"{folder.root}: {_names(g.name for g in folder.graphs)}), or give the adapter a "
            "graphs attribute"
        )
    known = {graph.name: graph for graph in folder.graphs}
    missing = [role for role in roles if role not in known]
    if missing:
        raise ConfigError(
            f"{where}: graphs {', '.join(missing)} are not in {folder.root} (it has: "
            f"{_names(known)}); fix graphs = [...] or the export"
        )
    reference = VariantSet(REFERENCE_SET, {role: known[role].reference_file for role in roles})
    if configured:
        tags_by_set = {}
        for name, tags in configured.items():
            if isinstance(tags, str):
                tags_by_set[name] = dict.fromkeys(roles, tags)
                continue
            strays = [role for role in tags if role not in roles]
            if strays:
                raise ConfigError(
                    f"{where} variant_sets.{name}: {', '.join(strays)} is not a graph of the "
                    f"pipeline ({', '.join(roles)})"
                )
            tags_by_set[name] = dict(tags)
    else:
        common = [
            tag
            for tag in known[roles[0]].variants
            if all(tag in known[role].variants for role in roles[1:])
        ]
        if not common:
            raise ConfigError(
                f"{where}: graphs {', '.join(roles)} share no variant tag, so there is no "
                "variant set to gate; define variant_sets = { name = { graph = tag, ... } }"
            )
        tags_by_set = {tag: dict.fromkeys(roles, tag) for tag in common}
    sets = [_variant_set(name, tags, known, roles, where) for name, tags in tags_by_set.items()]
    names = [variant_set.name for variant_set in sets]
    for name in overrides:
        if name not in names:
            raise ConfigError(
                f"{where} overrides.{name}: no variant set {name!r} (sets: {_names(names)})"
            )
    unknown = [name for name in selected if name not in names]
    if unknown:
        raise ConfigError(
            f"--parity-variant-set {', '.join(unknown)}: no such variant set (sets: "
            f"{_names(names)})"
        )
    if selected:
        sets = [variant_set for variant_set in sets if variant_set.name in selected]
    return reference, sets


def _variant_set(
    name: str,
    tags: Mapping[str, str],
    known: Mapping[str, Any],
    roles: Sequence[str],
    where: str,
) -> VariantSet:
    files = {}
    for role in roles:
        graph = known[role]
        tag = tags.get(role, REFERENCE_TAG)
        if tag == REFERENCE_TAG:
            files[role] = graph.reference_file
        elif tag in graph.variants:
            files[role] = graph.file(tag)
        else:
            raise ConfigError(
                f"{where} variant_sets.{name}: graph {role!r} has no variant {tag!r} (it has "
                f"{_names([REFERENCE_TAG, *graph.variants])}); export it or fix the set"
            )
    return VariantSet(name, files)


def _names(names: Any) -> str:
    listed = list(names)
    return ", ".join(listed) if listed else "none"


class SequenceCache:
    """Clips, decodes and comparisons of one process, each computed at most once.

    ``load_clips`` loads every clip of the run (called at first use); ``open_graphs`` gives the
    runners of a set's files (the engine's cached sessions). ``reference_pipeline``, when given,
    is the upstream (PyTorch) pipeline: its decodes are cached like the reference set's, and
    any set can be compared with them (``against=TORCH_REFERENCE``). A failure to load the
    clips, or to decode a clip with a reference, is kept and raised again for every item that
    needs it, without trying again.
    """

    def __init__(
        self,
        adapter: PipelineAdapter,
        reference: VariantSet,
        *,
        load_clips: Callable[[], Sequence[Clip]],
        open_graphs: Callable[[VariantSet], Mapping[str, OnnxRunner]],
        normalization: TextNormalization,
        reference_pipeline: ReferencePipeline | None = None,
    ) -> None:
        self.adapter = adapter
        self.reference = reference
        self.normalization = normalization
        self.reference_pipeline = reference_pipeline
        self._load_clips = load_clips
        self._open_graphs = open_graphs
        self._clips: dict[str, Clip] | None = None
        self._clip_failure: Exception | None = None
        self._outputs: dict[tuple[str, str], PipelineOutput] = {}
        self._failures: dict[tuple[str, str], Exception] = {}
        self._comparisons: dict[tuple[str, str, bool, str], ClipComparison] = {}
        self.decodes = 0
        """Adapter calls made by this cache (reference, free-running and teacher-forced)."""
        self.reference_decodes = 0
        """Calls of the upstream reference pipeline."""

    @property
    def references(self) -> tuple[str, ...]:
        """What a set can be compared with: the fp32 ONNX set, and the upstream pipeline."""
        upstream = () if self.reference_pipeline is None else (TORCH_REFERENCE,)
        return (REFERENCE_SET, *upstream)

    @property
    def clips(self) -> dict[str, Clip]:
        """Every clip by id, loaded at first use."""
        if self._clip_failure is not None:
            raise self._clip_failure
        if self._clips is None:
            try:
                self._clips = {clip.id: clip for clip in self._load_clips()}
            except Exception as error:
                self._clip_failure = error
                raise
        return self._clips

    @property
    def loaded(self) -> bool:
        return self._clips is not None

    def clip(self, clip_id: str) -> Clip:
        clips = self.clips
        if clip_id not in clips:
            raise ClipError(
                f"clip {clip_id!r} was listed at collection but is not among the "
                f"{len(clips)} clips loaded ({_names(list(clips)[:5])}...); the clip source "
                "changed during the run, or lists its rows in another order when streamed"
            )
        return clips[clip_id]

    def reference_output(self, clip_id: str, against: str = REFERENCE_SET) -> PipelineOutput:
        """A reference's decode of one clip (once per process): the reference set's, or the
        upstream pipeline's (``against=TORCH_REFERENCE``)."""
        if against == TORCH_REFERENCE:
            return self._output(TORCH_REFERENCE, clip_id, self._upstream)
        if against != REFERENCE_SET:
            raise ValueError(f"no reference {against!r}; references: {self.references}")
        return self.output(self.reference, clip_id)

    def output(self, variant_set: VariantSet, clip_id: str) -> PipelineOutput:
        """``variant_set``'s free-running decode of one clip (once per process)."""
        return self._output(variant_set.name, clip_id, lambda clip: self._decode(variant_set, clip))

    def comparison(
        self,
        variant_set: VariantSet,
        clip_id: str,
        *,
        teacher_forcing: bool,
        against: str = REFERENCE_SET,
    ) -> ClipComparison:
        """``variant_set``'s decode of one clip against a reference's (once per process)."""
        key = (variant_set.name, clip_id, teacher_forcing, against)
        if key not in self._comparisons:
            reference = self.reference_output(clip_id, against)
            clip = self.clip(clip_id)
            variant = self.output(variant_set, clip_id)
            forced = self._decode(variant_set, clip, reference.tokens) if teacher_forcing else None
            self._comparisons[key] = compare_clip(
                clip, reference, variant, forced, self.normalization
            )
        return self._comparisons[key]

    def comparisons(
        self,
        variant_set: VariantSet,
        clip_ids: Sequence[str],
        *,
        teacher_forcing: bool,
        against: str = REFERENCE_SET,
    ) -> list[ClipComparison]:
        return [
            self.comparison(variant_set, clip_id, teacher_forcing=teacher_forcing, against=against)
            for clip_id in clip_ids
        ]

    def graphs(self, variant_set: VariantSet) -> Mapping[str, OnnxRunner]:
        return self._open_graphs(variant_set)

    def _output(
        self, source: str, clip_id: str, decode: Callable[[Clip], PipelineOutput]
    ) -> PipelineOutput:
        key = (source, clip_id)
        if key in self._failures:
            raise self._failures[key]
        if key not in self._outputs:
            clip = self.clip(clip_id)
            try:
                self._outputs[key] = decode(clip)
            except Exception as error:
                self._failures[key] = error
                raise
        return self._outputs[key]

    def _upstream(self, clip: Clip) -> PipelineOutput:
        if self.reference_pipeline is None:
            raise ValueError("no reference pipeline: pytest_onnxparity_reference_pipeline")
        self.reference_decodes += 1
        return run_reference_pipeline(self.reference_pipeline, clip)

    def _decode(
        self, variant_set: VariantSet, clip: Clip, forced: Sequence[int] | None = None
    ) -> PipelineOutput:
        self.decodes += 1
        return run_adapter(self.adapter, self._open_graphs(variant_set), clip, forced)
