"""Generated test items: one per graph × variant × input set, under the export folder's node."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity.compare.gates import failure_message
from pytest_onnxparity.export.folder import Graph
from pytest_onnxparity.plugin import keys
from pytest_onnxparity.plugin.folder_hooks import FolderHooks
from pytest_onnxparity.plugin.hints import next_step
from pytest_onnxparity.plugin.markers import mark_generated
from pytest_onnxparity.plugin.results import attach_record
from pytest_onnxparity.results.records import CheckResult, ParityRecord
from pytest_onnxparity.run.cases import ParityCase
from pytest_onnxparity.run.engine import ParityEngine
from pytest_onnxparity.runtime.inputs import DEFAULT_SET


class ExportDirNode(FolderHooks, pytest.Directory):
    """The ``--onnx-dir`` folder, collected like a test directory: its children are graphs."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        engine: ParityEngine = self.config.stash[keys.ENGINE]
        nodes: list[pytest.Item | pytest.Collector] = [
            GraphNode.from_parent(self, name=graph.name, graph=graph, engine=engine)
            for graph in engine.folder.graphs
        ]
        for extra in self.ihook.pytest_onnxparity_folder_items(parent=self, engine=engine):
            nodes.extend(extra or [])
        return nodes


class GraphNode(FolderHooks, pytest.Collector):
    """One graph of the folder; its items are the variants' checks."""

    def __init__(self, *, graph: Graph, engine: ParityEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graph = graph
        self.engine = engine

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        graph, engine = self.graph, self.engine
        items: list[pytest.Item | pytest.Collector] = []
        tested = engine.tested_variants(graph)
        if not tested:
            name = f"load[{graph.reference}]"
            items.append(LoadItem.from_parent(self, name=name, graph=graph, engine=engine))
        input_keys = engine.input_keys(graph) if tested else []
        for variant_tag in tested:
            for key in input_keys:
                case = ParityCase.for_key(graph, graph.file(variant_tag), key)
                suffix = "" if key.name == DEFAULT_SET else f"-{key.name}"
                name = f"parity[{variant_tag}{suffix}]"
                items.append(ParityItem.from_parent(self, name=name, case=case, engine=engine))
        for extra in self.ihook.pytest_onnxparity_graph_items(
            parent=self, graph=graph, engine=engine
        ):
            items.extend(extra or [])
        return items


class ParityItem(FolderHooks, pytest.Item):
    """A variant against its graph's reference on one input set."""

    def __init__(self, *, case: ParityCase, engine: ParityEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.engine = engine
        mark_generated(self, case.graph.name)

    def runtest(self) -> None:
        record = self.engine.check(self.case, self.nodeid)
        record_json = record.to_json()
        details: list[str] = []
        if not record.passed and record.error is None:
            for lines in self.ihook.pytest_onnxparity_failure_details(
                item=self, record=record_json
            ):
                details.extend(lines or [])
        attach_record(self, record_json)
        if record.error is not None:
            pytest.fail(f"{self._title()}: {record.error}", pytrace=False)
        if not record.passed:
            message = failure_text(self._title(), record)
            pytest.fail("\n".join([message, *details]), pytrace=False)

    def _title(self) -> str:
        case = self.case
        reference = self.engine.reference_label(case.graph)
        return (
            f"{case.graph.name}[{case.variant.variant}] vs {reference} "
            f"on inputs {case.input_set_name}"
        )

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.case.variant.path, None, f"{self.case.graph.name}::{self.name}"


class CheckItem(FolderHooks, pytest.Item):
    """A non-numeric check of one graph variant: runs ``check()`` and gates on its result.

    Feature modules make these from ``pytest_onnxparity_graph_items``. A result that is not
    ``enforced`` (e.g. a timing budget in a parallel run) is recorded but never fails the test.
    """

    def __init__(
        self,
        *,
        check: Callable[[], CheckResult],
        graph: Graph,
        model_path: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.graph = graph
        self.model_path = model_path
        mark_generated(self, graph.name)

    def runtest(self) -> None:
        record_and_gate(self, self.check())

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.model_path, None, f"{self.graph.name}::{self.name}"


def record_and_gate(item: pytest.Item, result: CheckResult) -> None:
    """Attach ``result`` to ``item``'s report as a plain-JSON record; fail the test if it must."""
    __tracebackhide__ = True
    record = {"kind": "check", "nodeid": item.nodeid, **result.to_json()}
    attach_record(item, record)
    if not result.passed and result.enforced:
        pytest.fail(result.message or f"{result.check} failed", pytrace=False)


class LoadItem(FolderHooks, pytest.Item):
    """A graph without variants: still proven loadable, so a broken lone file never passes."""

    def __init__(self, *, graph: Graph, engine: ParityEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graph = graph
        self.engine = engine
        mark_generated(self, graph.name)

    def runtest(self) -> None:
        from pytest_onnxparity.runtime.sessions import ModelLoadError

        try:
            self.engine.runner(self.graph.reference_file)
        except ModelLoadError as error:
            pytest.fail(str(error), pytrace=False)
        config = self.engine.settings.config
        if config.require_variants:
            pytest.fail(
                f"{self.graph.reference_file.path}: graph {self.graph.name} has no variant to "
                f"compare, and require_variants = true ({' + '.join(config.sources)}); add the "
                'variant files, check exclude, or map a file to it with [files."<path>"] graph',
                pytrace=False,
            )

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.graph.reference_file.path, None, f"{self.graph.name}::{self.name}"


def failure_text(title: str, record: ParityRecord, **where_limits_came_from: Any) -> str:
    """The failure message of ``record``; keywords as :func:`~plugin.hints.next_step`'s."""
    assert record.result is not None
    hint = next_step(record, **where_limits_came_from)
    return failure_message(title, record.result.stats, record.result.gates, hint)


def collect_export_dir(path: Path, parent: pytest.Collector) -> ExportDirNode | None:
    """Claim the export folder when pytest's collection reaches it."""
    engine = parent.config.stash.get(keys.ENGINE, None)
    if engine is None or path != engine.folder.root:
        return None
    if not path.is_relative_to(parent.config.rootpath):
        # Outside the rootdir pytest would give the folder an empty node id (its items
        # ``::encoder::parity[int8]``); its own name reads like the ids inside a project.
        return ExportDirNode.from_parent(parent, path=path, nodeid=path.name)
    return ExportDirNode.from_parent(parent, path=path)


def release_finished_graph(
    engine: ParityEngine, item: pytest.Item, nextitem: pytest.Item | None
) -> None:
    """Free a graph's sessions and arrays once the next item belongs to another graph."""
    graph = _graph_of(item)
    if graph is not None and (nextitem is None or _graph_of(nextitem) is not graph):
        engine.release(graph)


def _graph_of(item: pytest.Item) -> Graph | None:
    if isinstance(item, ParityItem):
        return item.case.graph
    if isinstance(item, (LoadItem, CheckItem)):
        return item.graph
    return None
