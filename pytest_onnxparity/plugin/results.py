"""Worker side of the results: a test's records onto its report, and what each process reports
about itself to the controller.

A record is attached with :func:`attach_record` while a test runs; ``pytest_runtest_makereport``
moves the records of that phase onto the report as ``report.onnxparity_records`` (plain JSON,
which pytest-xdist serializes with the report), and ``user_properties`` get a few scalars for
junitxml. What belongs to a whole worker (how many ONNX Runtime sessions it opened) travels in
xdist's ``workeroutput`` and reaches ``ParityReporter`` through ``pytest_testnodedown``.
Imports only pytest, the standard library and ``results.records``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import pytest

from pytest_onnxparity.plugin import keys
from pytest_onnxparity.results.records import REPORT_ATTRIBUTE  # standard library only

WORKER_OUTPUT_KEY = "onnxparity"


def attach_record(item: pytest.Item, record: dict[str, Any]) -> None:
    """Let ``pytest_onnxparity_update_record`` edit ``record``, then attach it to this phase's
    report (and its scalars to ``item.user_properties``)."""
    from pytest_onnxparity.results.records import dashboard_properties, plain_record

    item.ihook.pytest_onnxparity_update_record(record=record, item=item)
    plain = plain_record(record)
    item.stash.setdefault(keys.ITEM_RECORDS, []).append(plain)
    item.user_properties.extend(dashboard_properties(plain))


def report_records(report: pytest.TestReport) -> list[Mapping[str, Any]]:
    """The records a test attached to this report (none on most reports)."""
    return list(getattr(report, REPORT_ATTRIBUTE, None) or [])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    records = item.stash.get(keys.ITEM_RECORDS, None)
    if records:
        setattr(report, REPORT_ATTRIBUTE, list(records))
        records.clear()
    return report


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
