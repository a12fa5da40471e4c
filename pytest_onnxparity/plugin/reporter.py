"""The controller-side collector: gathers records from every worker, writes files, prints.

One ``ParityReporter`` per run, on the controller (or the only process without xdist). At
session finish it builds the results document once and derives everything else from it: the
``--parity-json`` file, the metadata block, its Markdown, and the baseline comparison, whose
regressions set the session's exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.results.baseline import BaselineComparison, RegressionRule

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class ResultsOutputs:
    """The metadata, Markdown and baseline outputs of a run, resolved once at configure time."""

    metadata_path: Path | None = None
    markdown_path: Path | None = None
    model_index_path: Path | None = None
    baseline_path: Path | None = None
    baseline: Mapping[str, Any] | None = None
    """The baseline document as read (results or metadata)."""
    rules: tuple[RegressionRule, ...] = ()
    rules_given: bool = False
    """False when the rules are the defaults: then a rule matching nothing is not reported."""

    @property
    def needs_metadata(self) -> bool:
        return bool(
            self.metadata_path
            or self.markdown_path
            or self.model_index_path
            or self.baseline is not None
        )


def resolve_outputs(config: pytest.Config) -> ResultsOutputs:
    """Command line > ini (paths in ini are relative to the rootdir); bad input is a UsageError."""
    option = config.option

    def path(name: str) -> Path | None:
        cli = getattr(option, name, None)
        if cli:
            return Path(cli).resolve()
        ini = config.getini(name)
        return (config.rootpath / str(ini)).resolve() if ini else None

    baseline_path = path("parity_baseline")
    rules = option.parity_baseline_fail
    if rules is not None and baseline_path is None:
        raise pytest.UsageError(
            "onnxparity: --parity-baseline-fail needs --parity-baseline OLD.json to compare with"
        )
    ini_spec = config.getini("parity_baseline_fail")
    rules_given = rules is not None or bool(ini_spec)
    if baseline_path is None and not rules_given:
        # No baseline asked for: leave the baseline module unimported (every pytest run gets here).
        return ResultsOutputs(
            metadata_path=path("parity_metadata"),
            markdown_path=path("parity_markdown"),
            model_index_path=path("parity_model_index"),
            baseline_path=None,
            baseline=None,
            rules=(),
            rules_given=False,
        )
    from pytest_onnxparity.results.baseline import (
        DEFAULT_FAIL_SPEC,
        BaselineError,
        parse_fail_spec,
        read_baseline,
    )

    if rules is None:
        spec = ini_spec or DEFAULT_FAIL_SPEC
        try:
            rules = parse_fail_spec(str(spec))
        except argparse.ArgumentTypeError as error:
            raise pytest.UsageError(f"onnxparity: ini parity_baseline_fail: {error}") from None
    baseline = None
    if baseline_path is not None:
        try:
            baseline = read_baseline(baseline_path)
        except BaselineError as error:
            raise pytest.UsageError(f"onnxparity: {error}") from None
    return ResultsOutputs(
        metadata_path=path("parity_metadata"),
        markdown_path=path("parity_markdown"),
        model_index_path=path("parity_model_index"),
        baseline_path=baseline_path,
        baseline=baseline,
        rules=tuple(rules),
        rules_given=rules_given,
    )


class ParityReporter:
    """Registered once, on the controller (or the only process without xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        from pytest_onnxparity.results.records import ResultCollector

        self.config = config
        self.collector = ResultCollector()
        self.outputs = resolve_outputs(config)
        from pytest_onnxparity.plugin.output_paths import check_named_outputs

        check_named_outputs(config, self.outputs)
        self.written: list[tuple[str, Path]] = []
        self.appended: list[Path] = []
        self.comparison: BaselineComparison | None = None
        self.suggest_lines: list[str] = []
        self.write_failure: str | None = None
        self.notes: list[tuple[str, bool]] = []
        """Lines for the summary about the written files: (text, is_a_problem)."""
        # ``--dist loadgroup`` appends ``@group`` to node ids; records are stored without it.
        self.group_suffixes = config.getoption("dist", None) == "loadgroup"
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(WorkerOutputs(self.collector), "onnxparity-workers")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from pytest_onnxparity.plugin.results import report_records

        records = report_records(report)
        if records:
            suffix = _group_suffix(report.nodeid) if self.group_suffixes else ""
            self.collector.add_from_report(records, report.duration, suffix)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if keys.SETTINGS not in self.config.stash and not self._wants_files():
            return
        from pytest_onnxparity.plugin.run import ensure_settings

        settings = ensure_settings(self.config)
        from pytest_onnxparity.plugin.output_paths import results_bytes

        if not self.config.pluginmanager.hasplugin("dsession"):
            from pytest_onnxparity.plugin.results import process_output

            self.collector.add_worker("main", process_output(self.config))
        metadata = None
        files: list[tuple[str, Path, bytes]] = []
        if settings.json_path is not None or self.outputs.needs_metadata:
            document = self.document()
            if self.outputs.needs_metadata:
                metadata = self._metadata(document)
                files = self._metadata_files(metadata)
            if settings.json_path is not None:
                files.insert(0, ("results", settings.json_path, results_bytes(document, files)))
        if settings.suggest_path is not None:
            suggested = self._suggestion(session, settings.suggest_path, settings)
            if suggested is not None:
                files.append(("suggested limits", settings.suggest_path, suggested))
        self._write(session, files)
        if metadata is not None and self.outputs.model_index_path is not None:
            self._write_model_index(metadata, document)
        if metadata is not None and self.outputs.baseline is not None:
            self._compare_baseline(session, metadata)

    def _suggestion(self, session: pytest.Session, path: Path, settings: Any) -> bytes | None:
        """``--parity-suggest``'s file (limits per input set, none for damage); None, with the
        reason in the summary, where a file it did not write appeared since the start."""
        from pytest_onnxparity.results.suggest import SuggestError, check_destination, suggest

        suggestion = suggest(self.collector.records, settings.suggest_margin)
        self.suggest_lines = suggestion.lines()
        try:
            check_destination(path, settings.suggest_force)
        except SuggestError as error:
            self.suggest_lines.append(f"suggested limits not written: {error}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return None
        return suggestion.render(path).encode("utf-8")

    def _write(self, session: pytest.Session, files: list[tuple[str, Path, bytes]]) -> None:
        from pytest_onnxparity.plugin.output_paths import write_together

        self.write_failure = write_together(files)
        if self.write_failure is not None:
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.written.extend((what, path) for what, path, _ in files)
        markdown = self.outputs.markdown_path
        step_summary = os.environ.get(STEP_SUMMARY_ENV)
        if markdown is not None and step_summary:
            text = next(data for _, path, data in files if path == markdown).decode("utf-8")
            with open(step_summary, "a", encoding="utf-8") as stream:
                stream.write(text + "\n")
            self.appended.append(Path(step_summary))

    def _metadata(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The metadata block of this run, after ``pytest_onnxparity_update_metadata`` hooks."""
        from pytest_onnxparity.results.metadata import build_metadata

        metadata = build_metadata(document)
        self.config.hook.pytest_onnxparity_update_metadata(metadata=metadata, config=self.config)
        return metadata

    def _metadata_files(self, metadata: Mapping[str, Any]) -> list[tuple[str, Path, bytes]]:
        from pytest_onnxparity.results.markdown import render_markdown
        from pytest_onnxparity.results.metadata import dumps_stable

        outputs = self.outputs
        files = []
        if outputs.metadata_path is not None:
            files.append(
                ("parity metadata", outputs.metadata_path, dumps_stable(metadata).encode("utf-8"))
            )
        if outputs.markdown_path is not None:
            text = render_markdown(metadata)
            files.append(("markdown", outputs.markdown_path, text.encode("utf-8")))
        return files

    def _write_model_index(self, metadata: Mapping[str, Any], document: Mapping[str, Any]) -> None:
        """The Hub's evaluation results (WER/CER against ground truth), validated with
        huggingface_hub when it is installed; named after ``metadata["model"]`` (set it in
        ``pytest_onnxparity_update_metadata``), else the export folder."""
        from pytest_onnxparity.files.atomic import write_text_atomic
        from pytest_onnxparity.results.model_index import (
            ModelIndexError,
            build_model_index,
            dumps_model_index,
            validate_model_index,
        )

        path = self.outputs.model_index_path
        assert path is not None
        folder = (document.get("settings") or {}).get("onnx_dir") or "model"
        name = str(metadata.get("model") or Path(folder).name)
        index = build_model_index(metadata, name)
        write_text_atomic(path, dumps_model_index(index, as_json=path.suffix == ".json"))
        self.written.append(("model-index", path))
        results = sum(len(entry["metrics"]) for entry in index[0]["results"])
        try:
            version = validate_model_index(index)
        except ModelIndexError as error:
            self.notes.append((f"model-index {path}: {error}", True))
            return
        checked = f"accepted by huggingface_hub {version}" if version else "not validated"
        if not results:
            checked += "; no WER/CER against ground truth in this run, so no results"
        self.notes.append((f"model-index: {results} metric(s), {checked}", False))

    def _compare_baseline(self, session: pytest.Session, metadata: Mapping[str, Any]) -> None:
        """Compare with the baseline; a regression fails the session (the summary lists it)."""
        from pytest_onnxparity.results.baseline import compare
        from pytest_onnxparity.results.metadata import METADATA_SCHEMA, build_metadata

        outputs = self.outputs
        old = outputs.baseline or {}
        if old.get("schema") != METADATA_SCHEMA:
            old = build_metadata(old)
        comparison = compare(old, metadata, outputs.rules, str(outputs.baseline_path))
        if not outputs.rules_given:
            comparison = dataclasses.replace(comparison, unmatched_rules=())
        self.comparison = comparison
        if comparison.failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _wants_files(self) -> bool:
        """Output files were asked for even though no export folder started a run."""
        option = self.config.option
        return bool(
            option.parity_json
            or self.config.getini("parity_json")
            or option.parity_suggest
            or self.outputs.needs_metadata
        )

    def document(self) -> dict[str, Any]:
        from pytest_onnxparity.plugin import export_facts
        from pytest_onnxparity.results.records import imported_packages, toolchain_versions

        settings = self.config.stash[keys.SETTINGS]
        engine = self.config.stash.get(keys.ENGINE, None)
        providers = {
            p for r in self.collector.records for p in r.get("session", {}).get("providers", [])
        }
        used = set(imported_packages()) | self.collector.imported
        return self.collector.document(
            command_line=list(self.config.invocation_params.args),
            settings=settings.to_json(),
            export=None if engine is None else engine.folder.to_json(),
            toolchain=toolchain_versions(providers, used),
            io=None if engine is None else export_facts.graph_io(engine),
            distributed=self.config.pluginmanager.hasplugin("dsession"),
            formats=None if engine is None else export_facts.file_formats(engine),
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        quiet = (
            not self.written
            and self.comparison is None
            and self.write_failure is None
            and not self.suggest_lines
        )
        if not self.collector.records and quiet:
            return  # an inert run: nothing to say, and nothing heavy (numpy) to import
        from pytest_onnxparity.plugin.run import shown_path
        from pytest_onnxparity.results.terminal import report_lines

        lines = report_lines(self.collector.records, self.collector.workers)
        if not lines and quiet:
            return
        terminalreporter.section("onnxparity")
        # line(), not write_line(): the latter first ends the progress line, a blank line here.
        for line in lines:
            terminalreporter.line(line)
        if self.comparison is not None:
            for number, line in enumerate(self.comparison.lines()):
                red = (number == 0 and self.comparison.failed) or line.startswith("  REGRESSED")
                terminalreporter.line(line, red=red, green=line.startswith("  improved"))
        for line in self.suggest_lines:
            terminalreporter.line(line, yellow=True)
        for what, path in self.written:
            terminalreporter.line(f"{what} written to {shown_path(path, self.config)}")
        for text, problem in self.notes:
            terminalreporter.line(text, red=problem)
        for path in self.appended:
            terminalreporter.line(f"markdown appended to {path} ({STEP_SUMMARY_ENV})")
        if self.write_failure is not None:
            terminalreporter.line(self.write_failure, red=True)


class WorkerOutputs:
    """xdist's controller hook, registered only when xdist is loaded: each worker's numbers."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        from pytest_onnxparity.plugin.results import WORKER_OUTPUT_KEY

        output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if output is not None:
            self.collector.add_worker(str(node.workerinput["workerid"]), output)


def _group_suffix(nodeid: str) -> str:
    """The ``@group`` that ``--dist loadgroup`` appended to a node id, or ''."""
    _, at, group = nodeid.rpartition("@")
    if not at or any(char in group for char in "[]:/"):
        return ""
    return at + group
