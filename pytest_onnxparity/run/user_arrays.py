"""``assert_parity(reference, variant)`` on two dicts of arrays a user computed: the same
comparison, limits and record as a generated test, without an export folder. No pytest here."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pytest_onnxparity.compare.parity import compare
from pytest_onnxparity.config.tolerances import ToleranceLayer
from pytest_onnxparity.results.records import ParityRecord
from pytest_onnxparity.run.cases import INPUT_PROBLEMS
from pytest_onnxparity.run.settings import Settings

USER_INPUT_SET = {"name": "user", "source": "test", "synthesized": False}


def check_arrays(
    settings: Settings,
    nodeid: str,
    reference: Mapping[str, np.ndarray],
    variant: Mapping[str, np.ndarray],
    *,
    graph: str = "custom",
    variant_name: str = "custom",
    tier: str = "fp32",
    layer: ToleranceLayer | None = None,
) -> ParityRecord:
    """Compare ``variant`` with ``reference`` output by output under the run's limits for
    ``tier`` (``layer`` on top); a mismatch of names, shapes or kinds is the record's error."""
    try:
        result = compare(
            reference,
            variant,
            lambda output: settings.tolerance(tier, graph, variant_name, output, layer),
        )
        error = None
    except INPUT_PROBLEMS as problem:
        result, error = None, str(problem)
    return ParityRecord(
        nodeid=nodeid,
        graph=graph,
        variant=variant_name,
        tier=tier,
        reference="user arrays",
        input_set=dict(USER_INPUT_SET),
        session={},
        result=result,
        error=error,
    )
