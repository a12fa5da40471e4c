"""Worker side of the results: what each process reports about itself to the controller.

Records travel on test reports; what belongs to a whole worker (how many ONNX Runtime sessions
it opened) travels in xdist's ``workeroutput`` and reaches ``ParityReporter`` through
``pytest_testnodedown``. Imports only pytest and the standard library.
"""

from __future__ import annotations

import pytest

from pytest_onnxparity.plugin import keys

WORKER_OUTPUT_KEY = "onnxparity"


def process_output(config: pytest.Config) -> dict[str, object]:
    """This process's own numbers: sessions opened by its engine (0 without an export folder),
    and which of the toolchain's optional packages it imported (transformers, jiwer…)."""
    from pytest_onnxparity.results.records import imported_packages

    engine = config.stash.get(keys.ENGINE, None)
    return {
        "sessions_opened": 0 if engine is None else engine.sessions.opened,
        "imported": imported_packages(),
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_OUTPUT_KEY] = process_output(session.config)
