"""An export folder of the sequence kit's model, as a project would ship it, and the conftest.py
a project writes for it: test tooling for ``test_sequence_plugin.py``.

``write_export`` writes ``encoder.onnx``, ``decoder_init.onnx``, ``decoder_step.onnx`` with
their int8 and int4 variants and a ``decoder_step.damaged.onnx`` (noise on the output
projection), the torch model's weights (``seqmodel.pt``, beside the export), plus a folder of
synthesized clips with transcripts and a local ``audiofolder`` dataset of the same clips.
``CONFTEST`` is a greedy adapter written the way a user writes one, and optionally the torch
pipeline as the reference pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import seqkit

from tests.paths import FIXTURES

ROLES = seqkit.GRAPH_ROLES
CLIPS = 4


@dataclass(frozen=True)
class SeqExport:
    """Paths of the shared, read-only sequence export of a test session."""

    export: Path
    clips: Path
    audiofolder: Path
    torch_model: Path


def write_export(root: Path) -> SeqExport:
    export = root / "export"
    export.mkdir(parents=True)
    reference = seqkit.export_seq_model(export)
    torch_model = seqkit.save_seq_model(root / "seqmodel.pt")
    for tag in ("int8", "int4"):
        seqkit.make_variant_set(reference, dict.fromkeys(ROLES, tag), export)
    seqkit.damaged_variant_set(reference, export)
    clips = seqkit.synthetic_clips(CLIPS, seed=7)
    clip_dir = root / "clips"
    seqkit.write_clip_folder(clips, clip_dir)
    audiofolder = root / "audiofolder"
    seqkit.write_clip_folder(clips, audiofolder / "test", audio_format="flac")
    rows = [{"file_name": f"{clip.id}.flac", "sentence": clip.text} for clip in clips]
    (audiofolder / "test" / "metadata.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows)
    )
    for transcript in (audiofolder / "test").glob("*.txt"):
        transcript.unlink()
    return SeqExport(export, clip_dir, audiofolder, torch_model)


CONFTEST = '''
"""A greedy adapter for the sequence kit's encoder + decoder_init + decoder_step export."""

import sys
import time

sys.path.insert(0, {fixtures!r})

import numpy as np
import pytest
from seqaudio import BOS, EOS, SAMPLE_RATE, TOKENIZER, log_mel_features

from pytest_onnxparity.speech.sequence.pipeline import PipelineOutput

SLEEP_FOR = {sleep_for!r}  # (tag, seconds): a deliberately slow adapter for that tag


class GreedyAdapter:
    sample_rate = SAMPLE_RATE
    graphs = ("encoder", "decoder_init", "decoder_step")

    def __init__(self, max_steps=8):
        self.max_steps = max_steps

    def __call__(self, graphs, clip, *, forced_tokens=None):
        if SLEEP_FOR and f".{{SLEEP_FOR[0]}}." in graphs["decoder_step"].path.name:
            time.sleep(SLEEP_FOR[1])
        features = log_mel_features(clip.audio, clip.sample_rate)
        memory = graphs["encoder"].run({{"features": features}})["memory"]
        out = graphs["decoder_init"].run({{"memory": memory, "token": np.array([BOS])}})
        state = {{name: out[name] for name in ("hidden", "context", "position")}}
        cache = {{name: out[name] for name in ("cross_keys", "cross_values")}}
        rows, tokens = [out["logits"][0]], []
        while True:
            if forced_tokens is not None:
                if len(tokens) == len(forced_tokens):
                    break
                token = int(forced_tokens[len(tokens)])
            else:
                token = int(rows[-1].argmax())
                if token == EOS or len(tokens) == self.max_steps:
                    break
            tokens.append(token)
            out = graphs["decoder_step"].run({{"token": np.array([token]), **state, **cache}})
            state = {{
                "hidden": out["next_hidden"],
                "context": out["next_context"],
                "position": out["next_position"],
            }}
            rows.append(out["logits"][0])
        return PipelineOutput(
            tokens=tokens, text=TOKENIZER.decode(tokens), step_logits=np.stack(rows)
        )


def pytest_onnxparity_pipeline_adapter(config):
    return GreedyAdapter()
'''

TORCH_PIPELINE = """

@pytest.hookimpl
def pytest_onnxparity_reference_pipeline(config):
    import seqkit

    return seqkit.TorchPipeline(seqkit.load_seq_model({torch_model!r}))
"""


def conftest_text(
    sleep_for: tuple[str, float] | None = None, torch_model: Path | None = None
) -> str:
    """The conftest.py of a project with this export (``sleep_for``: slow down one tag;
    ``torch_model``: the saved torch model, gated against as the reference pipeline)."""
    text = CONFTEST.format(fixtures=str(FIXTURES), sleep_for=sleep_for)
    if torch_model is not None:
        text += TORCH_PIPELINE.format(torch_model=str(torch_model))
    return text
