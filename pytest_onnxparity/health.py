"""Graph health: is each graph sound, and is it what the release claims, before numbers count.

One check per call of :func:`run_health_check`, named ``health:<check>``:

* ``checker``: ``onnx.checker`` full check from the file path (external data included, no 2 GiB
  protobuf copy), plus every external tensor's bytes present in its sidecar file.
* ``opset``: the ai.onnx opset and the IR version within configured bounds.
* ``domains``: every node's operator domain among ``allowed_domains``.
* ``initializers``: no NaN/Inf in float tensors; no weight that the variant made all-zero or
  constant where the reference's tensor is not (compared after dequantizing); all-zero weight
  matrices of a reference reported as warnings.
* ``structure``: no dangling node input, no unused initializer, the reference's graph inputs and
  outputs.
* ``outputs``: the graph's outputs on synthesized inputs hold no NaN/Inf and are not constant.

Models are read without external data; tensor values are streamed one at a time from their
sidecar files, so the checks hold at most one tensor pair in memory whatever the model's size.

Configuration: ``[tool.onnxparity.health]`` is owned here. :func:`parse_health_options` accepts
:data:`HEALTH_KEYS` and the coverage keys (:data:`pytest_onnxparity.coverage.COVERAGE_KEYS`,
read by ``parse_coverage_options``) and rejects every other key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.config import ConfigError
from pytest_onnxparity.coverage import (
    COVERAGE_KEYS,
    FLOAT_STORAGE,
    GraphIndex,
    WeightForm,
    float_element_types,
    iter_nodes,
    load_structure,
    locate_forms,
    node_label,
    reference_weights,
)
from pytest_onnxparity.results import CheckResult

HEALTH_CHECKS: tuple[str, ...] = (
    "checker",
    "opset",
    "domains",
    "initializers",
    "structure",
    "outputs",
)
HEALTH_KEYS = ("checks", "opset", "ir_version", "allowed_domains", "constant_output_ok")
"""The keys of ``[tool.onnxparity.health]`` that :func:`parse_health_options` reads."""

DEFAULT_DOMAIN = "ai.onnx"
PROTOBUF_LIMIT_BYTES = 2**31 - 1
CONFIG_TABLE = "[tool.onnxparity.health]"

# Offenders listed in a failure message and in ``details``, before "… N more".
_MESSAGE_ITEMS = 20
_DETAIL_ITEMS = 100

_MANTISSA_BITS = {"float64": 52, "float32": 23, "float16": 10, "bfloat16": 7}
_SMALLEST_SUBNORMAL = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24}


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthOptions:
    """What the health checks enforce. The defaults suit any model: every check runs, no opset,
    IR or domain constraint is enforced.

    ``opset`` and ``ir_version`` are inclusive ``(min, max)`` bounds on the ai.onnx opset and
    the IR version. ``allowed_domains`` lists operator domains (``"ai.onnx"`` or ``""`` for
    the default domain). ``constant_output_ok`` names outputs that may legitimately be
    constant; integer and bool outputs are never checked for constancy.
    """

    checks: tuple[str, ...] = HEALTH_CHECKS
    opset: tuple[int, int] | None = None
    ir_version: tuple[int, int] | None = None
    allowed_domains: tuple[str, ...] | None = None
    constant_output_ok: tuple[str, ...] = ()


def parse_health_options(raw: Mapping[str, Any], where: str) -> HealthOptions:
    """Validate the ``[tool.onnxparity.health]`` table; ``where`` names its source in errors.

    ``opset`` and ``ir_version`` take ``[min, max]`` or one integer (exactly that version).
    The coverage keys are accepted here and validated by ``parse_coverage_options``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
    allowed_keys = (*HEALTH_KEYS, *COVERAGE_KEYS)
    for key in raw:
        if key not in allowed_keys:
            raise ConfigError(
                f"{where}: unknown key {key!r}; allowed keys: {', '.join(allowed_keys)}"
            )
    checks = _string_tuple(raw, "checks", where, HEALTH_CHECKS)
    unknown = [check for check in checks if check not in HEALTH_CHECKS]
    if unknown:
        raise ConfigError(
            f"{where}: checks names unknown check {unknown[0]!r}; choose from "
            f"{', '.join(HEALTH_CHECKS)}"
        )
    domains = None
    if raw.get("allowed_domains") is not None:
        domains = tuple(_domain(d) for d in _string_tuple(raw, "allowed_domains", where, ()))
        if not domains:
            raise ConfigError(
                f"{where}: allowed_domains is empty, which no graph can meet; list domains "
                f'(e.g. ["ai.onnx"]) or remove the key to allow any'
            )
    return HealthOptions(
        checks=tuple(dict.fromkeys(checks)),
        opset=_version_bounds(raw, "opset", where),
        ir_version=_version_bounds(raw, "ir_version", where),
        allowed_domains=domains,
        constant_output_ok=_string_tuple(raw, "constant_output_ok", where, ()),
    )


def _string_tuple(
    raw: Mapping[str, Any], key: str, where: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    return tuple(value)


def _version_bounds(raw: Mapping[str, Any], key: str, where: str) -> tuple[int, int] | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        or value[0] > value[1]
    ):
        raise ConfigError(
            f"{where}: {key} must be a version or [min, max] with 1 <= min <= max "
            f"(e.g. {key} = [17, 21]), got {raw.get(key)!r}"
        )
    return (value[0], value[1])


def _domain(name: str) -> str:
    return DEFAULT_DOMAIN if name in ("", DEFAULT_DOMAIN) else name


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


class _Unreadable(Exception):
    """The model file cannot be read at all; the checker check says why."""


def run_health_check(
    check: str,
    model_path: Path,
    *,
    graph: str,
    variant: str,
    reference_path: Path | None,
    options: HealthOptions,
    run_outputs: Callable[[], Mapping[str, np.ndarray]] | None = None,
) -> CheckResult:
    """Run one health check of the graph at ``model_path``.

    ``reference_path`` is the graph's reference variant, or None when ``model_path`` is the
    reference itself (then the checks that compare with a reference only look at the model).
    ``run_outputs`` runs the model on synthesized inputs; the ``outputs`` check needs it.
    """
    if check not in HEALTH_CHECKS:
        raise ValueError(f"unknown health check {check!r}; choose from {', '.join(HEALTH_CHECKS)}")
    model_path = Path(model_path)
    try:
        if check == "checker":
            outcome = _check_checker(model_path)
        elif check == "opset":
            outcome = _check_opset(model_path, options)
        elif check == "domains":
            outcome = _check_domains(model_path, options)
        elif check == "initializers":
            outcome = _check_initializers(model_path, reference_path)
        elif check == "structure":
            outcome = _check_structure(model_path, reference_path)
        else:
            if run_outputs is None:
                raise ValueError("the outputs health check needs run_outputs")
            outcome = _check_outputs(model_path, run_outputs(), options)
    except _Unreadable as error:
        outcome = _Outcome([str(error)], {"unreadable": True})
    return CheckResult(
        check=f"health:{check}",
        graph=graph,
        variant=variant,
        passed=not outcome.problems,
        message="\n".join(outcome.problems),
        details=outcome.details,
        warnings=tuple(outcome.warnings),
    )


@dataclass(frozen=True)
class _Outcome:
    """What one check found: failure lines (none when it passed), details and warnings."""

    problems: Sequence[str]
    details: Mapping[str, Any]
    warnings: Sequence[str] = ()


def _load(path: Path) -> Any:
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise _Unreadable(f"{path}: no such model file; check --onnx-dir and the file name")
    try:
        return load_structure(path)
    except DecodeError as error:
        raise _Unreadable(
            f"{path}: not a readable ONNX protobuf ({error}); re-export it or re-download it "
            "(a Git LFS pointer file is a common cause)"
        ) from None


def _listed(lines: Sequence[str], limit: int = _MESSAGE_ITEMS) -> list[str]:
    shown = [f"  {line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"  … and {len(lines) - limit} more")
    return shown


# --------------------------------------------------------------------------------------------
# checker
# --------------------------------------------------------------------------------------------


def _check_checker(path: Path) -> _Outcome:
    import onnx

    if not path.is_file():
        raise _Unreadable(f"{path}: no such model file; check --onnx-dir and the file name")
    size = path.stat().st_size
    details: dict[str, Any] = {"file_bytes": size}
    if size > PROTOBUF_LIMIT_BYTES:
        return _Outcome(
            [
                f"{path}: the file is {size / 2**30:.2f} GiB, over protobuf's 2 GiB limit, so no "
                "tool can parse it; save the weights as external data (onnx.save_model(model, "
                "path, save_as_external_data=True))"
            ],
            details,
        )
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        text = [line.strip() for line in str(error).splitlines() if line.strip()]
        fix = "fix the export or quantization step that wrote it"
        if "topologically sorted" in str(error):
            # onnxruntime's float16 converter appends its Cast nodes after their consumers.
            fix = (
                "sort its nodes topologically (onnxruntime.transformers.onnx_model.OnnxModel"
                "(model).topological_sort(), then save)"
            )
        return _Outcome(
            [
                f"{path}: onnx.checker rejects the model; {fix}",
                *_listed(text or [type(error).__name__], 10),
            ],
            details,
        )
    short = _external_data_shortfalls(path, load_structure(path))
    details["external_data_problems"] = short[:_DETAIL_ITEMS]
    if short:
        return _Outcome(
            [
                f"{path}: {len(short)} tensors point past the end of their external data file; "
                "copy the complete sidecar file(s) next to the model (an interrupted download or "
                "a Git LFS pointer leaves them short)",
                *_listed(short),
            ],
            details,
        )
    return _Outcome([], details)


def _external_data_shortfalls(path: Path, model: Any) -> list[str]:
    from onnx import TensorProto, helper

    problems = []
    sizes: dict[Path, int] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        sidecar = path.parent / entries.get("location", "")
        if sidecar not in sizes:
            sizes[sidecar] = sidecar.stat().st_size if sidecar.is_file() else -1
        offset = int(entries.get("offset", 0))
        if "length" in entries:
            needed = int(entries["length"])
        else:
            try:
                itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            except (KeyError, TypeError, ValueError):
                continue
            needed = math.prod(tensor.dims) * itemsize
        if offset + needed > sizes[sidecar]:
            problems.append(
                f"{tensor.name}: needs bytes {offset}..{offset + needed} of {sidecar.name}, "
                f"which has {max(sizes[sidecar], 0)}"
            )
    return problems


# --------------------------------------------------------------------------------------------
# opset and domains
# --------------------------------------------------------------------------------------------


def _check_opset(path: Path, options: HealthOptions) -> _Outcome:
    model = _load(path)
    imports = {_domain(entry.domain): int(entry.version) for entry in model.opset_import}
    opset = imports.get(DEFAULT_DOMAIN)
    ir_version = int(model.ir_version)
    details = {
        "opset": opset,
        "ir_version": ir_version,
        "opset_imports": imports,
        "opset_bounds": None if options.opset is None else list(options.opset),
        "ir_version_bounds": None if options.ir_version is None else list(options.ir_version),
    }
    problems = []
    if options.opset is not None:
        low, high = options.opset
        if opset is None or not low <= opset <= high:
            problems.append(
                f"{path}: ai.onnx opset {opset} is outside opset [{low}, {high}]; re-export with "
                f"an opset from {low} to {high} (torch.onnx.export(..., opset_version=...)) or "
                f"change opset in {CONFIG_TABLE}"
            )
    if options.ir_version is not None:
        low, high = options.ir_version
        if not low <= ir_version <= high:
            problems.append(
                f"{path}: IR version {ir_version} is outside ir_version [{low}, {high}]; save the "
                f"model with an onnx release that writes IR {low} to {high} or change "
                f"ir_version in {CONFIG_TABLE}"
            )
    return _Outcome(problems, details)


def _check_domains(path: Path, options: HealthOptions) -> _Outcome:
    model = _load(path)
    counts: dict[str, int] = {}
    offenders = []
    allowed = (
        None if options.allowed_domains is None else set(map(_domain, options.allowed_domains))
    )
    for node in iter_nodes(model.graph):
        domain = _domain(node.domain)
        counts[domain] = counts.get(domain, 0) + 1
        if allowed is not None and domain not in allowed:
            offenders.append(node)
    details: dict[str, Any] = {
        "nodes_by_domain": dict(sorted(counts.items())),
        "allowed_domains": None if allowed is None else sorted(allowed),
        "offending_nodes": [
            {"name": node.name, "op_type": node.op_type, "domain": _domain(node.domain)}
            for node in offenders[:_DETAIL_ITEMS]
        ],
    }
    if not offenders:
        return _Outcome([], details)
    outside = sorted({_domain(node.domain) for node in offenders})
    return _Outcome(
        [
            f"{path}: {len(offenders)} nodes use domain(s) {', '.join(outside)} outside "
            f"allowed_domains {sorted(allowed or ())}; produce the variant without those "
            f"operators or add the domain to allowed_domains in {CONFIG_TABLE}",
            *_listed([node_label(node) for node in offenders]),
        ],
        details,
    )


# --------------------------------------------------------------------------------------------
# initializers
# --------------------------------------------------------------------------------------------


def _check_initializers(path: Path, reference_path: Path | None) -> _Outcome:
    model = _load(path)
    index = GraphIndex.of(model)
    floats = float_element_types()
    non_finite: list[dict[str, Any]] = []
    tensors = 0
    for name, tensor in _float_tensors(model, floats):
        tensors += 1
        values = _array(tensor, path.parent).astype(np.float64)
        nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if nan or inf:
            non_finite.append({"name": name, "nan": nan, "inf": inf, "size": int(values.size)})
    details: dict[str, Any] = {"float_tensors": tensors, "non_finite": non_finite[:_DETAIL_ITEMS]}
    problems: list[str] = []
    warnings: list[str] = []
    if non_finite:
        problems += [
            f"{path}: {len(non_finite)} float tensors hold NaN or Inf; fix the training "
            "checkpoint or the conversion step (an overflowing fp16 cast, a zero scale) that "
            "wrote them",
            *_listed(
                [
                    f"{item['name']}: {item['nan']} NaN, {item['inf']} Inf of {item['size']} "
                    f"values, read by {_readers(index, item['name'])}"
                    for item in non_finite
                ]
            ),
        ]
    if reference_path is None:
        zero_matrices = _zero_weight_matrices(index, path.parent)
        details["zero_weight_matrices"] = zero_matrices[:_DETAIL_ITEMS]
        warnings += [
            f"{path}: weight {name} is all zeros in the reference (read by "
            f"{_readers(index, name)}); check the checkpoint that was exported"
            for name in zero_matrices
        ]
        return _Outcome(problems, details, warnings)
    collapsed, compared, uncompared = _collapsed_weights(path, index, reference_path)
    details.update(
        compared=compared,
        collapsed=collapsed[:_DETAIL_ITEMS],
        uncompared=uncompared[:_DETAIL_ITEMS],
    )
    if collapsed:
        problems += [
            f"{path}: {len(collapsed)} weights are all-zero or constant where the reference "
            f"({reference_path.name}) varies, after dequantizing; re-run the quantizer and "
            "check its scales and zero points",
            *_listed(
                [
                    f"{item['reference']} -> {item['tensor']} as {item['storage']}: "
                    f"{item['kind']}, read by {_readers(index, item['tensor'])}; the reference "
                    f"spans [{item['reference_min']:.4g}, {item['reference_max']:.4g}]"
                    for item in collapsed
                ]
            ),
        ]
    return _Outcome(problems, details, warnings)


def _float_tensors(model: Any, floats: Mapping[int, str]) -> Iterator[tuple[str, Any]]:
    """Float initializers of every (sub)graph and float Constant values, by name."""
    yield from _graph_float_initializers(model.graph, floats)
    for node in iter_nodes(model.graph):
        if node.op_type == "Constant" and node.domain in ("", DEFAULT_DOMAIN):
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type in floats:
                    yield node.output[0], attribute.t
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from _graph_float_initializers(attribute.g, floats)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _graph_float_initializers(subgraph, floats)


def _graph_float_initializers(graph: Any, floats: Mapping[int, str]) -> Iterator[tuple[str, Any]]:
    for tensor in graph.initializer:
        if tensor.data_type in floats:
            yield tensor.name, tensor


def _array(tensor: Any, base_dir: Path) -> np.ndarray:
    """The tensor's values, read from its sidecar file without keeping them in the model."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL:
        detached = TensorProto()
        detached.CopyFrom(tensor)
        tensor = detached
    try:
        return numpy_helper.to_array(tensor, base_dir=str(base_dir))
    except (OSError, ValueError) as error:
        raise _Unreadable(
            f"{base_dir}: cannot read tensor {tensor.name!r} ({error}); copy the complete "
            "external data file(s) next to the model"
        ) from None


def _readers(index: GraphIndex, name: str, limit: int = 3) -> str:
    nodes = list(dict.fromkeys(node_label(node) for node, _ in index.consumers.get(name, ())))
    if not nodes:
        return "no node"
    more = f", … {len(nodes) - limit} more" if len(nodes) > limit else ""
    return ", ".join(nodes[:limit]) + more


def _zero_weight_matrices(index: GraphIndex, base_dir: Path) -> list[str]:
    zero = []
    for name in reference_weights(index):
        tensor = index.initializers[name]
        if len(tensor.dims) >= 2 and not np.any(_array(tensor, base_dir)):
            zero.append(name)
    return zero


def _collapsed_weights(
    path: Path, index: GraphIndex, reference_path: Path
) -> tuple[list[dict[str, Any]], int, list[dict[str, str]]]:
    """Variant forms that are all-zero or constant although their reference tensor is not.

    A form is flagged only when a faithful quantizer at its resolution (``step``, its largest
    quantization step) could not have produced it: all-zero while the reference reaches beyond
    one step, constant while the reference spans more than two. Zero biases and near-constant
    tensors (LayerNorm gains in fp16, say) therefore pass.
    """
    reference = GraphIndex.of(_load(reference_path))
    floats = float_element_types()
    names = [n for n, t in reference.initializers.items() if t.data_type in floats]
    forms = locate_forms(reference, index, names)
    collapsed: list[dict[str, Any]] = []
    uncompared: list[dict[str, str]] = []
    compared = 0
    for name in names:
        if not forms[name]:
            continue
        ref = _array(reference.initializers[name], reference_path.parent).astype(np.float64)
        if not ref.size or not np.all(np.isfinite(ref)) or not np.any(ref):
            continue
        peak, spread = float(np.max(np.abs(ref))), float(np.ptp(ref))
        for form in forms[name]:
            dequantized = _dequantize(form, index, path.parent)
            if dequantized is None:
                uncompared.append(
                    {"reference": name, "tensor": form.tensor, "storage": form.storage}
                )
                continue
            compared += 1
            values, step = dequantized
            if not np.all(np.isfinite(values)):
                continue  # reported as NaN/Inf already
            if not np.any(values) and peak > step:
                kind = "all zeros"
            elif values.size > 1 and np.ptp(values) == 0 and spread > 2 * step:
                kind = f"constant {float(values.flat[0]):.4g}"
            else:
                continue
            collapsed.append(
                {
                    "reference": name,
                    "tensor": form.tensor,
                    "storage": form.storage,
                    "kind": kind,
                    "reference_min": float(ref.min()),
                    "reference_max": float(ref.max()),
                    "step": float(step),
                }
            )
    return collapsed, compared, uncompared


# --------------------------------------------------------------------------------------------
# Dequantization
# --------------------------------------------------------------------------------------------

# (op type, data slot) -> (scale slot, zero-point slot, default axis). A scale slot of None means
# the op takes no scale: onnxruntime's quantizers store it as "<weight>_scale".
_QUANT_PARAMS: Mapping[tuple[str, int], tuple[int | None, int, int]] = {
    ("DequantizeLinear", 0): (1, 2, 1),
    ("QLinearMatMul", 0): (1, 2, -1),
    ("QLinearMatMul", 3): (4, 5, -1),
    ("QLinearConv", 3): (4, 5, 0),
    ("QGemm", 0): (1, 2, -1),
    ("QGemm", 3): (4, 5, -1),
    ("DynamicQuantizeMatMul", 1): (2, 3, -1),
    ("MatMulIntegerToFloat", 0): (2, 4, -1),
    ("MatMulIntegerToFloat", 1): (3, 5, -1),
    ("MatMulInteger", 0): (None, 2, -1),
    ("MatMulInteger", 1): (None, 3, -1),
    ("ConvInteger", 1): (None, 3, 0),
    ("GatherBlockQuantized", 0): (2, 3, 1),
}


def _dequantize(
    form: WeightForm, index: GraphIndex, base_dir: Path
) -> tuple[np.ndarray, float] | None:
    """The float values a form stands for and its resolution; None when its layout is unknown."""
    raw = _array(index.initializers[form.tensor], base_dir)
    if form.storage == FLOAT_STORAGE or form.storage in _MANTISSA_BITS:
        values = raw.astype(np.float64)
        dtype = float_element_types()[index.initializers[form.tensor].data_type]
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        step = max(peak * 2.0 ** -_MANTISSA_BITS[dtype], _SMALLEST_SUBNORMAL.get(dtype, 0.0))
        return values, step
    node = form.consumer
    if node.op_type == "MatMulNBits" and form.slot == 1:
        return _dequantize_matmul_nbits(node, raw, index, base_dir)
    params = _QUANT_PARAMS.get((node.op_type, form.slot))
    if params is None:
        return None
    scale_slot, zero_point_slot, axis = params
    attributes = _attributes(node)
    block_size = 0
    if node.op_type == "DequantizeLinear":
        axis, block_size = attributes.get("axis", 1), attributes.get("block_size", 0)
    elif node.op_type == "GatherBlockQuantized":
        axis, block_size = attributes.get("quantize_axis", 1), attributes.get("block_size", 128)
    scale_name = (
        _input(node, scale_slot) if scale_slot is not None else f"{form.reference_name}_scale"
    )
    scale = _initializer_values(index, scale_name, base_dir)
    if scale is None:
        return None
    zero_point = _initializer_values(index, _input(node, zero_point_slot), base_dir)
    if zero_point is None:
        zero_point = np.asarray(_default_zero_point(node, index.initializers[form.tensor]))
    data = raw.astype(np.float64)
    scale_full = _broadcast(scale, data.shape, axis, block_size)
    zero_point_full = _broadcast(zero_point, data.shape, axis, block_size)
    if scale_full is None or zero_point_full is None:
        return None
    return (data - zero_point_full) * scale_full, float(np.max(np.abs(scale)))


def _dequantize_matmul_nbits(
    node: Any, packed: np.ndarray, index: GraphIndex, base_dir: Path
) -> tuple[np.ndarray, float] | None:
    """The [K, N] weight of a com.microsoft MatMulNBits node.

    Layout (onnxruntime ContribOperators.md): B is uint8 [N, blocks, block_size * bits / 8],
    values packed low bits first; scales [N, blocks] (or flat); zero points packed like B per
    row, or float like scales, default 2^(bits - 1). Rows reordered by g_idx are not handled.
    """
    attributes = _attributes(node)
    k, n = attributes.get("K"), attributes.get("N")
    bits, block_size = attributes.get("bits", 4), attributes.get("block_size")
    if not (k and n and block_size) or bits not in (2, 4, 8) or _input(node, 4):
        return None
    blocks = -(-k // block_size)
    scales = _initializer_values(index, _input(node, 2), base_dir)
    if scales is None or scales.size != n * blocks:
        return None
    scales = scales.reshape(n, blocks)
    quantized = _unpack_bits(packed.reshape(n, -1), bits)[:, : blocks * block_size]
    zero_point_name = _input(node, 3)
    if not zero_point_name:
        zero_points = np.full((n, blocks), 2.0 ** (bits - 1))
    else:
        zero_point_tensor = index.initializers.get(zero_point_name)
        if zero_point_tensor is None:
            return None
        raw_zero_points = _array(zero_point_tensor, base_dir)
        if raw_zero_points.dtype == np.uint8:
            zero_points = _unpack_bits(raw_zero_points.reshape(n, -1), bits)[:, :blocks]
        else:
            zero_points = raw_zero_points.astype(np.float64).reshape(n, blocks)
    weights = (quantized.reshape(n, blocks, block_size) - zero_points[..., None]) * scales[
        ..., None
    ]
    return weights.reshape(n, -1)[:, :k].T, float(np.max(np.abs(scales)))


def _unpack_bits(packed: np.ndarray, bits: int) -> np.ndarray:
    """uint8 rows -> rows of ``bits``-wide unsigned values, low bits first, as float64."""
    packed = packed.astype(np.uint8)
    if bits == 8:
        return packed.astype(np.float64)
    mask = (1 << bits) - 1
    parts = [(packed >> (bits * i)) & mask for i in range(8 // bits)]
    return np.stack(parts, axis=-1).reshape(packed.shape[0], -1).astype(np.float64)


def _broadcast(
    param: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int
) -> np.ndarray | None:
    """Scale or zero point expanded to the data's shape: per tensor, per axis or per block."""
    param = param.astype(np.float64)
    if param.size == 1:
        return param.reshape(())
    if not shape:
        return None
    axis %= len(shape)
    if block_size:
        if param.ndim != len(shape):
            return None
        expanded = np.repeat(param, block_size, axis=axis)
        expanded = np.take(expanded, np.arange(shape[axis]), axis=axis)
        return expanded if expanded.shape == shape else None
    if param.ndim == 1 and param.shape[0] == shape[axis]:
        return param.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return param if param.shape == shape else None


def _default_zero_point(node: Any, data: Any) -> float:
    from onnx import TensorProto

    if node.op_type == "GatherBlockQuantized" and data.data_type == TensorProto.UINT4:
        return 8.0
    return 0.0


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _input(node: Any, slot: int) -> str:
    return node.input[slot] if slot < len(node.input) else ""


def _initializer_values(index: GraphIndex, name: str, base_dir: Path) -> np.ndarray | None:
    tensor = index.initializers.get(name) if name else None
    return None if tensor is None else _array(tensor, base_dir)


# --------------------------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------------------------


def _check_structure(path: Path, reference_path: Path | None) -> _Outcome:
    model = _load(path)
    index = GraphIndex.of(model)
    dangling = [
        f"input {name!r} of {node_label(node)}: no node, initializer or graph input makes it"
        for node, name in _dangling_inputs(model.graph, frozenset())
    ]
    outputs = {value.name for value in model.graph.output}
    unused = [
        f"initializer {tensor.name!r} ({_describe_tensor(tensor)}): no node reads it"
        for tensor in model.graph.initializer
        if tensor.name not in index.consumers and tensor.name not in outputs
    ]
    io_problems: list[str] = []
    io_warnings: list[str] = []
    if reference_path is not None:
        io_problems, io_warnings = _io_differences(model, _load(reference_path))
    details = {
        "dangling_inputs": dangling[:_DETAIL_ITEMS],
        "unused_initializers": unused[:_DETAIL_ITEMS],
        "io_differences": io_problems[:_DETAIL_ITEMS],
    }
    warnings = [f"{path}: {line}" for line in io_warnings]
    problems = []
    if dangling:
        problems += [
            f"{path}: {len(dangling)} node inputs are dangling; the step that edited the graph "
            "dropped their producers, so re-run it",
            *_listed(dangling),
        ]
    if unused:
        problems += [
            f"{path}: {len(unused)} initializers are unused; they bloat the file (a quantizer "
            "that kept the float weights?), so drop them (onnx.utils, onnxslim) or fix the step",
            *_listed(unused),
        ]
    if io_problems:
        problems += [
            f"{path}: graph inputs/outputs differ from the reference {reference_path}; keep the "
            "reference's signature when making the variant (keep_io_types=True for fp16)",
            *_listed(io_problems),
        ]
    return _Outcome(problems, details, warnings)


def _dangling_inputs(graph: Any, outer: frozenset[str]) -> Iterator[tuple[Any, str]]:
    available = set(outer)
    available.update(value.name for value in graph.input)
    available.update(tensor.name for tensor in graph.initializer)
    available.update(sparse.values.name for sparse in graph.sparse_initializer)
    available.update(name for node in graph.node for name in node.output if name)
    scope = frozenset(available)
    for node in graph.node:
        for name in node.input:
            if name and name not in scope:
                yield node, name
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from _dangling_inputs(attribute.g, scope)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _dangling_inputs(subgraph, scope)


def _describe_tensor(tensor: Any) -> str:
    from onnx import helper

    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type).name
    except (KeyError, TypeError, ValueError):
        dtype = f"type {tensor.data_type}"
    return f"{dtype}[{', '.join(str(d) for d in tensor.dims)}]"


def _io_differences(model: Any, reference: Any) -> tuple[list[str], list[str]]:
    """Problems (missing or extra names, other element kind or rank) and warnings (another
    float precision, another order) between the model's signature and the reference's."""
    problems: list[str] = []
    warnings: list[str] = []
    for kind in ("input", "output"):
        mine, theirs = _signature(model, kind), _signature(reference, kind)
        problems += [
            f"graph {kind} {name!r}: missing; the reference has it"
            for name in theirs
            if name not in mine
        ]
        problems += [
            f"graph {kind} {name!r}: not in the reference" for name in mine if name not in theirs
        ]
        common = [name for name in theirs if name in mine]
        if [name for name in mine if name in theirs] != common:
            warnings.append(f"graph {kind}s are in another order than the reference's")
        for name in common:
            (dtype, rank), (ref_dtype, ref_rank) = mine[name], theirs[name]
            if dtype != ref_dtype:
                line = (
                    f"graph {kind} {name!r}: {dtype} in the variant, {ref_dtype} in the reference"
                )
                same_kind = _is_float(dtype) == _is_float(ref_dtype)
                (warnings if same_kind and _is_float(dtype) else problems).append(line)
            if rank is not None and ref_rank is not None and rank != ref_rank:
                problems.append(
                    f"graph {kind} {name!r}: rank {rank} in the variant, "
                    f"{ref_rank} in the reference"
                )
    return problems, warnings


def _signature(model: Any, kind: str) -> dict[str, tuple[str, int | None]]:
    from onnx import helper

    initializers = {tensor.name for tensor in model.graph.initializer}
    values = model.graph.input if kind == "input" else model.graph.output
    signature = {}
    for value in values:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        except (KeyError, TypeError, ValueError):
            dtype = f"type {tensor_type.elem_type}"
        rank = len(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
        signature[value.name] = (dtype, rank)
    return signature


def _is_float(dtype: str) -> bool:
    return dtype in _MANTISSA_BITS


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def _check_outputs(
    path: Path, outputs: Mapping[str, np.ndarray], options: HealthOptions
) -> _Outcome:
    summary: dict[str, Any] = {}
    bad = []
    for name, value in outputs.items():
        array = np.asarray(value)
        entry: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape)}
        summary[name] = entry
        if not np.issubdtype(array.dtype, np.floating) or not array.size:
            continue
        nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        entry.update(nan=nan, inf=inf)
        if nan or inf:
            bad.append(f"{name}: {nan} NaN, {inf} Inf of {array.size} values")
            continue
        constant = array.size > 1 and bool(np.ptp(array) == 0)
        entry["constant"] = constant
        if constant and name not in options.constant_output_ok:
            bad.append(
                f"{name}: every one of its {array.size} values is {float(array.flat[0]):.6g}; if "
                "that is by design, list it in constant_output_ok"
            )
    details = {"outputs": summary}
    if not bad:
        return _Outcome([], details)
    return _Outcome(
        [
            f"{path}: {len(bad)} outputs are non-finite or constant on the synthesized inputs; "
            "a collapsed graph (zeroed weights, a broken quantizer, fp16 overflow) — check the "
            "initializers health check and the step that wrote the graph",
            *_listed(bad),
        ],
        details,
    )
