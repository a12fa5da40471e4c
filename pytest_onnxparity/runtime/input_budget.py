"""The memory one synthesized input set may take, checked before anything is allocated.

A huge static dim, or a ``--parity-dim`` typed with a zero too many, would make numpy fail deep
inside or the machine swap; the budget is 4 GB, or a quarter of the machine's memory when that
is less (the reference, the variant and the comparison need memory too). Pure numpy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from pytest_onnxparity.onnxfile.signature import TensorSpec


def input_budget_bytes() -> int:
    """The most one synthesized input set may take: 4 GB, or a quarter of the machine's memory
    when that is less."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 16 * 10**9
    return min(4 * 10**9, max(physical // 4, 10**8))


def over_budget(
    graph: str,
    specs: Sequence[TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    resolved: Mapping[str, int],
    budget: int | None = None,
) -> str | None:
    """Why the input set of these ``shapes`` is larger than ``budget`` (default
    :func:`input_budget_bytes`), naming its largest input and the fix; None when it fits."""
    budget = input_budget_bytes() if budget is None else budget
    sizes = {
        spec.name: math.prod(shapes[spec.name]) * _itemsize(spec.dtype)
        for spec in specs
        if spec.name in shapes
    }
    if sum(sizes.values()) <= budget:
        return None
    largest = max(sizes, key=lambda name: sizes[name])
    spec = next(spec for spec in specs if spec.name == largest)
    named = [dim for dim in spec.shape or () if isinstance(dim, str) and dim in resolved]
    if named:
        fix = ", ".join(f"{dim}={resolved[dim]}" for dim in named)
        fix = f"set smaller sizes with --parity-dim NAME=SIZE (now {fix}) or [dims] in parity.toml"
    else:
        fix = "its shape is static: supply real inputs for this graph ([references] input_data)"
    return (
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
