"""Pipelines: what a user's adapter returns for a clip, and running it on the reference graphs
and on each variant set.

The user writes a :class:`PipelineAdapter`: given the loaded graphs of one variant set and one
clip, it returns the decoded token ids (and text, if it has a tokenizer). The plugin runs it
once for the reference graphs (cached) and once per variant set, optionally again under teacher
forcing, and hands the results to
:func:`pytest_onnxparity.speech.sequence.clip_compare.compare_clip`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pytest_onnxparity.runtime.sessions import OnnxRunner
from pytest_onnxparity.speech.audio.clips import Clip

PIPELINE_GRAPH = "pipeline"
"""The ``graph`` of sequence records: a variant set spans several graphs."""


REFERENCE_TAG = "fp32"
"""The variant tag that names a graph's reference file in a variant set."""


TORCH_REFERENCE = "pytorch"
"""The name of the upstream (PyTorch) pipeline among the references a set is compared with."""


REFERENCE_LABELS = {REFERENCE_TAG: "fp32 ONNX", TORCH_REFERENCE: "PyTorch"}


class AdapterError(RuntimeError):
    """A pipeline adapter returned something the gates cannot use; the message says what."""


@dataclass(frozen=True)
class PipelineOutput:
    """What a pipeline adapter decoded from one clip.

    ``tokens`` are the output token ids (the adapter decides whether BOS/EOS are included;
    reference and variants go through the same adapter). ``step_logits`` [steps, vocab] are the
    logits of each decoder step, in order; required under teacher forcing, optional otherwise.
    """

    tokens: tuple[int, ...]
    text: str | None = None
    step_logits: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Adapters hand back lists or numpy arrays; results must hold plain ints.
        object.__setattr__(self, "tokens", tuple(int(token) for token in self.tokens))
        if self.step_logits is not None:
            logits = np.asarray(self.step_logits)
            if logits.ndim != 2:
                raise AdapterError(
                    f"step_logits must be [steps, vocab], got shape {logits.shape}; stack each "
                    "step's logits for one sequence"
                )
            object.__setattr__(self, "step_logits", logits)

    @property
    def step_argmax(self) -> tuple[int, ...]:
        """The argmax of each step: from ``step_logits`` if given, else the tokens themselves."""
        if self.step_logits is None:
            return self.tokens
        return tuple(int(index) for index in self.step_logits.argmax(axis=-1))

    def to_json(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "text": self.text}


class PipelineAdapter(Protocol):
    """Runs one encoder/decoder pipeline on one clip with the graphs of one variant set.

    ``graphs`` maps each role (``encoder``, ``decoder_init``, ``decoder_step``, …) to the
    runner of the file chosen for it. With ``forced_tokens`` the adapter teacher-forces: it
    feeds these tokens instead of its own predictions and returns every step's logits in
    ``step_logits`` (one more row than tokens when the last row predicts end-of-sequence).
    """

    def __call__(
        self,
        graphs: Mapping[str, OnnxRunner],
        clip: Clip,
        *,
        forced_tokens: Sequence[int] | None = None,
    ) -> PipelineOutput: ...


def run_adapter(
    adapter: PipelineAdapter,
    graphs: Mapping[str, OnnxRunner],
    clip: Clip,
    forced_tokens: Sequence[int] | None = None,
) -> PipelineOutput:
    """Call ``adapter`` and check that it returned a usable :class:`PipelineOutput`."""
    output = adapter(graphs, clip, forced_tokens=forced_tokens)
    name = getattr(adapter, "__qualname__", type(adapter).__qualname__)
    if not isinstance(output, PipelineOutput):
        raise AdapterError(
            f"pipeline adapter {name} returned {type(output).__name__} for clip {clip.id!r}; "
            "return pytest_onnxparity.PipelineOutput(tokens=..., text=...)"
        )
    if forced_tokens is not None and output.step_logits is None:
        raise AdapterError(
            f"pipeline adapter {name} returned no step_logits under forced_tokens for clip "
            f"{clip.id!r}; return each forced step's logits, or unset "
            "max_forced_argmax_mismatches"
        )
    return output


class ReferencePipeline(Protocol):
    """The upstream pipeline (a PyTorch model's greedy loop, ``transformers``' ``generate()``…)
    on one clip: the same :class:`PipelineOutput` the ONNX adapter returns, so the fp32 ONNX
    set can be gated against it. ``step_logits``, when returned, give its per-step argmax."""

    def __call__(self, clip: Clip) -> PipelineOutput: ...


def run_reference_pipeline(pipeline: ReferencePipeline, clip: Clip) -> PipelineOutput:
    """Call the upstream ``pipeline`` on ``clip`` and check that it returned a
    :class:`PipelineOutput`."""
    output = pipeline(clip)
    if not isinstance(output, PipelineOutput):
        name = getattr(pipeline, "__qualname__", type(pipeline).__qualname__)
        raise AdapterError(
            f"reference pipeline {name} returned {type(output).__name__} for clip {clip.id!r}; "
            "return pytest_onnxparity.PipelineOutput(tokens=..., text=...)"
        )
    return output


def decode_references(
    adapter: PipelineAdapter, graphs: Mapping[str, OnnxRunner], clips: Sequence[Clip]
) -> dict[str, PipelineOutput]:
    """The reference outputs of every clip, keyed by clip id (cache them for all variant sets)."""
    return {clip.id: run_adapter(adapter, graphs, clip) for clip in clips}
