"""Graph health: is each graph sound, and is it what the release claims, before numbers count.

One check per call of :func:`run_health_check`, named ``health:<check>``:

* ``checker``: ``onnx.checker`` full check from the file path (external data included, no 2 GiB
  protobuf copy), plus every external tensor's bytes present in its sidecar file.
* ``opset``: the ai.onnx opset and the IR version within configured bounds.
* ``domains``: every node's operator domain among ``allowed_domains``.
* ``initializers``: no NaN/Inf in float tensors (a single-value ±Inf, the fill value of
  ``masked_fill(-inf)``, is a warning where the reference has it too); no weight that the
  variant made all-zero, constant or far off where the reference's tensor is not (compared
  after dequantizing, matched as :mod:`pytest_onnxparity.compare.weight_space` matches); all-zero
  weight matrices of a reference reported as warnings.
* ``structure``: no dangling node input, no unused initializer, the reference's graph inputs and
  outputs.
* ``outputs``: the graph's outputs on synthesized inputs hold no NaN/Inf and are not constant.

Models are read without external data; tensor values are streamed one at a time from their
sidecar files, so the checks hold at most one tensor pair in memory whatever the model's size.
What each check enforces comes from :mod:`pytest_onnxparity.diagnose.health.config`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.diagnose.health.checker import check_checker
from pytest_onnxparity.diagnose.health.common import Outcome, Unreadable
from pytest_onnxparity.diagnose.health.config import (
    HEALTH_CHECKS,
    HealthOptions,
)
from pytest_onnxparity.diagnose.health.initializers import check_initializers
from pytest_onnxparity.diagnose.health.opset import check_domains, check_opset
from pytest_onnxparity.diagnose.health.outputs import check_outputs
from pytest_onnxparity.diagnose.health.structure import check_structure
from pytest_onnxparity.onnxfile.dequantize import (
    TensorReadError,
)
from pytest_onnxparity.results.records import CheckResult


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
            outcome = check_checker(model_path)
        elif check == "opset":
            outcome = check_opset(model_path, options)
        elif check == "domains":
            outcome = check_domains(model_path, options, variant)
        elif check == "initializers":
            outcome = check_initializers(model_path, reference_path)
        elif check == "structure":
            outcome = check_structure(model_path, reference_path)
        else:
            if run_outputs is None:
                raise ValueError("the outputs health check needs run_outputs")
            outcome = check_outputs(model_path, run_outputs(), options)
    except (Unreadable, TensorReadError) as error:
        outcome = Outcome([str(error)], {"unreadable": True})
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
