"""Result records, the run-level collector, toolchain versions, and the atomic JSON write.

Records travel as plain JSON on an attribute of the test report (``onnxparity_records``, which
pytest-xdist serializes with the report), so the collector on the controller sees the same dicts
whether tests ran serially or on many workers. ``user_properties`` (which junitxml writes out
whole) only get a few scalars per record, for CI dashboards.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_onnxparity.compare.parity import ParityResult

SCHEMA_NAME = "pytest-onnxparity/results"
SCHEMA_VERSION = 1
"""Bumped when a field is removed, renamed or changes meaning; an added field keeps the version
(readers ignore keys they do not know). ``baseline.READABLE_VERSIONS`` says what is read back."""
REPORT_ATTRIBUTE = "onnxparity_records"
"""The test report attribute that carries a test's records (a list of plain-JSON dicts)."""
TOOLCHAIN_PACKAGES = ("numpy", "onnx", "onnxruntime", "torch", "pytest", "pytest-onnxparity")
USED_PACKAGES = {
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "optimum": "optimum",
    "onnxscript": "onnxscript",
    "sentence_transformers": "sentence-transformers",
    "jiwer": "jiwer",
    "rapidfuzz": "rapidfuzz",
    "datasets": "datasets",
    "soundfile": "soundfile",
}
"""Import name -> distribution of packages that shape the numbers when a run uses them (the
exporter's stack, tokenizers, the WER tools): listed in the toolchain when any process of the
run imported them."""


@dataclass(frozen=True)
class ParityRecord:
    """One generated parity test: graph × variant × input set, and what it measured."""

    nodeid: str
    graph: str
    variant: str
    tier: str
    reference: str
    input_set: Mapping[str, Any]
    session: Mapping[str, Any]
    result: ParityResult | None
    error: str | None = None
    kind: str = "parity"

    @property
    def passed(self) -> bool:
        return self.error is None and self.result is not None and self.result.passed

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "nodeid": self.nodeid,
            "graph": self.graph,
            "variant": self.variant,
            "tier": self.tier,
            "reference": self.reference,
            "input_set": dict(self.input_set),
            "session": dict(self.session),
            "passed": self.passed,
            "error": self.error,
            **({"parity": self.result.to_json()} if self.result is not None else {}),
        }


@dataclass(frozen=True)
class CheckResult:
    """One non-numeric check of a graph variant (health, coverage, size, timing, sequence…).

    ``details`` holds the check's measured numbers as plain JSON types; ``message`` explains a
    failure (several lines allowed) and is empty when the check passed.
    """

    check: str
    graph: str
    variant: str
    passed: bool
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    enforced: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "graph": self.graph,
            "variant": self.variant,
            "passed": self.passed,
            "enforced": self.enforced,
            "message": self.message,
            "warnings": list(self.warnings),
            "details": dict(self.details),
        }


class ResultCollector:
    """Gathers record dicts on the controller; renders the results document.

    Records are keyed by kind, node id and check, so a record re-added (a plugin editing it
    after the run) replaces the first; the document lists them sorted, so its content does not
    depend on which worker finished first.
    """

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._durations: dict[str, float] = {}
        self._workers: dict[str, dict[str, Any]] = {}
        self.imported: set[str] = set()
        """The optional packages any worker imported (``imported_packages``)."""

    @staticmethod
    def _key(record: Mapping[str, Any]) -> str:
        return f"{record['kind']}::{record['nodeid']}::{record.get('check', '')}"

    def add(self, record: Mapping[str, Any], duration: float | None = None) -> None:
        """Add (or replace) a record; ``duration`` is its test's seconds, kept beside it."""
        key = self._key(record)
        self._records[key] = dict(record)
        if duration is not None:
            self._durations[key] = float(duration)

    def add_from_report(
        self,
        records: Iterable[Mapping[str, Any]],
        duration: float | None = None,
        nodeid_suffix: str = "",
    ) -> None:
        """Add the records a test attached to its report.

        ``nodeid_suffix`` is what ``--dist loadgroup`` appended to the node id (``@group``);
        it is removed, so grouped, parallel and serial runs record the same node ids.
        """
        for found in records:
            record = dict(found)
            if nodeid_suffix and record.get("nodeid", "").endswith(nodeid_suffix):
                record["nodeid"] = record["nodeid"][: -len(nodeid_suffix)]
            self.add(record, duration)

    def add_worker(self, worker: str, output: Mapping[str, Any]) -> None:
        """What one process reported about itself (``sessions_opened``…), by worker id; the
        packages it imported join :attr:`imported`."""
        output = dict(output)
        self.imported.update(output.pop("imported", None) or ())
        self._workers[worker] = output

    @property
    def records(self) -> list[dict[str, Any]]:
        return [self._records[key] for key in sorted(self._records)]

    @property
    def durations(self) -> dict[str, float]:
        """Seconds per record node id (the call phase of its test), sorted by node id."""
        return {
            self._records[key]["nodeid"]: self._durations[key] for key in sorted(self._durations)
        }

    @property
    def workers(self) -> dict[str, dict[str, Any]]:
        return {worker: dict(self._workers[worker]) for worker in sorted(self._workers)}

    def document(
        self,
        *,
        command_line: list[str],
        settings: Mapping[str, Any],
        export: Mapping[str, Any] | None,
        toolchain: Mapping[str, Any],
        io: Mapping[str, Any] | None = None,
        distributed: bool = False,
        formats: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The results document (schema ``schema/results.schema.json``, documented in
        ``docs/results.md``). ``formats`` maps each file's relative path to its format
        (``ModelFormat.to_json``)."""
        from pytest_onnxparity.results.views import group_by_graph

        records = self.records
        workers = self.workers
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command_line": command_line,
            "toolchain": dict(toolchain),
            "settings": dict(settings),
            "export": export,
            "run": {
                "distributed": distributed,
                "workers": workers,
                "sessions_opened": sum(w.get("sessions_opened", 0) for w in workers.values()),
                "durations_s": self.durations,
            },
            "summary": {
                "records": len(records),
                "passed": sum(1 for r in records if r["passed"]),
                "failed": sum(1 for r in records if not r["passed"]),
            },
            "formats": dict(formats or {}),
            "graphs": group_by_graph(records, export, io, self.durations, formats),
            "records": records,
        }


def plain_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` as plain JSON types, as it will cross to the controller (execnet refuses a
    ``numpy.float64``); a NaN or a value JSON cannot hold is a ``ValueError`` / ``TypeError``."""
    plain: dict[str, Any] = json.loads(json.dumps(record, allow_nan=False))
    return plain


def dashboard_properties(record: Mapping[str, Any]) -> list[tuple[str, str | float]]:
    """The few scalars of a record that go to ``user_properties`` (junitxml ``<property>``
    elements, for CI dashboards): graph, variant, status, and a parity record's worst gate."""
    status = "passed" if record["passed"] else ("error" if record.get("error") else "failed")
    properties: list[tuple[str, str | float]] = [
        ("parity_graph", record["graph"]),
        ("parity_variant", record["variant"]),
    ]
    if record["kind"] == "check":
        properties.append(("parity_check", record["check"]))
    properties.append(("parity_status", status))
    gates = (record.get("parity") or {}).get("gates") or []
    if gates:
        worst = worst_gate(gates)
        properties.append(("parity_worst_gate", f"{worst['output']}.{worst['metric']}"))
        if worst["value"] is not None:
            properties.append(("parity_worst_value", worst["value"]))
        properties.append(("parity_worst_limit", worst["limit"]))
    return properties


def worst_gate(gates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The gate (plain JSON) pressing hardest on its limit; failed gates rank first."""
    from pytest_onnxparity.compare.gates import pressure

    return max(gates, key=lambda g: pressure(g["metric"], g["value"], g["limit"], g["passed"]))


def schema_path() -> Path:
    """The JSON Schema of the results document, shipped in the package."""
    return Path(__file__).with_name("schema") / "results.schema.json"


def imported_packages() -> list[str]:
    """The :data:`USED_PACKAGES` this process imported (by distribution name)."""
    return sorted(dist for module, dist in USED_PACKAGES.items() if module in sys.modules)


def toolchain_versions(providers: Iterable[str] = (), used: Iterable[str] = ()) -> dict[str, Any]:
    """Versions of everything that shapes the numbers, without importing torch: the core
    packages always, and each of ``used`` (distribution names, e.g. ``transformers``) that is
    installed."""
    packages: dict[str, str | None] = {}
    for name in TOOLCHAIN_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    for name in sorted(set(used) - set(TOOLCHAIN_PACKAGES)):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    # onnxruntime-gpu (or another build) provides the module: its version under "onnxruntime",
    # and the distribution under its own name.
    runtime = installed_distribution("onnxruntime")
    if runtime is not None:
        distribution, version = runtime
        packages["onnxruntime"] = version
        packages[distribution] = version
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "packages": packages,
        "providers": sorted(providers),
        "executable": sys.executable,
    }


def installed_distribution(module: str) -> tuple[str, str] | None:
    """``(distribution, version)`` of the installed package that provides ``module``
    (``onnxruntime`` comes from ``onnxruntime``, ``onnxruntime-gpu``, …), or None."""
    names = metadata.packages_distributions().get(module) or [module]
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
