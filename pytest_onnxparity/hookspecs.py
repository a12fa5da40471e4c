"""Hooks that conftest.py files and plugins implement to extend pytest-onnxparity.

Registered by ``pytest_addhooks``; each is documented with when it runs and what it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_onnxparity.discovery import Graph
    from pytest_onnxparity.engine import ParityEngine


@pytest.hookspec
def pytest_onnxparity_graph_items(
    parent: pytest.Collector, graph: Graph, engine: ParityEngine
) -> list[pytest.Item] | None:
    """Extra test items for one graph of the export folder (health checks, size budgets…).

    Called while the graph's node is collected; return items made with
    ``SomeItem.from_parent(parent, name=...)`` or None. All implementations' lists are joined.
    """


@pytest.hookspec(firstresult=True)
def pytest_onnxparity_update_record(record: dict[str, Any], item: pytest.Item) -> None:
    """Edit a result record (plain JSON) in place before it is attached to the test report."""


@pytest.hookspec
def pytest_onnxparity_failure_details(
    item: pytest.Item, record: dict[str, Any]
) -> list[str] | None:
    """Extra lines for a failed parity test's message (e.g. which layer drifted first).

    ``record`` is the plain-JSON record of the failed test; it may be edited in place to add
    what the lines describe. All implementations' lines are appended in order.
    """


@pytest.hookspec
def pytest_onnxparity_update_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    """Edit the parity metadata block (plain JSON) in place before it is used.

    Called once per run, on the controller, after every record is in and before
    ``--parity-metadata`` and ``--parity-markdown`` are written and ``--parity-baseline``
    compares. Add what a model card needs (``metadata["model"] = "org/name@rev"``) or drop what
    it must not show; keys are sorted when the block is written.
    """


@pytest.hookspec
def pytest_onnxparity_folder_items(
    parent: pytest.Collector, engine: ParityEngine
) -> list[pytest.Item] | None:
    """Extra test items for the export folder as a whole (e.g. a pipeline spanning graphs).

    Called while the folder's node is collected, after its graphs; return items made with
    ``SomeItem.from_parent(parent, name=...)`` or None. All implementations' lists are joined.
    """


@pytest.hookspec(firstresult=True)
def pytest_onnxparity_pipeline_adapter(config: pytest.Config) -> Any:
    """The pipeline adapter the sequence gates run on every clip, or None.

    Return a callable ``adapter(graphs, clip, *, forced_tokens=None) -> PipelineOutput``
    (``pytest_onnxparity.sequence.PipelineAdapter``). ``graphs`` maps each graph of the
    pipeline (``encoder``, ``decoder_init``…) to the runner of the file one variant set chose
    for it (``runner.run({input: array}) -> {output: array}``); ``clip`` is a
    ``pytest_onnxparity.clips.Clip`` (mono float32 ``audio``, ``sample_rate``, ground-truth
    ``text``). With ``forced_tokens`` it feeds those tokens instead of its predictions and
    returns every step's logits. Optional attributes: ``sample_rate`` (clips are resampled to
    it) and ``graphs`` (the pipeline's graph names when ``[sequence] graphs`` does not list
    them). Asked once per process, at collection, when ``[sequence]`` or ``--parity-clips``
    asks for sequence gates. See ``docs/sequence.md``.
    """
