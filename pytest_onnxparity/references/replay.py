"""Replayed references: outputs recorded earlier, served for the inputs they were recorded on,
and recording a reference's outputs for a later run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytest_onnxparity.references.base import Reference, ReferenceError
from pytest_onnxparity.references.recorded import RecordedDataError, RecordedSet, read_recorded
from pytest_onnxparity.runtime.inputs import InputSet


class RecordedReference:
    """Outputs recorded earlier; answers only the input sets it recorded."""

    def __init__(
        self,
        path: Path,
        sets: Sequence[RecordedSet],
        *,
        graph_inputs: Sequence[str] | None = None,
        graph_outputs: Sequence[str] | None = None,
        skip_outputs: Sequence[str] = (),
    ) -> None:
        """Each set must record every input and every output but ``skip_outputs``."""
        self.path = Path(path)
        self.description = f"recorded {self.path.parent.name}/{self.path.name}"
        self.sets = {recorded.name: recorded for recorded in sets}
        for recorded in sets:
            where = self._where(recorded)
            if graph_inputs is not None:
                missing = [name for name in graph_inputs if name not in recorded.inputs.arrays]
                if missing:
                    raise ReferenceError(
                        f"{where}: no recorded input(s) {missing} (it has "
                        f"{sorted(recorded.inputs.arrays)}); re-record it with --parity-record"
                    )
            if not recorded.outputs:
                raise ReferenceError(
                    f"{where}: holds inputs but no outputs; re-record it with --parity-record "
                    "(or use the file as input_data instead)"
                )
            if graph_outputs is not None:
                missing = [
                    name
                    for name in graph_outputs
                    if name not in recorded.outputs and name not in skip_outputs
                ]
                if missing:
                    raise ReferenceError(
                        f"{where}: no recorded output(s) {missing} (it has "
                        f"{sorted(recorded.outputs)}); re-record it with --parity-record or "
                        "list them in skip_outputs"
                    )

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        graph_inputs: Sequence[str] | None = None,
        graph_outputs: Sequence[str] | None = None,
        skip_outputs: Sequence[str] = (),
    ) -> RecordedReference:
        """Read ``path`` (``.npz`` or a test-data folder) and check it against the graph."""
        try:
            sets = read_recorded(path, graph_inputs, graph_outputs)
        except RecordedDataError as error:
            raise ReferenceError(str(error)) from None
        return cls(
            path,
            sets,
            graph_inputs=graph_inputs,
            graph_outputs=graph_outputs,
            skip_outputs=skip_outputs,
        )

    def _where(self, recorded: RecordedSet) -> str:
        if self.path.suffix == ".npz":
            return f"{self.path} (set {recorded.name!r})"
        return str(self.path / recorded.name)

    def outputs(self, inputs: InputSet) -> dict[str, np.ndarray]:
        recorded = self.sets.get(inputs.name)
        if recorded is None:
            raise ReferenceError(
                f"{self.path}: no recorded set {inputs.name!r} (it has {sorted(self.sets)}); run "
                "on the recorded input sets or re-record it with --parity-record"
            )
        for name, array in recorded.inputs.arrays.items():
            given = inputs.arrays.get(name)
            if given is None or given.shape != array.shape or not np.array_equal(given, array):
                raise ReferenceError(
                    f"{self._where(recorded)}: input {name!r} differs from the one recorded; "
                    "run on the recorded inputs or re-record it with --parity-record"
                )
        return {name: np.array(array, copy=True) for name, array in recorded.outputs.items()}

    def input_sets(self) -> list[InputSet] | None:
        return [recorded.inputs for recorded in self.sets.values()]


def record_outputs(reference: Reference, input_sets: Sequence[InputSet]) -> list[RecordedSet]:
    """Run ``reference`` on each set, ready for ``recorded.write_recorded`` (--parity-record)."""
    return [RecordedSet(inputs, reference.outputs(inputs)) for inputs in input_sets]
