"""What each graph input is, read from the graph and its names, so synthesized inputs mean
something: an attention mask of ones, token types of zero, positions 0..n-1, token ids inside
the table they index, lengths as long as their signal, past keys/values with a past length, a
sample rate of 16 kHz and, beside it, a waveform chunk of 512 samples (32 ms).

Random integers in [0, 16) crash a BERT reference (its token-type table has 2 rows) and a random
attention mask overflows an additive mask into NaN; a 16-sample waveform breaks a VAD's
reflect-padded STFT (silero-vad: "Pad reflect: post-pad (64) exceeds maximum allowed (15)");
roles avoid all three. A config rule for an input
(``[graphs.<graph>.inputs.<input>]``) always wins over its role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_onnxparity.compare.positions import is_attention_mask_name
from pytest_onnxparity.onnxfile.signature import TensorSpec

MASK = "attention mask"
TOKEN_TYPES = "token types"
POSITIONS = "positions"
INDICES = "indices"
PAST = "past key/value"
LENGTHS = "lengths"
SAMPLE_RATE = "sample rate"
STATE = "recurrent state"
WAVEFORM = "waveform"
PLAIN = "plain"

SAMPLE_RATE_HZ = 16_000  # what speech models are trained at (silero-vad, Whisper, wav2vec 2.0)
WAVEFORM_CHUNK = 512  # samples: 32 ms at 16 kHz, silero-vad's chunk and a common streaming hop
# Quiet noise (about -40 dBFS). Full-scale noise drives a VAD's recurrent state to saturation,
# where a healthy int8 variant drifts as far as a broken one: on silero-vad, healthy int8 gives
# rel_l2 0.33-0.42 at sigma 0.1 and 0.014-0.036 at 0.01, where quantizing its reparam conv
# (a quantizer bug) gives 0.54-0.56 and fp16 0.001 (5 seeds, batch 4).
WAVEFORM_SIGMA = 0.01

_TOKEN_TYPES = re.compile(r"token_type|segment_ids|type_ids", re.I)
_POSITIONS = re.compile(r"(^|[._/-])(position_ids|pos_ids|positions?)$", re.I)
_PAST = re.compile(r"(^|[._/-])(past|cache|kv_cache|pkv)", re.I)
_BATCH = re.compile(r"batch", re.I)
_STATE = re.compile(r"(^|[._/-])(state|h0|c0|hx|cx)$", re.I)
_SAMPLE_RATE = re.compile(r"^(sr|sample_?rate|sampling_?rate)$", re.I)


@dataclass(frozen=True)
class InputRole:
    """One input's role; ``rows``: the size of the table an index input reads (ids are drawn
    in ``[0, rows)``); ``tie``: the (input, axis) whose size a length input holds."""

    kind: str
    rows: int | None = None
    tie: tuple[str, int] | None = None

    def describe(self) -> str:
        if self.kind == INDICES:
            return f"ids in [0, {self.rows}) (rows of the table they index)"
        if self.kind == LENGTHS and self.tie is not None:
            return f"full length of {self.tie[0]} axis {self.tie[1]}"
        return {
            MASK: "attention mask: ones",
            TOKEN_TYPES: "token types: zeros",
            POSITIONS: "positions: 0, 1, 2, …",
            PAST: "past key/value: uniform",
            SAMPLE_RATE: f"sample rate: {SAMPLE_RATE_HZ} Hz",
            STATE: "recurrent state: zeros (a stream's start)",
            WAVEFORM: f"waveform: quiet noise (normal, sigma {WAVEFORM_SIGMA:g}), "
            f"{WAVEFORM_CHUNK} samples per row",
        }.get(self.kind, "uniform")


def is_integer(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def input_roles(
    specs: Sequence[TensorSpec], table_rows: Mapping[str, int] | None = None
) -> dict[str, InputRole]:
    """The role of every input in ``specs``; ``table_rows``: rows of the table each index
    input reads (:func:`pytest_onnxparity.onnxfile.index_tables.index_table_sizes`)."""
    rows = table_rows or {}
    roles: dict[str, InputRole] = {}
    audio = any(_is_sample_rate(spec) for spec in specs)
    for spec in specs:
        name, dtype = spec.name, spec.dtype
        if is_attention_mask_name(name) and (
            is_integer(dtype) or is_float(dtype) or dtype == "bool"
        ):
            roles[name] = InputRole(MASK)
        elif is_integer(dtype) and _TOKEN_TYPES.search(name):
            roles[name] = InputRole(TOKEN_TYPES)
        elif is_integer(dtype) and _POSITIONS.search(name):
            roles[name] = InputRole(POSITIONS)
        elif is_integer(dtype) and name in rows:
            roles[name] = InputRole(INDICES, rows=rows[name])
        elif is_float(dtype) and _PAST.search(name):
            roles[name] = InputRole(PAST)
        elif _is_sample_rate(spec):
            roles[name] = InputRole(SAMPLE_RATE)
        elif audio and _is_waveform(spec):
            roles[name] = InputRole(WAVEFORM)
        elif is_float(dtype) and _STATE.search(name) and "hidden" not in name.lower():
            roles[name] = InputRole(STATE)
        elif (tie := _length_tie(spec, specs)) is not None:
            roles[name] = InputRole(LENGTHS, tie=tie)
        else:
            roles[name] = InputRole(PLAIN)
    return roles


def _is_sample_rate(spec: TensorSpec) -> bool:
    """An integer scalar (or one-element vector) named ``sr`` / ``sample_rate``."""
    shape = spec.shape
    single = shape is not None and (len(shape) == 0 or (len(shape) == 1 and shape[0] in (1, None)))
    return is_integer(spec.dtype) and single and bool(_SAMPLE_RATE.match(spec.name))


def _is_waveform(spec: TensorSpec) -> bool:
    """Beside a sample rate, a float input of rank 1 or 2 whose last axis is dynamic: samples."""
    shape = spec.shape or ()
    return is_float(spec.dtype) and len(shape) in (1, 2) and not isinstance(shape[-1], int)


def waveform_symbols(specs: Sequence[TensorSpec], roles: Mapping[str, InputRole]) -> set[str]:
    """Named dims on the sample axis of a waveform input (sized :data:`WAVEFORM_CHUNK`)."""
    return {
        spec.shape[-1]
        for spec in specs
        if spec.shape
        and isinstance(spec.shape[-1], str)
        and roles.get(spec.name, InputRole(PLAIN)).kind == WAVEFORM
    }


def _length_tie(spec: TensorSpec, specs: Sequence[TensorSpec]) -> tuple[str, int] | None:
    """An integer ``*len*`` input of rank <= 1 holds the full length of the first float input's
    first dynamic non-batch axis: random lengths would mask most of the signal (a zero length
    zeroes both outputs, and zeros always agree)."""
    if "len" not in spec.name.lower() or len(spec.shape or ()) > 1 or not is_integer(spec.dtype):
        return None
    for other in specs:
        if is_float(other.dtype):
            for axis, dim in enumerate(other.shape or ()):
                if axis > 0 and not isinstance(dim, int):
                    return (other.name, axis)
    return None


def batch_symbols(specs: Sequence[TensorSpec]) -> set[str]:
    """Named dims that are a batch: axis 0 of every input using them, or named ``*batch*``."""
    first: dict[str, bool] = {}
    for spec in specs:
        for axis, dim in enumerate(spec.shape or ()):
            if isinstance(dim, str):
                first[dim] = first.get(dim, True) and axis == 0
    return {dim for dim, always_first in first.items() if always_first or _BATCH.search(dim)}


def has_dynamic_batch(specs: Sequence[TensorSpec]) -> bool:
    """Some input has a dynamic axis 0 (named or not) that is a batch."""
    symbols = batch_symbols(specs)
    return any(spec.shape and (spec.shape[0] is None or spec.shape[0] in symbols) for spec in specs)


def past_symbols(specs: Sequence[TensorSpec], roles: Mapping[str, InputRole]) -> set[str]:
    """Named dims used only by past key/value inputs (the past length), batch dims aside."""
    in_past: set[str] = set()
    elsewhere: set[str] = set()
    for spec in specs:
        names = {dim for dim in spec.shape or () if isinstance(dim, str)}
        (in_past if roles.get(spec.name, InputRole(PLAIN)).kind == PAST else elsewhere).update(
            names
        )
    return in_past - elsewhere - batch_symbols(specs)


def expression_size(dim: str, sizes: Mapping[str, int]) -> int | None:
    """The size of a dim written as a sum (``past_sequence_length + 1``, ``past + sequence``),
    from the sizes of its terms; None when a term is unknown."""
    if "+" not in dim:
        return None
    total = 0
    for term in (part.strip() for part in dim.split("+")):
        if term.isdecimal():
            total += int(term)
        elif term in sizes:
            total += sizes[term]
        else:
            return None
    return total
