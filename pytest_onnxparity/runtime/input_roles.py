"""What each graph input is, read from the graph and its names, so synthesized inputs mean
something: an attention mask of ones, token types of zero, positions 0..n-1, token ids inside
the table they index, lengths as long as their signal, past keys/values with a past length.

Random integers in [0, 16) crash a BERT reference (its token-type table has 2 rows) and a random
attention mask overflows an additive mask into NaN; roles avoid both. A config rule for an input
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
PLAIN = "plain"

_TOKEN_TYPES = re.compile(r"token_type|segment_ids|type_ids", re.I)
_POSITIONS = re.compile(r"(^|[._/-])(position_ids|pos_ids|positions?)$", re.I)
_PAST = re.compile(r"(^|[._/-])(past|cache|kv_cache|pkv)", re.I)
_BATCH = re.compile(r"batch", re.I)


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
        elif (tie := _length_tie(spec, specs)) is not None:
            roles[name] = InputRole(LENGTHS, tie=tie)
        else:
            roles[name] = InputRole(PLAIN)
    return roles


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
