"""Synthesized inputs: reproducible arrays built from a graph's input signature.

Each (graph, input set) gets its own seed derived from the run's seed, so the reference and every
variant see identical arrays, and a rerun with the same seed reproduces them exactly.
"""

from __future__ import annotations

import itertools
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pytest_onnxparity.config.project import InputRule
from pytest_onnxparity.onnxfile.signature import TensorSpec

DEFAULT_SET = "default"


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


@dataclass(frozen=True)
class InputSet:
    """One set of named input arrays and how it was made."""

    name: str
    source: str
    seed: int | None
    dims: Mapping[str, int]
    arrays: Mapping[str, np.ndarray] = field(repr=False, compare=False)
    ties: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "seed": self.seed,
            "dims": dict(self.dims),
            "ties": dict(self.ties),
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


def set_name(point: Mapping[str, int]) -> str:
    return "-".join(f"{name}={size}" for name, size in point.items()) or DEFAULT_SET


def synthesize(
    graph: str,
    specs: Sequence[TensorSpec],
    plan: InputPlan,
    rules: Mapping[str, InputRule],
    point: Mapping[str, int] | None = None,
) -> InputSet:
    """Arrays for every input in ``specs``; ``point`` fixes swept dims for this set."""
    point = dict(point or {})
    name = set_name(point)
    seed = (plan.seed + zlib.crc32(f"{graph}/{name}".encode())) % (2**32)
    rng = np.random.default_rng(seed)
    unknown_rules = set(rules) - {spec.name for spec in specs}
    if unknown_rules:
        raise InputError(
            f"graph {graph!r}: config has rules for unknown input(s) {sorted(unknown_rules)}; "
            f"inputs are {[spec.name for spec in specs]}"
        )
    dims = {**_symbol_defaults(specs, plan.default_dim), **plan.dims, **point}
    resolved: dict[str, int] = {}
    shapes = {spec.name: _shape(spec, dims, plan.default_dim, resolved) for spec in specs}
    check_input_budget(graph, specs, shapes, resolved)
    arrays: dict[str, np.ndarray] = {}
    ties: dict[str, str] = {}
    for spec in specs:
        rule = rules.get(spec.name) or _length_tie(spec, specs) or InputRule()
        if rule.tie is not None:
            ties[spec.name] = f"{rule.tie[0]}:{rule.tie[1]}"
        arrays[spec.name] = _fill(graph, spec, shapes[spec.name], rule, plan, rng, shapes)
    return InputSet(
        name=name, source="synthesized", seed=seed, dims=resolved, arrays=arrays, ties=ties
    )


def input_budget_bytes() -> int:
    """The most one synthesized input set may take: 4 GB, or a quarter of the machine's memory
    when that is less (the reference, the variant and the comparison need memory too)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 16 * 10**9
    return min(4 * 10**9, max(physical // 4, 10**8))


def check_input_budget(
    graph: str,
    specs: Sequence[TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    resolved: Mapping[str, int],
    budget: int | None = None,
) -> None:
    """Refuse, before allocating, an input set larger than the budget (a huge static dim, or a
    ``--parity-dim`` typed with a zero too many): numpy would fail deep inside, or the machine
    would swap."""
    budget = input_budget_bytes() if budget is None else budget
    sizes = {
        spec.name: math.prod(shapes[spec.name]) * _itemsize(spec.dtype)
        for spec in specs
        if spec.name in shapes
    }
    if sum(sizes.values()) <= budget:
        return
    largest = max(sizes, key=lambda name: sizes[name])
    spec = next(spec for spec in specs if spec.name == largest)
    named = [dim for dim in spec.shape or () if isinstance(dim, str) and dim in resolved]
    if named:
        fix = ", ".join(f"{dim}={resolved[dim]}" for dim in named)
        fix = f"set smaller sizes with --parity-dim NAME=SIZE (now {fix}) or [dims] in parity.toml"
    else:
        fix = "its shape is static: supply real inputs for this graph ([references] input_data)"
    raise InputError(
        f"graph {graph!r}: input {largest!r} of shape {list(shapes[largest])} ({spec.dtype}) "
        f"needs {_gb(sum(sizes.values()))} for one input set, above the {_gb(budget)} budget; "
        f"{fix}"
    )


def _itemsize(dtype: str) -> int:
    try:
        return np.dtype(dtype if dtype != "bfloat16" else "float32").itemsize
    except TypeError:
        return 8


def _gb(size: int) -> str:
    return f"{size / 1e9:.3g} GB"


def _length_tie(spec: TensorSpec, specs: Sequence[TensorSpec]) -> InputRule | None:
    """An integer ``*len*`` input of rank <= 1 defaults to the full length of the first float
    input's first dynamic non-batch axis: random lengths would mask most of the signal (a zero
    length zeroes both outputs, and zeros always agree)."""
    if "len" not in spec.name.lower() or len(spec.shape or ()) > 1:
        return None
    if not spec.dtype.startswith(("int", "uint")):
        return None
    for other in specs:
        if other.dtype.startswith(("float", "bfloat")):
            for axis, dim in enumerate(other.shape or ()):
                if axis > 0 and not isinstance(dim, int):
                    return InputRule(tie=(other.name, axis))
    return None


def _symbol_defaults(specs: Sequence[TensorSpec], default_dim: int) -> dict[str, int]:
    """One size per named dim: 1 if it is axis 0 of every input using it (a batch), else
    ``default_dim``, so an input of shape [T, F] and one of [1, T] agree on T."""
    defaults: dict[str, int] = {}
    for spec in specs:
        for axis, dim in enumerate(spec.shape or ()):
            if isinstance(dim, str) and defaults.get(dim) != default_dim:
                defaults[dim] = 1 if axis == 0 else default_dim
    return defaults


def _shape(
    spec: TensorSpec, dims: Mapping[str, int], default_dim: int, resolved: dict[str, int]
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
        # Axis 0 of a dynamic input is almost always the batch: one sample keeps runs cheap.
        fallback = 1 if axis == 0 else default_dim
        size = dims.get(dim, fallback) if isinstance(dim, str) else fallback
        if isinstance(dim, str):
            resolved[dim] = size
        shape.append(size)
    return tuple(shape)


def _fill(
    graph: str,
    spec: TensorSpec,
    shape: tuple[int, ...],
    rule: InputRule,
    plan: InputPlan,
    rng: np.random.Generator,
    shapes: Mapping[str, tuple[int, ...]],
) -> np.ndarray:
    dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype("float32")
    if rule.tie is not None:
        source, axis = rule.tie
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
        return np.full(shape, source_shape[axis], dtype=dtype)
    if rule.value is not None:
        return np.full(shape, rule.value, dtype=dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        low, high = rule.range or plan.int_range
        return rng.integers(int(low), max(int(high), int(low) + 1), size=shape).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        low, high = rule.range or plan.float_range
        return rng.uniform(low, high, size=shape).astype(dtype)
    raise InputError(
        f"graph {graph!r}: cannot synthesize input {spec.name!r} of type {spec.dtype}; "
        "supply real inputs for this graph"
    )
