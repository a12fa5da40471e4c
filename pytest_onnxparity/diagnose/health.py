"""Graph health: is each graph sound, and is it what the release claims, before numbers count.

One check per call of :func:`run_health_check`, named ``health:<check>``:

* ``checker``: ``onnx.checker`` full check from the file path (external data included, no 2 GiB
  protobuf copy), plus every external tensor's bytes present in its sidecar file.
* ``opset``: the ai.onnx opset and the IR version within configured bounds.
* ``domains``: every node's operator domain among ``allowed_domains``.
* ``initializers``: no NaN/Inf in float tensors (a single-value ±Inf, the fill value of
  ``masked_fill(-inf)``, is a warning where the reference has it too); no weight that the
  variant made all-zero or constant where the reference's tensor is not (compared after
  dequantizing, see :mod:`pytest_onnxparity.onnxfile.dequantize`); all-zero weight matrices of a
  reference reported as warnings.
* ``structure``: no dangling node input, no unused initializer, the reference's graph inputs and
  outputs.
* ``outputs``: the graph's outputs on synthesized inputs hold no NaN/Inf and are not constant.

Models are read without external data; tensor values are streamed one at a time from their
sidecar files, so the checks hold at most one tensor pair in memory whatever the model's size.
What each check enforces comes from :mod:`pytest_onnxparity.diagnose.health_config`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.diagnose.health_config import (
    CONFIG_TABLE,
    DEFAULT_DOMAIN,
    HEALTH_CHECKS,
    HealthOptions,
    domain,
)
from pytest_onnxparity.onnxfile.dequantize import (
    MANTISSA_BITS,
    TensorReadError,
    dequantize,
    read_array,
)
from pytest_onnxparity.onnxfile.graph import (
    GraphIndex,
    float_element_types,
    iter_nodes,
    load_structure,
    node_label,
)
from pytest_onnxparity.onnxfile.weight_forms import locate_forms, reference_weights
from pytest_onnxparity.results.records import CheckResult

PROTOBUF_LIMIT_BYTES = 2**31 - 1

# Offenders listed in a failure message and in ``details``, before "… N more".
_MESSAGE_ITEMS = 20
_DETAIL_ITEMS = 100


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
            outcome = _check_domains(model_path, options, variant)
        elif check == "initializers":
            outcome = _check_initializers(model_path, reference_path)
        elif check == "structure":
            outcome = _check_structure(model_path, reference_path)
        else:
            if run_outputs is None:
                raise ValueError("the outputs health check needs run_outputs")
            outcome = _check_outputs(model_path, run_outputs(), options)
    except (_Unreadable, TensorReadError) as error:
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


def warning_lines(records: Sequence[Mapping[str, Any]], limit: int = 10) -> list[str]:
    """The warnings of the health and coverage records, for the terminal summary."""
    found = [
        f"{record['graph']}[{record['variant']}] {record['check']}: {warning}"
        for record in records
        if record.get("kind") == "check"
        and (str(record.get("check", "")).startswith("health:") or record["check"] == "coverage")
        for warning in record.get("warnings", ())
    ]
    if not found:
        return []
    lines = [f"health warnings ({len(found)}):", *(f"  {line}" for line in found[:limit])]
    if len(found) > limit:
        lines.append(f"  … and {len(found) - limit} more in the records (--parity-json)")
    return lines


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
    imports = {domain(entry.domain): int(entry.version) for entry in model.opset_import}
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


def _check_domains(path: Path, options: HealthOptions, variant: str) -> _Outcome:
    model = _load(path)
    counts: dict[str, int] = {}
    offenders = []
    allowed = None if options.allowed_domains is None else set(map(domain, options.allowed_domains))
    for node in iter_nodes(model.graph):
        name = domain(node.domain)
        counts[name] = counts.get(name, 0) + 1
        if allowed is not None and name not in allowed:
            offenders.append(node)
    details: dict[str, Any] = {
        "nodes_by_domain": dict(sorted(counts.items())),
        "allowed_domains": None if allowed is None else sorted(allowed),
        "offending_nodes": [
            {"name": node.name, "op_type": node.op_type, "domain": domain(node.domain)}
            for node in offenders[:_DETAIL_ITEMS]
        ],
    }
    if not offenders:
        return _Outcome([], details)
    outside = sorted({domain(node.domain) for node in offenders})
    return _Outcome(
        [
            f"{path}: {len(offenders)} nodes use domain(s) {', '.join(outside)} outside "
            f"allowed_domains {sorted(allowed or ())}; produce the variant without those "
            f"operators or allow the domain in {CONFIG_TABLE} allowed_domains (for this variant "
            f"only: [tool.onnxparity.health.variants.{variant}])",
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
        values = read_array(tensor, path.parent).astype(np.float64)
        nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if nan or inf:
            non_finite.append({"name": name, "nan": nan, "inf": inf, "size": int(values.size)})
    by_design = _deliberate_infinities(non_finite, reference_path)
    for item in non_finite:
        item["by_design"] = item["name"] in by_design
    details: dict[str, Any] = {"float_tensors": tensors, "non_finite": non_finite[:_DETAIL_ITEMS]}
    problems: list[str] = []
    warnings: list[str] = []
    if by_design and reference_path is None:
        # Reported once, for the reference; its variants inherit the same constants.
        first = sorted(by_design)[0]
        warnings.append(
            f"{path}: {len(by_design)} single-value ±Inf constants taken as deliberate mask "
            f"fills or clamp bounds (e.g. {first}, read by {_readers(index, first)})"
        )
    non_finite = [item for item in non_finite if not item["by_design"]]
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


def _deliberate_infinities(
    non_finite: Sequence[Mapping[str, Any]], reference_path: Path | None
) -> set[str]:
    """Single-value ±Inf tensors an exporter writes on purpose (``masked_fill(-inf)``, a clamp
    bound). In a variant, only those whose reference tensor is not finite either: a finite
    reference value that became Inf is an overflow (70000 in float16)."""
    candidates = {item["name"] for item in non_finite if item["size"] == 1 and item["nan"] == 0}
    if not candidates or reference_path is None:
        return candidates
    reference = _load(reference_path)
    deliberate = set()
    for name, tensor in _float_tensors(reference, float_element_types()):
        if name in candidates:
            values = read_array(tensor, reference_path.parent)
            if values.size == 1 and np.all(np.isinf(values)):
                deliberate.add(name)
    return deliberate


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
        if len(tensor.dims) >= 2 and not np.any(read_array(tensor, base_dir)):
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
        ref = read_array(reference.initializers[name], reference_path.parent).astype(np.float64)
        if not ref.size or not np.all(np.isfinite(ref)) or not np.any(ref):
            continue
        peak, spread = float(np.max(np.abs(ref))), float(np.ptp(ref))
        for form in forms[name]:
            dequantized = dequantize(form, index, path.parent)
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
    return dtype in MANTISSA_BITS


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
