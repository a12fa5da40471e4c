"""The controller-side collector: gathers records from every worker, writes files, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_onnxparity import keys


class ParityReporter:
    """Registered once, on the controller (or the only process without xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        from pytest_onnxparity.results import ResultCollector

        self.config = config
        self.collector = ResultCollector()
        self.written: list[tuple[str, Path]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.collector.add_from_properties(report.user_properties)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if keys.SETTINGS not in self.config.stash and not self._wants_files():
            return
        from pytest_onnxparity.glue import ensure_settings

        settings = ensure_settings(self.config)
        from pytest_onnxparity.report import suggest_toml
        from pytest_onnxparity.results import write_json_atomic

        if settings.json_path is not None:
            write_json_atomic(settings.json_path, self.document())
            self.written.append(("results", settings.json_path))
        if settings.suggest_path is not None:
            text = suggest_toml(self.collector.records, settings.suggest_margin)
            settings.suggest_path.parent.mkdir(parents=True, exist_ok=True)
            settings.suggest_path.write_text(text, encoding="utf-8")
            self.written.append(("suggested limits", settings.suggest_path))

    def _wants_files(self) -> bool:
        """Output files were asked for even though no export folder started a run."""
        option = self.config.option
        return bool(
            option.parity_json or self.config.getini("parity_json") or option.parity_suggest
        )

    def document(self) -> dict[str, Any]:
        from pytest_onnxparity.results import toolchain_versions

        settings = self.config.stash[keys.SETTINGS]
        engine = self.config.stash.get(keys.ENGINE, None)
        providers = {
            p for r in self.collector.records for p in r.get("session", {}).get("providers", [])
        }
        return self.collector.document(
            command_line=list(self.config.invocation_params.args),
            settings=settings.to_json(),
            export=None if engine is None else engine.folder.to_json(),
            toolchain=toolchain_versions(providers),
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_onnxparity.report import check_lines, summary_lines

        records = self.collector.records
        lines = summary_lines(records)
        checks = check_lines(records)
        if lines and checks:
            lines.append("")
        lines.extend(checks)
        if not lines and not self.written:
            return
        terminalreporter.section("onnxparity")
        for line in lines:
            terminalreporter.write_line(line)
        for what, path in self.written:
            terminalreporter.write_line(f"{what} written to {path}")
