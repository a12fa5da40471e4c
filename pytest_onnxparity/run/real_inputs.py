"""Real input sets: files, a conftest hook, or an upstream graph's outputs.

Real sets are checked against the graph's signature (:func:`check_input_set`) and combined with
synthesized ones (:func:`combine_input_sets`); each set becomes its own test id, so a name may
appear once per graph. A downstream graph's inputs can come from running an upstream graph's
reference (``inputs_from``, :func:`run_upstream`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.onnxfile.signature import TensorSpec
from pytest_onnxparity.references.base import Reference, ReferenceError
from pytest_onnxparity.references.config import ReferenceSpec, UpstreamLink
from pytest_onnxparity.references.recorded import (
    RecordedDataError,
    read_recorded,
    recorded_set_names,
)
from pytest_onnxparity.runtime.inputs import DEFAULT_SET, InputSet

HOOK_SET = "hook"


def check_input_set(inputs: InputSet, specs: Sequence[TensorSpec], where: str) -> None:
    """Check a real input set fits the graph's inputs: names, dtypes, ranks and fixed dims."""
    expected = {spec.name: spec for spec in specs}
    missing = [name for name in expected if name not in inputs.arrays]
    extra = [name for name in inputs.arrays if name not in expected]
    if missing or extra:
        raise ReferenceError(
            f"{where}: input set {inputs.name!r} has inputs {sorted(inputs.arrays)} but the "
            f"graph takes {list(expected)}; rename or add the arrays"
        )
    for name, spec in expected.items():
        array = np.asarray(inputs.arrays[name])
        if spec.dtype not in (str(array.dtype), "bfloat16"):
            raise ReferenceError(
                f"{where}: input set {inputs.name!r} input {name!r} is {array.dtype}, the graph "
                f"takes {spec.dtype}; save it as {spec.dtype}"
            )
        if spec.shape is None:
            continue
        fixed_ok = all(
            not isinstance(dim, int) or dim == size
            for dim, size in zip(spec.shape, array.shape, strict=False)
        )
        if array.ndim != len(spec.shape) or not fixed_ok:
            raise ReferenceError(
                f"{where}: input set {inputs.name!r} input {name!r} has shape "
                f"{list(array.shape)}, the graph takes {spec.describe()}; reshape it"
            )


def read_input_data(spec: ReferenceSpec, inputs: Sequence[TensorSpec]) -> list[InputSet]:
    """Real input sets from ``spec.input_data`` (``.npz`` files or test-data folders; outputs
    recorded in them are ignored), checked against the graph's inputs.

    Sets are renamed after their file so they cannot clash with synthesized ones: the flat
    ``default`` set of ``clips.npz`` becomes ``clips``, its set ``a`` becomes ``clips.a``.
    """
    names = [spec_.name for spec_ in inputs]
    sets = []
    for path in spec.input_data:
        try:
            recorded = read_recorded(path, names)
        except RecordedDataError as error:
            raise ReferenceError(str(error)) from None
        for item in recorded:
            renamed = dataclasses.replace(item.inputs, name=_file_set_name(path, item.name))
            check_input_set(renamed, inputs, f"{spec.where} input_data {path}")
            sets.append(renamed)
    return combine_input_sets(sets)


def input_data_names(spec: ReferenceSpec) -> list[str]:
    """The names :func:`read_input_data` will give, read without loading any array."""
    names = []
    for path in spec.input_data:
        try:
            names += [_file_set_name(path, name) for name in recorded_set_names(path)]
        except RecordedDataError as error:
            raise ReferenceError(str(error)) from None
    return names


def _file_set_name(path: Path, set_name: str) -> str:
    return path.stem if set_name == DEFAULT_SET else f"{path.stem}.{set_name}"


def input_sets_from_hook(graph: str, returned: Any, where: str) -> list[InputSet]:
    """Input sets from what a user hook returned for ``graph``: one ``{input: array}`` mapping
    (one set named ``hook``, so it cannot clash with the synthesized ``default``), a
    ``{set_name: {input: array}}`` mapping, or a list of ``{input: array}`` mappings (sets
    ``hook0``, ``hook1``, ...)."""
    if isinstance(returned, Mapping) and returned:
        if all(isinstance(value, Mapping) for value in returned.values()):
            named = {str(name): value for name, value in returned.items()}
        else:
            named = {HOOK_SET: returned}
    elif isinstance(returned, (list, tuple)) and all(isinstance(v, Mapping) for v in returned):
        named = {f"{HOOK_SET}{index}": value for index, value in enumerate(returned)}
    else:
        raise ReferenceError(
            f"{where}: the input hook returned {type(returned).__name__} for {graph!r}; return "
            "{input_name: array}, {set_name: {input_name: array}} or a list of such mappings"
        )
    sets = []
    for name, arrays in named.items():
        if not arrays:
            raise ReferenceError(f"{where}: hook input set {name!r} for {graph!r} is empty")
        sets.append(
            InputSet(
                name=name,
                source=f"hook {where}",
                seed=None,
                dims={},
                arrays={str(k): np.asarray(v) for k, v in arrays.items()},
            )
        )
    return sets


def combine_input_sets(*groups: Sequence[InputSet]) -> list[InputSet]:
    """Concatenate input-set lists (synthesized, files, hook) in order; a name may appear once,
    because references cache and recordings are keyed by it."""
    combined: list[InputSet] = []
    seen: dict[str, str] = {}
    for group in groups:
        for inputs in group:
            if inputs.name in seen:
                raise ReferenceError(
                    f"input set {inputs.name!r} comes from both {seen[inputs.name]} and "
                    f"{inputs.source}; rename one of them"
                )
            seen[inputs.name] = inputs.source
            combined.append(inputs)
    return combined


def run_upstream(
    link: UpstreamLink,
    upstream: Reference,
    upstream_sets: Sequence[InputSet],
    downstream_inputs: Sequence[TensorSpec],
    extra_arrays: Mapping[str, np.ndarray] | None = None,
) -> list[InputSet]:
    """The downstream graph's input sets, one per upstream set, from the upstream reference.

    Each downstream input takes, in order: the upstream value named in ``link.map``, the
    upstream output of the same name, the upstream input of the same name (a mask or lengths
    passed through), then ``extra_arrays`` (e.g. synthesized token ids). Float values are cast
    to the input's float dtype; the sets keep the upstream set names.
    """
    extra = dict(extra_arrays or {})
    where = f"inputs_from {link.upstream} -> {link.graph}"
    produced = []
    for upstream_inputs in upstream_sets:
        outputs = upstream.outputs(upstream_inputs)
        arrays: dict[str, np.ndarray] = {}
        for spec in downstream_inputs:
            source = link.map.get(spec.name, spec.name)
            if source in outputs:
                value = outputs[source]
            elif source in upstream_inputs.arrays:
                value = upstream_inputs.arrays[source]
            elif spec.name in extra and spec.name not in link.map:
                value = extra[spec.name]
            else:
                raise ReferenceError(
                    f"{where}: no value for {link.graph} input {spec.name!r} ({link.upstream} "
                    f"gives outputs {sorted(outputs)} and inputs "
                    f"{sorted(upstream_inputs.arrays)}); add it to map or supply it as an "
                    "extra input"
                )
            arrays[spec.name] = _cast_to(value, spec, where)
        unknown = [name for name in link.map if name not in {s.name for s in downstream_inputs}]
        if unknown:
            raise ReferenceError(
                f"{where}: map names {unknown}, which are not inputs of {link.graph} "
                f"({[s.name for s in downstream_inputs]}); fix map"
            )
        produced.append(
            InputSet(
                name=upstream_inputs.name,
                source=f"{link.upstream} outputs ({upstream.description})",
                seed=upstream_inputs.seed,
                dims=upstream_inputs.dims,
                arrays=arrays,
                synthesized=upstream_inputs.synthesized,
            )
        )
    return produced


def _cast_to(value: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    array = np.asarray(value)
    if spec.dtype == str(array.dtype) or spec.dtype == "bfloat16":
        return array
    wanted = np.dtype(spec.dtype) if spec.dtype != "str" else None
    if (
        wanted is not None
        and np.issubdtype(wanted, np.floating)
        and np.issubdtype(array.dtype, np.floating)
    ):
        return array.astype(wanted)
    raise ReferenceError(
        f"{where}: {spec.name!r} is {array.dtype} upstream but the graph takes {spec.dtype}; "
        "map it to a value of the right type"
    )
