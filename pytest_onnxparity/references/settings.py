"""The run's reference settings, validated once: each graph's spec from the ``[references]``
table and the command line, where recordings go, and which graphs the reference hook is asked
about."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.references.config import ReferenceSpec

RECORD_LAYOUTS = ("npz", "test-data")


RECORD_FOLDER = "reference"


def recorded_path(folder: Path, graph: str) -> Path:
    """Where a graph's recording lies in ``folder``: ``<graph>.npz``, else the test-data folder
    ``<graph>/``; the ``.npz`` name when neither exists (the error then names it)."""
    npz = folder / f"{graph}.npz"
    directory = folder / graph
    return directory if not npz.exists() and directory.is_dir() else npz


@dataclass(frozen=True)
class ReferenceSettings:
    """Every reference choice of a run, resolved once: command line > config table > default.

    ``reference_dir``: ``--parity-reference-dir``; ``recorded_dir``: the folder
    ``--parity-recorded`` reads (``<onnx-dir>/reference``); ``record_layout``:
    ``--parity-record`` (None: do not record); ``allow_pickle``: ``--parity-allow-pickle``.
    """

    specs: Mapping[str, ReferenceSpec] = field(default_factory=dict)
    reference_dir: Path | None = None
    recorded_dir: Path | None = None
    record_layout: str | None = None
    allow_pickle: bool = False

    def spec(self, graph: str) -> ReferenceSpec:
        """The reference of ``graph``. The command line replaces the kind but keeps the
        configured input sources; a graph without a table gets the default (its fp32 file)."""
        configured = self.specs.get(graph) or ReferenceSpec(where=f"[references.{graph}]")
        if self.recorded_dir is not None:
            return ReferenceSpec(
                kind="recorded",
                path=recorded_path(self.recorded_dir, graph),
                where="--parity-recorded",
            )
        if self.reference_dir is not None:
            return dataclasses.replace(
                ReferenceSpec(
                    kind="other-dir", path=self.reference_dir, where="--parity-reference-dir"
                ),
                input_data=configured.input_data,
                synthesize=configured.synthesize,
                inputs_from=configured.inputs_from,
            )
        if self.allow_pickle and configured.kind == "checkpoint":
            return dataclasses.replace(configured, allow_pickle=True)
        return configured

    def asks_hook(self, graph: str) -> bool:
        """Whether the reference hook may supply this graph's reference: its kind is
        ``module``, or nothing replaced the default (the graph's own fp32 file)."""
        spec = self.spec(graph)
        return spec.kind == "module" or spec.is_default_reference

    def to_json(self) -> dict[str, object]:
        return {
            "specs": {graph: spec.to_json() for graph, spec in self.specs.items()},
            "reference_dir": None if self.reference_dir is None else str(self.reference_dir),
            "recorded_dir": None if self.recorded_dir is None else str(self.recorded_dir),
            "record_layout": self.record_layout,
            "allow_pickle": self.allow_pickle,
        }


def check_graph_names(specs: Mapping[str, ReferenceSpec], graphs: Sequence[str]) -> None:
    """A table or ``inputs_from`` naming a graph the folder lacks is a typo: say so up front."""
    known = set(graphs)
    for graph, spec in specs.items():
        named = [graph] + ([spec.inputs_from.upstream] if spec.inputs_from else [])
        unknown = [name for name in named if name not in known]
        if unknown:
            raise ConfigError(
                f"{spec.where}: no graph {unknown[0]!r} in the export folder; graphs are "
                f"{', '.join(sorted(known)) or 'none'}"
            )
