"""Synthesized inputs: reproducible arrays built from a graph's input signature and roles.

Each (graph, input set) gets its own seed derived from the run's seed, so the reference and every
variant see identical arrays, and a rerun with the same seed reproduces them exactly.

What fills an input, strongest first: its config rule (range, value, tie), its role
(:mod:`pytest_onnxparity.runtime.input_roles`: masks of ones, token types of zero, positions,
ids inside their table, lengths tied to their signal, past keys/values), then the plan's ranges.

Several samples by default: a dynamic batch axis holds ``plan.batch`` rows; a graph without one
gets ``plan.draws`` seeded sets (``draw2``, ``draw3``…) beside its first. A graph with an
attention mask also gets a ``padded`` set: rows of decreasing length, the rest padding.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pytest_onnxparity.config.project import InputRule
from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.runtime.input_budget import over_budget
from pytest_onnxparity.runtime.input_roles import (
    INDICES,
    LENGTHS,
    MASK,
    POSITIONS,
    SAMPLE_RATE,
    SAMPLE_RATE_HZ,
    STATE,
    TOKEN_TYPES,
    WAVEFORM,
    WAVEFORM_CHUNK,
    WAVEFORM_SIGMA,
    InputRole,
    batch_symbols,
    expression_size,
    has_dynamic_batch,
    input_roles,
    past_symbols,
    waveform_symbols,
)

DEFAULT_SET = "default"
PADDED = "padded"
DRAW = "draw"
PAD_ID = 0  # BERT's [PAD], and a valid row of any table


class InputError(ValueError):
    """Inputs cannot be built as configured; the message names the input and the fix."""


@dataclass(frozen=True)
class InputPlan:
    """How to synthesize inputs for every graph of a run."""

    seed: int = 0
    float_range: tuple[float, float] = (-1.0, 1.0)
    int_range: tuple[int, int] = (0, 16)
    dims: Mapping[str, int] = field(default_factory=dict)
    default_dim: int = 16
    sweep: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # Rows on a dynamic batch axis; seeded sets for a graph without one.
    batch: int = 4
    draws: int = 3
    past_length: int = 8


@dataclass(frozen=True)
class InputSet:
    """One set of named input arrays and how it was made.

    ``synthesized``: drawn by the plugin (not real data, nor computed from real data);
    ``fills``: how each synthesized input was filled.
    """

    name: str
    source: str
    seed: int | None
    dims: Mapping[str, int]
    arrays: Mapping[str, np.ndarray] = field(repr=False, compare=False)
    ties: Mapping[str, str] = field(default_factory=dict)
    synthesized: bool = False
    fills: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "synthesized": self.synthesized,
            "seed": self.seed,
            "dims": dict(self.dims),
            "ties": dict(self.ties),
            "fills": dict(self.fills),
            "shapes": {name: list(array.shape) for name, array in self.arrays.items()},
            "dtypes": {name: str(array.dtype) for name, array in self.arrays.items()},
        }


def symbolic_dims(specs: Sequence[TensorSpec]) -> list[str]:
    """Named dynamic dimensions of ``specs`` in first-seen order."""
    names: dict[str, None] = {}
    for spec in specs:
        for dim in spec.shape or ():
            if isinstance(dim, str):
                names.setdefault(dim)
    return list(names)


def sweep_points(specs: Sequence[TensorSpec], plan: InputPlan) -> list[dict[str, int]]:
    """One dim assignment per input set: the cartesian product of the sweeps this graph uses."""
    present = set(symbolic_dims(specs))
    swept = [(name, sizes) for name, sizes in plan.sweep.items() if name in present]
    if not swept:
        return [{}]
    names = [name for name, _ in swept]
    combos = itertools.product(*(sizes for _, sizes in swept))
    return [dict(zip(names, combo, strict=True)) for combo in combos]


def set_name(point: Mapping[str, int], pattern: str = "") -> str:
    """``default``, ``T=32``; with a pattern ``padded``, ``T=32-padded``, ``draw2``…"""
    base = "-".join(f"{name}={size}" for name, size in point.items())
    if not pattern:
        return base or DEFAULT_SET
    return f"{base}-{pattern}" if base else pattern


def patterns(
    specs: Sequence[TensorSpec], plan: InputPlan, rules: Mapping[str, InputRule]
) -> list[str]:
    """The synthesized sets of one sweep point: ``""`` (the first), ``padded`` where an
    attention mask of rank 2 is not set by a rule, ``draw2``… where no batch axis is dynamic."""
    found = [""]
    roles = input_roles(specs)
    for spec in specs:
        rule = rules.get(spec.name)
        ones = rule is None or (rule.value == 1 and rule.range is None and rule.tie is None)
        if roles[spec.name].kind == MASK and len(spec.shape or ()) == 2 and ones:
            found.append(PADDED)
            break
    if not has_dynamic_batch(specs):
        found += [f"{DRAW}{number}" for number in range(2, plan.draws + 1)]
    return found


def synthesize(
    graph: str,
    specs: Sequence[TensorSpec],
    plan: InputPlan,
    rules: Mapping[str, InputRule],
    point: Mapping[str, int] | None = None,
    table_rows: Mapping[str, int] | None = None,
    pattern: str = "",
) -> InputSet:
    """Arrays for every input in ``specs``; ``point`` fixes swept dims for this set;
    ``table_rows`` bounds index inputs (see :func:`input_roles`); ``pattern``: ``""``,
    ``padded`` or ``drawN`` (see :func:`patterns`)."""
    point = dict(point or {})
    name = set_name(point, pattern)
    seed = (plan.seed + zlib.crc32(f"{graph}/{name}".encode())) % (2**32)
    rng = np.random.default_rng(seed)
    unknown_rules = set(rules) - {spec.name for spec in specs}
    if unknown_rules:
        raise InputError(
            f"graph {graph!r}: config has rules for unknown input(s) {sorted(unknown_rules)}; "
            f"inputs are {[spec.name for spec in specs]}"
        )
    roles = input_roles(specs, table_rows)
    dims = {**_symbol_defaults(specs, plan, roles), **plan.dims, **point}
    resolved: dict[str, int] = {}
    shapes = {spec.name: _shape(spec, dims, plan, resolved) for spec in specs}
    check_input_budget(graph, specs, shapes, resolved)
    arrays: dict[str, np.ndarray] = {}
    ties: dict[str, str] = {}
    fills: dict[str, str] = {}
    for spec in specs:
        rule, role = rules.get(spec.name), roles[spec.name]
        if rule is None and role.kind == LENGTHS:
            rule = InputRule(tie=role.tie)
        if rule is not None and rule.tie is not None:
            ties[spec.name] = f"{rule.tie[0]}:{rule.tie[1]}"
        filled = _fill(graph, spec, shapes[spec.name], rule, role, plan, rng, shapes)
        arrays[spec.name], fills[spec.name] = filled
    if pattern == PADDED:
        _pad(arrays, fills, roles)
    return InputSet(
        name=name,
        source="synthesized",
        seed=seed,
        dims=resolved,
        arrays=arrays,
        ties=ties,
        synthesized=True,
        fills=fills,
    )


def check_input_budget(
    graph: str,
    specs: Sequence[TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    resolved: Mapping[str, int],
    budget: int | None = None,
) -> None:
    """Refuse, before allocating, an input set larger than the budget (see
    :func:`~pytest_onnxparity.runtime.input_budget.over_budget`)."""
    problem = over_budget(graph, specs, shapes, resolved, budget)
    if problem is not None:
        raise InputError(problem)


def _symbol_defaults(
    specs: Sequence[TensorSpec], plan: InputPlan, roles: Mapping[str, InputRole]
) -> dict[str, int]:
    """One size per named dim: ``plan.batch`` for a batch, ``plan.past_length`` for a dim only
    past keys/values use, a waveform chunk for the sample axis of audio, else ``default_dim``
    (an input of shape [T, F] and one of [1, T] agree on T)."""
    batches, pasts = batch_symbols(specs), past_symbols(specs, roles)
    samples = waveform_symbols(specs, roles)
    defaults: dict[str, int] = {}
    for dim in symbolic_dims(specs):
        if "+" in dim:
            continue  # a sum of other dims (see expression_size)
        if dim in batches:
            defaults[dim] = plan.batch
        elif dim in pasts:
            defaults[dim] = plan.past_length
        elif dim in samples:
            defaults[dim] = WAVEFORM_CHUNK
        else:
            defaults[dim] = plan.default_dim
    return defaults


def _shape(
    spec: TensorSpec, dims: Mapping[str, int], plan: InputPlan, resolved: dict[str, int]
) -> tuple[int, ...]:
    if spec.shape is None:
        raise InputError(
            f"input {spec.name!r} has no declared shape; give the graph a shaped input or "
            "supply real inputs"
        )
    shape = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
            continue
        # An unnamed dynamic axis 0 is almost always the batch.
        fallback = plan.batch if axis == 0 else plan.default_dim
        if isinstance(dim, str):
            size = dims.get(dim)
            if size is None:
                size = expression_size(dim, dims) or fallback
            resolved[dim] = size
        else:
            size = fallback
        shape.append(size)
    return tuple(shape)


def _fill(
    graph: str,
    spec: TensorSpec,
    shape: tuple[int, ...],
    rule: InputRule | None,
    role: InputRole,
    plan: InputPlan,
    rng: np.random.Generator,
    shapes: Mapping[str, tuple[int, ...]],
) -> tuple[np.ndarray, str]:
    """The array of one input and how it was filled."""
    dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype("float32")
    if not (dtype == np.bool_ or np.issubdtype(dtype, np.number)):
        raise InputError(
            f"graph {graph!r}: cannot synthesize input {spec.name!r} of type {spec.dtype}; "
            "supply real inputs for this graph"
        )
    if rule is not None and rule.tie is not None:
        return _tied(graph, spec, shape, rule.tie, shapes, dtype)
    if rule is not None and rule.value is not None:
        return np.full(shape, rule.value, dtype=dtype), f"value {rule.value:g}"
    if rule is None or rule.range is None:
        by_role = _by_role(shape, role, dtype, rng)
        if by_role is not None:
            return by_role, role.describe()
    if dtype == np.bool_:
        return rng.random(shape) < 0.5, "random booleans"
    if np.issubdtype(dtype, np.integer):
        low, high = (rule.range if rule and rule.range else None) or plan.int_range
        high = max(int(high), int(low) + 1)
        array = rng.integers(int(low), high, size=shape).astype(dtype)
        return array, f"integers in [{int(low)}, {high})"
    low, high = (rule.range if rule and rule.range else None) or plan.float_range
    return rng.uniform(low, high, size=shape).astype(dtype), f"uniform in [{low:g}, {high:g})"


def _by_role(
    shape: tuple[int, ...],
    role: InputRole,
    dtype: np.dtype,
    rng: np.random.Generator,
) -> np.ndarray | None:
    if role.kind == MASK:
        return np.ones(shape, dtype=dtype)
    if role.kind == TOKEN_TYPES:
        return np.zeros(shape, dtype=dtype)
    if role.kind == POSITIONS and shape:
        return np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy()
    if role.kind == INDICES and role.rows is not None:
        return rng.integers(0, role.rows, size=shape).astype(dtype)
    if role.kind == STATE:
        return np.zeros(shape, dtype=dtype)
    if role.kind == SAMPLE_RATE:
        return np.full(shape, SAMPLE_RATE_HZ, dtype=dtype)
    if role.kind == WAVEFORM:
        return (rng.standard_normal(size=shape) * WAVEFORM_SIGMA).astype(dtype)
    return None  # past keys/values, lengths without a tie, plain inputs: the plan's ranges


def _tied(
    graph: str,
    spec: TensorSpec,
    shape: tuple[int, ...],
    tie: tuple[str, int],
    shapes: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
) -> tuple[np.ndarray, str]:
    source, axis = tie
    if source not in shapes:
        raise InputError(
            f"graph {graph!r}: input {spec.name!r} is tied to unknown input {source!r}; "
            f"inputs are {sorted(shapes)}"
        )
    source_shape = shapes[source]
    if not -len(source_shape) <= axis < len(source_shape):
        raise InputError(
            f"graph {graph!r}: input {spec.name!r} is tied to axis {axis} of {source!r}, "
            f"which has only {len(source_shape)} axes"
        )
    return np.full(shape, source_shape[axis], dtype=dtype), f"full length of {source}:{axis}"


def _pad(
    arrays: dict[str, np.ndarray], fills: dict[str, str], roles: Mapping[str, InputRole]
) -> None:
    """Padding at the end of each row of the attention mask: row ``i`` of ``B`` keeps
    ``ceil(S·(B−i)/(B+1))`` of ``S`` positions (16 → 13, 10, 7, 4 for a batch of 4); ids
    of the same shape hold the pad id there."""
    masks = [name for name, role in roles.items() if role.kind == MASK and arrays[name].ndim == 2]
    if not masks:
        return
    batch, length = arrays[masks[0]].shape
    keep = np.array(
        [max(1, math.ceil(length * (batch - row) / (batch + 1))) for row in range(batch)]
    )
    padding = np.arange(length)[None, :] >= keep[:, None]
    lengths = ", ".join(str(int(k)) for k in keep)
    for name in masks:
        if arrays[name].shape == padding.shape:
            arrays[name][padding] = 0
            fills[name] = f"attention mask: rows of {lengths} real positions of {length}, then 0"
    for name, role in roles.items():
        if role.kind in (INDICES, TOKEN_TYPES) and arrays[name].shape == padding.shape:
            arrays[name][padding] = PAD_ID
            fills[name] += f"; {PAD_ID} at padding"
