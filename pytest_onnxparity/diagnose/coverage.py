"""Quantization coverage: which weight tensors of the reference a variant consumes quantized.

A *weight* is a float initializer at the weight input of a MatMul, Gemm, Conv, ConvTranspose,
Gather (data), LSTM, GRU or RNN node of the reference graph, reached directly or through
pass-through ops (Transpose, Reshape, Cast…). Quantizers keep the weight's name as a prefix of
the tensors they write (onnxruntime: ``W_quantized`` for quantize_dynamic / quantize_static,
``W_Q4`` / ``W_DQ_Q4`` for MatMulNBitsQuantizer, the same name at float16 for the fp16
converter), so a variant's *forms* of weight ``W`` are its initializers named ``W`` or ``W_…``
that a quantized op reads as data, plus ``W`` itself when it is still a float tensor.

Configuration: ``min_quantized_fraction`` and ``require_quantized`` live in the
``[tool.onnxparity.health]`` table. :func:`parse_coverage_options` reads only those two keys;
:mod:`pytest_onnxparity.diagnose.health_config` owns the table and rejects unknown keys, so
each mistake is reported once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.project import ConfigError
from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.terminal import table

COVERAGE_KEYS = ("min_quantized_fraction", "require_quantized")
"""The keys of ``[tool.onnxparity.health]`` that :func:`parse_coverage_options` reads."""

COVERAGE_CHECK = "coverage"

# Reference op type -> input slots that hold a weight.
WEIGHT_SLOTS: Mapping[str, tuple[int, ...]] = {
    "MatMul": (0, 1),
    "Gemm": (0, 1),
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Gather": (0,),
    "LSTM": (1, 2),
    "GRU": (1, 2),
    "RNN": (1, 2),
}

# Variant op type -> input slots that hold quantized data. DequantizeLinear is the QDQ form.
QUANTIZED_DATA_SLOTS: Mapping[str, tuple[int, ...]] = {
    "DequantizeLinear": (0,),
    "MatMulNBits": (1,),
    "MatMulInteger": (0, 1),
    "ConvInteger": (1,),
    "QLinearMatMul": (0, 3),
    "QLinearConv": (3,),
    "QGemm": (0, 3),
    "DynamicQuantizeMatMul": (1,),
    "MatMulIntegerToFloat": (0, 1),
    "GatherBlockQuantized": (0,),
    "MatMulBnb4": (1,),
    "DynamicQuantizeLSTM": (1, 2),
}

# Ops a weight passes through unchanged in meaning, on their first input.
PASS_THROUGH_OPS = frozenset(
    {"Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast"}
)

_MATMUL_LIKE = frozenset(
    {
        "MatMul",
        "Gemm",
        "FusedMatMul",
        "MatMulNBits",
        "MatMulInteger",
        "QLinearMatMul",
        "QGemm",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "MatMulBnb4",
    }
)
# Reference op type -> the variant op types that can stand in for it (to tell apart the uses of
# a weight shared by two op types, e.g. an embedding tied to the output projection).
_STAND_INS: Mapping[str, frozenset[str]] = {
    "MatMul": _MATMUL_LIKE,
    "Gemm": _MATMUL_LIKE,
    "Conv": frozenset({"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv"}),
    "ConvTranspose": frozenset({"ConvTranspose", "QLinearConvTranspose"}),
    "Gather": frozenset({"Gather", "GatherBlockQuantized"}),
    "LSTM": frozenset({"LSTM", "DynamicQuantizeLSTM"}),
}

# Weights named in a failure message, before "… N more".
_MESSAGE_ITEMS = 20

FLOAT_STORAGE = "float"
"""The storage label of a weight the variant keeps at the reference's precision."""


# --------------------------------------------------------------------------------------------
# Reading graphs
# --------------------------------------------------------------------------------------------


def iter_nodes(graph: Any) -> Iterator[Any]:
    """Every node of an ``onnx.GraphProto``, subgraphs (If, Loop, Scan bodies) included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from iter_nodes(attribute.g)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from iter_nodes(subgraph)


def node_label(node: Any) -> str:
    """``name (OpType)``, the domain added when it is not ai.onnx; unnamed nodes show outputs."""
    name = node.name or f"<unnamed, output {node.output[0] if node.output else '?'}>"
    op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    return f"{name} ({op})"


@dataclass(frozen=True)
class GraphIndex:
    """The initializers of a model and who consumes and produces each tensor name."""

    initializers: Mapping[str, Any]
    consumers: Mapping[str, tuple[tuple[Any, int], ...]]
    producers: Mapping[str, Any]

    @classmethod
    def of(cls, model: Any) -> GraphIndex:
        """Index an ``onnx.ModelProto`` (loaded with or without its external data)."""
        consumers: dict[str, list[tuple[Any, int]]] = {}
        producers: dict[str, Any] = {}
        for node in iter_nodes(model.graph):
            for slot, name in enumerate(node.input):
                if name:
                    consumers.setdefault(name, []).append((node, slot))
            for name in node.output:
                if name:
                    producers[name] = node
        return cls(
            initializers={tensor.name: tensor for tensor in model.graph.initializer},
            consumers={name: tuple(uses) for name, uses in consumers.items()},
            producers=producers,
        )

    def final_users(self, name: str) -> set[str]:
        """Op types that finally read ``name``, looking through DequantizeLinear and
        pass-through ops."""
        users: set[str] = set()
        pending, seen = [name], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for node, slot in self.consumers.get(current, ()):
                if slot == 0 and (
                    node.op_type in PASS_THROUGH_OPS or node.op_type == "DequantizeLinear"
                ):
                    pending.extend(output for output in node.output if output)
                else:
                    users.add(node.op_type)
        return users


def load_structure(path: Path) -> Any:
    """The model at ``path`` without its external data: names, nodes, types, no weights."""
    import onnx

    return onnx.load(str(path), load_external_data=False)


def float_element_types() -> dict[int, str]:
    """ONNX float element types -> their names, widest first."""
    from onnx import TensorProto

    return {
        TensorProto.DOUBLE: "float64",
        TensorProto.FLOAT: "float32",
        TensorProto.FLOAT16: "float16",
        TensorProto.BFLOAT16: "bfloat16",
    }


# --------------------------------------------------------------------------------------------
# Weights and their forms in a variant
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightForm:
    """One way a variant stores and reads a reference initializer.

    ``storage`` is ``"float"`` (the reference's precision), a narrower float (``"float16"``,
    ``"bfloat16"``), the quantized op that reads it (``"MatMulNBits"``, ``"DequantizeLinear"``,
    ``"MatMulInteger"``…), or an integer type name (``"uint8"``) when a plain op reads the
    integers as its weight (quantize_dynamic's Gather, which dequantizes the gathered rows).
    """

    reference_name: str
    tensor: str
    storage: str
    consumer: Any = field(compare=False, repr=False)
    slot: int
    final_users: frozenset[str]

    @property
    def quantized(self) -> bool:
        return self.storage != FLOAT_STORAGE


def reference_weights(index: GraphIndex) -> dict[str, list[tuple[str, Any]]]:
    """Weight initializer name -> ``(op_type, node)`` of each reference node using it as one."""
    floats = float_element_types()
    weights: dict[str, list[tuple[str, Any]]] = {}
    for name, uses in index.consumers.items():
        for node, slot in uses:
            if slot not in WEIGHT_SLOTS.get(node.op_type, ()):
                continue
            source = _through_pass_through(index, name)
            tensor = index.initializers.get(source)
            if tensor is not None and tensor.data_type in floats:
                weights.setdefault(source, []).append((node.op_type, node))
    return weights


def _through_pass_through(index: GraphIndex, name: str) -> str:
    seen = set()
    while name not in index.initializers and name not in seen:
        seen.add(name)
        producer = index.producers.get(name)
        if producer is None or producer.op_type not in PASS_THROUGH_OPS or not producer.input:
            break
        name = producer.input[0]
    return name


def locate_forms(
    reference: GraphIndex, variant: GraphIndex, names: Sequence[str] | None = None
) -> dict[str, list[WeightForm]]:
    """Reference initializer name -> its forms in the variant (empty when none is found).

    ``names`` defaults to every reference initializer. A variant initializer belongs to the
    longest reference name that equals it or prefixes it up to an ``_``. A tensor read the same
    way by several nodes is one form, whose ``final_users`` gathers theirs.
    """
    floats = float_element_types()
    wanted = list(reference.initializers) if names is None else list(names)
    found: dict[str, dict[tuple[str, str], WeightForm]] = {name: {} for name in wanted}
    for tensor_name, tensor in variant.initializers.items():
        owner = _owning_reference_name(tensor_name, reference.initializers)
        if owner is None or owner not in found:
            continue
        reference_type = reference.initializers[owner].data_type
        for node, slot in variant.consumers.get(tensor_name, ()):
            storage = _storage(node, slot, tensor, tensor_name == owner, reference_type, floats)
            if storage is None:
                continue
            if node.op_type in QUANTIZED_DATA_SLOTS and node.op_type != "DequantizeLinear":
                users = frozenset({node.op_type})
            else:
                users = frozenset(variant.final_users(tensor_name))
            key = (tensor_name, storage)
            if key in found[owner]:
                users |= found[owner][key].final_users
                node, slot = found[owner][key].consumer, found[owner][key].slot
            found[owner][key] = WeightForm(owner, tensor_name, storage, node, slot, users)
    return {name: list(forms.values()) for name, forms in found.items()}


def _owning_reference_name(name: str, reference_names: Mapping[str, Any]) -> str | None:
    if name in reference_names:
        return name
    cut = name.rfind("_")
    while cut > 0:
        if name[:cut] in reference_names:
            return name[:cut]
        cut = name.rfind("_", 0, cut)
    return None


def _storage(
    node: Any,
    slot: int,
    tensor: Any,
    same_name: bool,
    reference_type: int,
    floats: Mapping[int, str],
) -> str | None:
    if tensor.data_type in floats:
        if not same_name:
            return None  # a scale or a float zero point named after the weight
        narrower = list(floats).index(tensor.data_type) > list(floats).index(reference_type)
        return floats[tensor.data_type] if narrower else FLOAT_STORAGE
    if slot in QUANTIZED_DATA_SLOTS.get(node.op_type, ()):
        return str(node.op_type)
    if same_name or slot in WEIGHT_SLOTS.get(node.op_type, ()):
        # Plain ops reading integers as their weight: quantize_dynamic's Gather reads
        # "<weight>_quantized" and dequantizes the gathered rows.
        from onnx import helper

        return str(helper.tensor_dtype_to_np_dtype(tensor.data_type).name)
    return None  # an integer zero point named after the weight


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpCoverage:
    """Weights of one reference op type and how many of them the variant quantized.

    ``quantized_as`` counts the quantized weights by form (``{"MatMulNBits": 3}``); fp16 and
    bf16 storage count as quantized, under ``"float16"`` / ``"bfloat16"``. ``float_names`` are
    weights the variant reads at the reference's precision; ``missing_names`` are weights with
    no form in the variant (renamed, folded or fused away), counted as not quantized.
    """

    op_type: str
    weights: int
    quantized: int
    float_names: tuple[str, ...]
    quantized_as: Mapping[str, int]
    missing_names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "op_type": self.op_type,
            "weights": self.weights,
            "quantized": self.quantized,
            "quantized_as": dict(self.quantized_as),
            "float_names": list(self.float_names),
            "missing_names": list(self.missing_names),
        }


@dataclass(frozen=True)
class CoverageReport:
    """Coverage of every weight-bearing op type of the reference, sorted by op type."""

    rows: tuple[OpCoverage, ...]

    @property
    def weights(self) -> int:
        return sum(row.weights for row in self.rows)

    @property
    def quantized(self) -> int:
        return sum(row.quantized for row in self.rows)

    def row(self, op_type: str) -> OpCoverage | None:
        return next((row for row in self.rows if row.op_type == op_type), None)

    def fraction(self) -> float:
        """Quantized weights over all weights; 1.0 for a reference without weights."""
        return self.quantized / self.weights if self.weights else 1.0

    def table_lines(self) -> list[str]:
        """One row per op type and a total: weights, quantized (percent), forms, float names."""
        rows = [
            [
                row.op_type,
                str(row.weights),
                _count_with_percent(row.quantized, row.weights),
                ", ".join(f"{form}={n}" for form, n in sorted(row.quantized_as.items())) or "-",
                _names_cell(row.float_names, row.missing_names),
            ]
            for row in self.rows
        ]
        rows.append(
            ["total", str(self.weights), _count_with_percent(self.quantized, self.weights), "", ""]
        )
        return table(["op type", "weights", "quantized", "as", "not quantized"], rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "quantized": self.quantized,
            "fraction": self.fraction(),
            "rows": [row.to_json() for row in self.rows],
        }


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run's coverage as one table: a row per graph × variant × op type, from the plain-JSON
    records of the coverage checks (an ``all`` row follows a variant with several op types)."""
    rows = []
    for record in records:
        if record.get("kind") != "check" or record.get("check") != COVERAGE_CHECK:
            continue
        details = record.get("details") or {}
        op_rows = details.get("rows", [])
        for row in op_rows:
            rows.append(
                [
                    record["graph"],
                    record["variant"],
                    row["op_type"],
                    str(row["weights"]),
                    _count_with_percent(row["quantized"], row["weights"]),
                    ", ".join(f"{form}={n}" for form, n in sorted(row["quantized_as"].items()))
                    or "-",
                    _names_cell(row["float_names"], row["missing_names"]),
                ]
            )
        if len(op_rows) > 1:
            weights, quantized = details["weights"], details["quantized"]
            rows.append(
                [
                    record["graph"],
                    record["variant"],
                    "all",
                    str(weights),
                    _count_with_percent(quantized, weights),
                    "",
                    "",
                ]
            )
    if not rows:
        return []
    headers = ["graph", "variant", "op type", "weights", "quantized", "as", "not quantized"]
    return table(headers, rows)


def _count_with_percent(count: int, total: int) -> str:
    return f"{count} ({100.0 * count / total:.0f}%)" if total else str(count)


def _names_cell(float_names: Sequence[str], missing_names: Sequence[str], limit: int = 4) -> str:
    names = [*float_names, *(f"{name} (missing)" for name in missing_names)]
    if len(names) > limit:
        return ", ".join(names[:limit]) + f", … {len(names) - limit} more"
    return ", ".join(names) or "-"


def measure_coverage(reference_path: Path, variant_path: Path) -> CoverageReport:
    """How many weight tensors of the reference the variant consumes in a quantized form.

    Reads graph structure only (no external data), so it is cheap on models of any size.
    """
    return _measure(reference_path, variant_path)[0]


def _measure(
    reference_path: Path, variant_path: Path
) -> tuple[CoverageReport, dict[str, list[tuple[str, Any]]]]:
    reference = GraphIndex.of(load_structure(reference_path))
    variant = GraphIndex.of(load_structure(variant_path))
    weights = reference_weights(reference)
    forms = locate_forms(reference, variant, list(weights))
    by_op: dict[str, dict[str, str | None]] = {}  # op type -> weight -> storage (None: missing)
    for name, uses in weights.items():
        op_types = {op_type for op_type, _ in uses}
        for op_type in sorted(op_types):
            by_op.setdefault(op_type, {})[name] = _status(forms[name], op_type, len(op_types))
    rows = []
    for op_type in sorted(by_op):
        statuses = by_op[op_type]
        quantized_as: dict[str, int] = {}
        for storage in statuses.values():
            if storage not in (None, FLOAT_STORAGE):
                quantized_as[storage] = quantized_as.get(storage, 0) + 1
        rows.append(
            OpCoverage(
                op_type=op_type,
                weights=len(statuses),
                quantized=sum(quantized_as.values()),
                float_names=tuple(n for n, s in statuses.items() if s == FLOAT_STORAGE),
                quantized_as=quantized_as,
                missing_names=tuple(n for n, s in statuses.items() if s is None),
            )
        )
    return CoverageReport(tuple(rows)), weights


def _status(forms: Sequence[WeightForm], op_type: str, op_types_sharing: int) -> str | None:
    """The storage of a weight for one reference op type; a float form anywhere wins."""
    relevant = list(forms)
    if op_types_sharing > 1:
        stand_ins = _STAND_INS.get(op_type, frozenset({op_type}))
        relevant = [form for form in forms if form.final_users & stand_ins] or relevant
    if not relevant:
        return None
    if any(not form.quantized for form in relevant):
        return FLOAT_STORAGE
    return relevant[0].storage


# --------------------------------------------------------------------------------------------
# Options and the gate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageOptions:
    """Coverage gates; the defaults gate nothing and only report the table.

    ``min_quantized_fraction``: quantized weights over all weights must reach it.
    ``require_quantized``: op types (``"MatMul"``) whose every weight must be quantized.
    """

    min_quantized_fraction: float | None = None
    require_quantized: tuple[str, ...] = ()


def parse_coverage_options(raw: Mapping[str, Any], where: str) -> CoverageOptions:
    """Read ``min_quantized_fraction`` and ``require_quantized`` from the health table.

    Other keys are left to
    :func:`pytest_onnxparity.diagnose.health_config.parse_health_options`,
    which owns the table and rejects unknown keys.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
    fraction = raw.get("min_quantized_fraction")
    if fraction is not None and (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 <= fraction <= 1
    ):
        raise ConfigError(
            f"{where}: min_quantized_fraction must be a number from 0 to 1 (e.g. 0.9), "
            f"got {fraction!r}"
        )
    required = raw.get("require_quantized", [])
    if not isinstance(required, list) or not all(isinstance(op, str) and op for op in required):
        raise ConfigError(
            f'{where}: require_quantized must be a list of op types (e.g. ["MatMul"]), '
            f"got {required!r}"
        )
    return CoverageOptions(
        min_quantized_fraction=None if fraction is None else float(fraction),
        require_quantized=tuple(dict.fromkeys(required)),
    )


def coverage_check(
    reference_path: Path,
    variant_path: Path,
    *,
    graph: str,
    variant: str,
    options: CoverageOptions,
) -> CheckResult:
    """Measure coverage and apply the gates; a failure names each weight left unquantized
    with the reference nodes that read it."""
    report, weights = _measure(reference_path, variant_path)
    problems: list[str] = []
    offenders: dict[str, OpCoverage] = {}
    warnings: list[str] = []
    limit = options.min_quantized_fraction
    if limit is not None and report.fraction() < limit:
        problems.append(
            f"{report.quantized}/{report.weights} weight tensors quantized "
            f"({report.fraction():.0%}), below min_quantized_fraction {limit:g}"
        )
        offenders.update(
            (row.op_type, row) for row in report.rows if row.float_names or row.missing_names
        )
    for op_type in options.require_quantized:
        row = report.row(op_type)
        if row is None:
            warnings.append(
                f"require_quantized names {op_type}, but the reference has no {op_type} weights"
            )
        elif row.float_names or row.missing_names:
            problems.append(
                f"require_quantized: {row.weights - row.quantized}/{row.weights} "
                f"{op_type} weights not quantized"
            )
            offenders[op_type] = row
    if limit is not None and report.weights == 0:
        warnings.append("the reference has no weight tensors; min_quantized_fraction is moot")
    if not problems:
        return CheckResult(
            COVERAGE_CHECK, graph, variant, True, details=report.to_json(), warnings=tuple(warnings)
        )
    lines = [
        f"{variant_path}: {'; '.join(problems)}; quantize these weights (check the quantizer's "
        "op_types_to_quantize / nodes_to_exclude) or relax the gate in [tool.onnxparity.health]"
    ]
    unquantized = []
    for op_type in sorted(offenders):
        row = offenders[op_type]
        unquantized += [
            f"{name}: float, read by {_readers(weights[name], op_type)}" for name in row.float_names
        ]
        unquantized += [
            f"{name}: not found in the variant, read by {_readers(weights[name], op_type)}"
            for name in row.missing_names
        ]
    shown = [f"  {line}" for line in unquantized[:_MESSAGE_ITEMS]]
    if len(unquantized) > _MESSAGE_ITEMS:
        shown.append(f"  … and {len(unquantized) - _MESSAGE_ITEMS} more")
    lines += [*shown, "", *report.table_lines()]
    return CheckResult(
        COVERAGE_CHECK,
        graph,
        variant,
        False,
        message="\n".join(lines),
        details=report.to_json(),
        warnings=tuple(warnings),
    )


def _readers(uses: Sequence[tuple[str, Any]], op_type: str, limit: int = 3) -> str:
    labels = [node_label(node) for use_op, node in uses if use_op == op_type]
    more = f", … {len(labels) - limit} more" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more
