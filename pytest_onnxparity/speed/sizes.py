"""Size gates: budgets on what each file and each variant bundle weighs, and the size table.

Budgets (``size_mb<=450``, ``int4:ratio>=3.5``, ``encoder/int4:size_mb<=0.3x``) apply to bundles
when unscoped or scoped to a tier or tag, and to single files when scoped to a graph. ``MB`` is
10^6 bytes, like the sizes in the report header. What is measured is
:mod:`pytest_onnxparity.export.sizes`. No pytest here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_onnxparity.export.folder import human_size
from pytest_onnxparity.export.sizes import (
    BYTES_PER_MB,
    Bundle,
    FileSize,
    SizeReport,
    compression_text,
)
from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.terminal import table
from pytest_onnxparity.speed.budgets import (
    Budget,
    check_table_keys,
    parse_budget,
    parse_budget_list,
    select_budgets,
)

SIZE_METRICS: Mapping[str, str] = {"size_mb": "<=", "ratio": ">="}


SIZE_RELATIVE = frozenset({"size_mb"})


"""``size_mb<=0.3x``: at most 0.3 times the reference's size."""


SIZE_KEYS = ("budgets",)


"""Keys of ``[tool.onnxparity.size]``."""


def size_lines(report: SizeReport) -> list[str]:
    """The terminal tables: one row per file, then one per variant bundle."""
    file_rows = [
        [
            file.graph,
            file.variant,
            file.relpath + (f" + {len(file.sidecars)} data" if file.sidecars else ""),
            human_size(file.total_bytes),
            "reference" if file.is_reference else compression_text(file.ratio),
        ]
        for file in report.files
    ]
    bundle_rows = [
        [
            bundle.variant,
            ", ".join(bundle.tiers),
            str(len(bundle.files)),
            human_size(bundle.total_bytes),
            "reference" if bundle.is_reference else compression_text(bundle.ratio),
        ]
        for bundle in report.bundles
    ]
    return [
        *table(["graph", "variant", "file", "size", "ratio vs reference"], file_rows),
        "",
        *table(["bundle", "tier", "files", "size", "ratio vs reference"], bundle_rows),
    ]


def bundle_budgets(budgets: Sequence[Budget], bundle: Bundle) -> list[Budget]:
    """The budgets that gate ``bundle``: unscoped, or scoped to its tag or one of its tiers."""
    scopes = set(bundle.scopes)
    chosen = select_budgets([b for b in budgets if b.scope is None or b.scope in scopes], scopes)
    return [b for b in chosen if not (bundle.is_reference and _is_relative(b))]


def file_budgets(budgets: Sequence[Budget], file: FileSize) -> list[Budget]:
    """The budgets that gate one file: scoped to its graph or to ``graph/variant``."""
    scoped = [b for b in budgets if b.scope is not None and b.scope in file.scopes]
    chosen = select_budgets(scoped, file.scopes)
    return [b for b in chosen if not (file.is_reference and _is_relative(b))]


def _is_relative(budget: Budget) -> bool:
    return budget.relative or budget.metric == "ratio"


def evaluate_bundle(bundle: Bundle, budgets: Sequence[Budget]) -> CheckResult:
    """Gate one variant bundle on the budgets that apply to it (:func:`bundle_budgets`)."""
    title = f"bundle {bundle.variant} ({len(bundle.files)} file(s))"
    return _evaluate(
        title,
        bundle.total_bytes,
        bundle.reference_bytes,
        bundle_budgets(budgets, bundle),
        graph="*",
        variant=bundle.variant,
        details=bundle.to_json(),
        biggest=max(bundle.files, key=lambda f: f.total_bytes, default=None),
        scope_hint=bundle.variant,
    )


def evaluate_file(file: FileSize, budgets: Sequence[Budget]) -> CheckResult:
    """Gate one file on the graph-scoped budgets that apply to it (:func:`file_budgets`)."""
    return _evaluate(
        f"{file.graph}[{file.variant}] ({file.relpath})",
        file.total_bytes,
        file.reference_bytes,
        file_budgets(budgets, file),
        graph=file.graph,
        variant=file.variant,
        details=file.to_json(),
        biggest=None,
        scope_hint=f"{file.graph}/{file.variant}",
    )


def _evaluate(
    title: str,
    total_bytes: int,
    reference_bytes: int,
    budgets: Sequence[Budget],
    *,
    graph: str,
    variant: str,
    details: Mapping[str, Any],
    biggest: FileSize | None,
    scope_hint: str,
) -> CheckResult:
    size_mb = total_bytes / BYTES_PER_MB
    reference_mb = reference_bytes / BYTES_PER_MB
    if budgets and total_bytes == 0:
        # An empty file would have an infinite ratio that passes any budget (and no JSON).
        return CheckResult(
            check="size",
            graph=graph,
            variant=variant,
            passed=False,
            message=f"{title}: 0 bytes, which is no model; re-export it or remove it",
            details={**details, "size_mb": 0.0, "budgets": []},
        )
    ratio = reference_bytes / total_bytes if total_bytes else 0.0
    outcomes = []
    lines = []
    for budget in budgets:
        value = ratio if budget.metric == "ratio" else size_mb
        limit = budget.limit_for(reference_mb) if budget.relative else budget.limit
        passed = budget.allows(value, reference_mb if budget.relative else None)
        outcomes.append(
            {**budget.to_json(), "value": value, "effective_limit": limit, "passed": passed}
        )
        if passed:
            continue
        where = f" from {budget.source}" if budget.source else ""
        if budget.metric == "ratio":
            lines.append(
                f"{title}: compression ratio {ratio:.3g} is below {budget.limit:g} "
                f"(budget {budget.text}{where}): {human_size(total_bytes)} against the "
                f"reference's {human_size(reference_bytes)}"
            )
        else:
            relation = (
                f" = {budget.limit:g}x the reference's {reference_mb:.3g} MB"
                if budget.relative
                else ""
            )
            lines.append(
                f"{title}: size_mb {size_mb:.3g} exceeds {limit:.3g}{relation} "
                f"(budget {budget.text}{where})"
            )
    if lines:
        if biggest is not None:
            lines.append(
                f"  largest file: {biggest.relpath} {human_size(biggest.total_bytes)}"
                + (f" (with {len(biggest.sidecars)} sidecar(s))" if biggest.sidecars else "")
            )
        first = next(b for b, o in zip(budgets, outcomes, strict=True) if not o["passed"])
        lines.append(
            "  next step: quantize further or drop unused initializers (onnx.external_data / "
            "onnxruntime's transformers optimizer), or, if this size is acceptable, relax the "
            f"budget: --parity-size-budget {scope_hint}:{first.metric}{first.op}<limit> or "
            "[tool.onnxparity.size] budgets"
        )
    return CheckResult(
        check="size",
        graph=graph,
        variant=variant,
        passed=not lines,
        message="\n".join(lines),
        details={**details, "size_mb": size_mb, "budgets": outcomes},
    )


@dataclass(frozen=True)
class SizeOptions:
    """Size budgets, resolved from the config file, ini and command line (in that order)."""

    budgets: tuple[Budget, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return bool(self.budgets)

    def to_json(self) -> dict[str, Any]:
        return {"budgets": [budget.to_json() for budget in self.budgets]}


def size_budget(text: str, source: str) -> Budget:
    """One size budget string (``size_mb<=450``, ``int4:ratio>=3.5``)."""
    return parse_budget(text, SIZE_METRICS, SIZE_RELATIVE, source)


def resolve_size_options(
    section: Mapping[str, Any],
    where: str,
    *,
    cli_budgets: Sequence[Budget] = (),
    ini_budgets: Sequence[str] = (),
) -> SizeOptions:
    """Validate ``[tool.onnxparity.size]`` (``where`` names it) and add ini and CLI budgets."""
    check_table_keys(section, SIZE_KEYS, f"{where} [size]")
    file_budgets_ = parse_budget_list(
        section.get("budgets", []), SIZE_METRICS, SIZE_RELATIVE, f"{where} [size] budgets"
    )
    ini = tuple(size_budget(text, "ini parity_size_budgets") for text in ini_budgets)
    return SizeOptions(budgets=(*file_budgets_, *ini, *cli_budgets))
