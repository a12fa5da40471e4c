"""``health:outputs``: the graph's outputs on synthesized inputs hold no NaN/Inf and are not
constant."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.diagnose.health.common import Outcome, listed
from pytest_onnxparity.diagnose.health.config import (
    HealthOptions,
)


def check_outputs(path: Path, outputs: Mapping[str, np.ndarray], options: HealthOptions) -> Outcome:
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
        return Outcome([], details)
    return Outcome(
        [
            f"{path}: {len(bad)} outputs are non-finite or constant on the synthesized inputs; "
            "a collapsed graph (zeroed weights, a broken quantizer, fp16 overflow) — check the "
            "initializers health check and the step that wrote the graph",
            *listed(bad),
        ],
        details,
    )
