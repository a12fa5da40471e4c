"""Size gates: what each file and each variant bundle weighs, its compression ratio, budgets.

* A file's size is the ``.onnx`` file plus the external-data sidecars it names.
* A variant bundle is every graph's file of one variant tag (``int4``: ``encoder.int4.onnx`` +
  ``decoder.int4.onnx``), with each sidecar counted once however many graphs share it: what a
  release of that variant ships.
* The compression ratio is the reference's bytes over the variant's (``4.0`` = four times
  smaller): for a file, its graph's reference file; for a bundle, the reference files of the
  same graphs, sidecars counted once too.

Budgets (``size_mb<=450``, ``int4:ratio>=3.5``, ``encoder/int4:size_mb<=0.3x``) apply to bundles
when unscoped or scoped to a tier or tag, and to single files when scoped to a graph. ``MB`` is
10^6 bytes, like the sizes in the report header. No pytest here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_onnxparity.export.discovery import ExportFolder, Graph, ModelFile, human_size
from pytest_onnxparity.results.records import CheckResult
from pytest_onnxparity.results.terminal import table
from pytest_onnxparity.speed.timing import (
    Budget,
    BudgetError,
    parse_budget,
    parse_budget_list,
    select_budgets,
)

SIZE_METRICS: Mapping[str, str] = {"size_mb": "<=", "ratio": ">="}
SIZE_RELATIVE = frozenset({"size_mb"})
"""``size_mb<=0.3x``: at most 0.3 times the reference's size."""
SIZE_KEYS = ("budgets",)
"""Keys of ``[tool.onnxparity.size]``."""
BYTES_PER_MB = 1_000_000


@dataclass(frozen=True)
class FileSize:
    """One graph file with its sidecars, and how it compares with its graph's reference file."""

    graph: str
    variant: str
    tier: str
    relpath: str
    model_bytes: int
    sidecars: Mapping[str, int]
    """Sidecar path (relative to the export root) -> bytes."""
    reference_variant: str
    reference_bytes: int

    @property
    def is_reference(self) -> bool:
        return self.variant == self.reference_variant

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + sum(self.sidecars.values())

    @property
    def ratio(self) -> float | None:
        return self.reference_bytes / self.total_bytes if self.total_bytes else None

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.graph, f"{self.graph}/{self.variant}")

    def to_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "variant": self.variant,
            "tier": self.tier,
            "relpath": self.relpath,
            "model_bytes": self.model_bytes,
            "sidecars": dict(self.sidecars),
            "total_bytes": self.total_bytes,
            "reference_variant": self.reference_variant,
            "reference_bytes": self.reference_bytes,
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class Bundle:
    """Every graph's file of one variant tag; sidecars shared by several files counted once."""

    variant: str
    files: tuple[FileSize, ...]
    total_bytes: int
    reference_bytes: int
    """The reference files of the same graphs, sidecars counted once."""

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(sorted({file.tier for file in self.files}))

    @property
    def is_reference(self) -> bool:
        """Only reference files: comparing it with the reference says nothing."""
        return all(file.is_reference for file in self.files)

    @property
    def ratio(self) -> float | None:
        return self.reference_bytes / self.total_bytes if self.total_bytes else None

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.variant, *self.tiers)

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "tiers": list(self.tiers),
            "graphs": [file.graph for file in self.files],
            "total_bytes": self.total_bytes,
            "reference_bytes": self.reference_bytes,
            "ratio": self.ratio,
            "is_reference": self.is_reference,
            "files": [file.to_json() for file in self.files],
        }


@dataclass(frozen=True)
class SizeReport:
    """Every file and every variant bundle of an export folder."""

    files: tuple[FileSize, ...]
    bundles: tuple[Bundle, ...]

    def bundle(self, variant: str) -> Bundle:
        for bundle in self.bundles:
            if bundle.variant == variant:
                return bundle
        raise KeyError(f"no bundle {variant!r}; bundles: {', '.join(self.variants)}")

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(bundle.variant for bundle in self.bundles)

    def to_json(self) -> dict[str, Any]:
        return {"bundles": [bundle.to_json() for bundle in self.bundles]}


def size_report(folder: ExportFolder) -> SizeReport:
    """Sizes of every file and bundle of ``folder``, from discovery (no model is loaded)."""
    root = folder.root
    files = [file_size(root, graph, model) for graph in folder.graphs for model in graph.files]
    by_variant: dict[str, list[tuple[Graph, ModelFile]]] = {}
    for graph in folder.graphs:
        for model in graph.files:
            by_variant.setdefault(model.variant, []).append((graph, model))
    bundles = []
    for variant in sorted(by_variant, key=lambda tag: (_first_reference(by_variant[tag]), tag)):
        members = by_variant[variant]
        bundles.append(
            Bundle(
                variant=variant,
                files=tuple(f for f in files if f.variant == variant),
                total_bytes=bundle_bytes(model for _, model in members),
                reference_bytes=bundle_bytes(graph.reference_file for graph, _ in members),
            )
        )
    return SizeReport(files=tuple(files), bundles=tuple(bundles))


def _first_reference(members: Sequence[tuple[Graph, ModelFile]]) -> int:
    # Reference bundles first, then the others by name: the table reads top-down from fp32.
    return 0 if all(model is graph.reference_file for graph, model in members) else 1


def file_size(root: Path, graph: Graph, model: ModelFile) -> FileSize:
    return FileSize(
        graph=graph.name,
        variant=model.variant,
        tier=model.tier,
        relpath=model.relpath,
        model_bytes=model.size_bytes,
        sidecars={
            _relative(root, path): size
            for path, size in zip(model.external_data, model.external_data_sizes, strict=True)
        },
        reference_variant=graph.reference,
        reference_bytes=graph.reference_file.total_bytes,
    )


def bundle_bytes(models: Iterable[ModelFile]) -> int:
    """Model files plus their sidecars, a sidecar named by several models counted once."""
    model_bytes = 0
    sidecars: dict[Path, int] = {}
    for model in models:
        model_bytes += model.size_bytes
        sidecars.update(zip(model.external_data, model.external_data_sizes, strict=True))
    return model_bytes + sum(sidecars.values())


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def size_lines(report: SizeReport) -> list[str]:
    """The terminal tables: one row per file, then one per variant bundle."""
    file_rows = [
        [
            file.graph,
            file.variant,
            file.relpath + (f" + {len(file.sidecars)} data" if file.sidecars else ""),
            human_size(file.total_bytes),
            "reference" if file.is_reference else _ratio_text(file.ratio),
        ]
        for file in report.files
    ]
    bundle_rows = [
        [
            bundle.variant,
            ", ".join(bundle.tiers),
            str(len(bundle.files)),
            human_size(bundle.total_bytes),
            "reference" if bundle.is_reference else _ratio_text(bundle.ratio),
        ]
        for bundle in report.bundles
    ]
    return [
        *table(["graph", "variant", "file", "size", "ratio vs reference"], file_rows),
        "",
        *table(["bundle", "tier", "files", "size", "ratio vs reference"], bundle_rows),
    ]


def _ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x smaller" if ratio >= 1 else f"{ratio:.2f}x"


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


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
    ratio = reference_bytes / total_bytes if total_bytes else float("inf")
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


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


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
    unknown = [key for key in section if key not in SIZE_KEYS]
    if unknown:
        raise BudgetError(
            f"{where} [size]: unknown key {unknown[0]!r}; allowed keys: {', '.join(SIZE_KEYS)}"
        )
    file_budgets_ = parse_budget_list(
        section.get("budgets", []), SIZE_METRICS, SIZE_RELATIVE, f"{where} [size] budgets"
    )
    ini = tuple(size_budget(text, "ini parity_size_budgets") for text in ini_budgets)
    return SizeOptions(budgets=(*file_budgets_, *ini, *cli_budgets))
