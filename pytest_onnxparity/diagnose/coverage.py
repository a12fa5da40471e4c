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
:mod:`pytest_onnxparity.diagnose.health.config` owns the table and rejects unknown keys, so
each mistake is reported once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.diagnose.coverage_table import (
    COVERAGE_CHECK,
    WEIGHTS_CHECK,
    count_with_percent,
    names_cell,
    summary_lines,
)
from pytest_onnxparity.onnxfile.graph import GraphIndex, load_structure, node_label
from pytest_onnxparity.onnxfile.weight_forms import (
    FLOAT_STORAGE,
    WeightForm,
    locate_forms,
    reference_weights,
)
from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.terminal import table

COVERAGE_KEYS = ("min_quantized_fraction", "require_quantized")

__all__ = ["COVERAGE_CHECK", "WEIGHTS_CHECK", "summary_lines"]


"""The keys of ``[tool.onnxparity.health]`` that :func:`parse_coverage_options` reads."""


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


"""The storage label of a weight the variant keeps at the reference's precision."""


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
                count_with_percent(row.quantized, row.weights),
                ", ".join(f"{form}={n}" for form, n in sorted(row.quantized_as.items())) or "-",
                names_cell(row.float_names, row.missing_names),
            ]
            for row in self.rows
        ]
        rows.append(
            ["total", str(self.weights), count_with_percent(self.quantized, self.weights), "", ""]
        )
        return table(["op type", "weights", "quantized", "as", "not quantized"], rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "quantized": self.quantized,
            "fraction": self.fraction(),
            "rows": [row.to_json() for row in self.rows],
        }


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
    :func:`pytest_onnxparity.diagnose.health.config.parse_health_options`,
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
