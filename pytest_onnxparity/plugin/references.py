"""pytest glue for references: options and config tables into frozen settings, the conftest
hooks, the ``parity_reference`` fixture, and ``--parity-record``.

Imports only pytest and the standard library at top level; the core is imported when a run
starts, and torch only when a torch reference is built.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.references.base import Reference
    from pytest_onnxparity.references.settings import ReferenceSettings
    from pytest_onnxparity.run.cases import Recording, ReferenceHooks
    from pytest_onnxparity.run.engine import ParityEngine

REFERENCE_SETTINGS: pytest.StashKey[ReferenceSettings] = pytest.StashKey()
RECORDER_NAME = "onnxparity-recorder"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Resolve the reference settings once the engine exists, before the header and collection
    (the terminal reporter and xdist start their sessions last)."""
    config = session.config
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        return
    from pytest_onnxparity.config.tables import ConfigError

    try:
        settings = reference_settings(config, engine)
        engine.use_references(settings, reference_hooks(config))
    except ConfigError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    config.stash[REFERENCE_SETTINGS] = settings
    if settings.record_layout is not None and not hasattr(config, "workerinput"):
        recorder = ReferenceRecorder(engine, settings.record_layout)
        config.pluginmanager.register(recorder, RECORDER_NAME)


def reference_settings(config: pytest.Config, engine: ParityEngine) -> ReferenceSettings:
    """Command line and ini over the export folder's ``parity.toml`` ``[references]`` over the
    project's ``[tool.onnxparity.references]``; each table's paths relative to its file."""
    from pytest_onnxparity.config.project import FOLDER_CONFIG_NAME
    from pytest_onnxparity.config.tables import ConfigError, read_toml_table
    from pytest_onnxparity.references.config import parse_reference_layers, refuse_folder_pickle
    from pytest_onnxparity.references.settings import RECORD_FOLDER, ReferenceSettings

    layers = []
    pyproject = config.rootpath / "pyproject.toml"
    table = read_toml_table(pyproject, ("tool", "onnxparity", "references"))
    if table is not None:
        layers.append((table, f"{pyproject} [tool.onnxparity]", pyproject.parent))
    folder_file = engine.folder.root / FOLDER_CONFIG_NAME
    table = read_toml_table(folder_file, ("references",))
    if table is not None:
        refuse_folder_pickle(table, str(folder_file))
        layers.append((table, str(folder_file), engine.folder.root))
    specs = parse_reference_layers(layers)
    option = config.option
    reference_dir = None
    if option.parity_reference_dir:
        reference_dir = Path(option.parity_reference_dir).resolve()
        if not reference_dir.is_dir():
            raise ConfigError(
                f"--parity-reference-dir {reference_dir}: no such directory; pass the export "
                "folder to compare with (e.g. the previous release)"
            )
    recorded = option.parity_recorded
    if recorded is None:
        recorded = bool(config.getini("parity_recorded"))
    if recorded and reference_dir is not None:
        raise ConfigError(
            "--parity-recorded and --parity-reference-dir both replace every graph's "
            "reference; pass one of them"
        )
    return ReferenceSettings(
        specs=specs,
        reference_dir=reference_dir,
        recorded_dir=engine.folder.root / RECORD_FOLDER if recorded else None,
        record_layout=option.parity_record,
        allow_pickle=bool(option.parity_allow_pickle),
    )


def reference_hooks(config: pytest.Config) -> ReferenceHooks:
    """The conftest hooks as the plain callables the engine takes."""
    from pytest_onnxparity.run.cases import INPUTS_HOOK, REFERENCE_HOOK, ReferenceHooks

    def module(graph: str) -> Any:
        return _call_hook(config, REFERENCE_HOOK, graph)

    def inputs(graph: str) -> Any:
        return _call_hook(config, INPUTS_HOOK, graph)

    return ReferenceHooks(module=module, inputs=inputs)


def _call_hook(config: pytest.Config, name: str, graph: str) -> Any:
    """Ask every implementation of a user hook; whatever one raises becomes one line naming the
    user's line that raised it. Two implementations answering for one graph is an error: which
    one pytest would pick depends on how the conftest folders sort."""
    from pytest_onnxparity.references.base import ReferenceError

    answers = [
        (where, answer)
        for where, function in _implementations(config, name)
        if (answer := _ask(function, where, name, graph, config)) is not None
    ]
    if len(answers) > 1:
        raise ReferenceError(
            f"the {name} hook answers for graph {graph!r} in both {answers[0][0]} and "
            f"{answers[1][0]}; return None for it from all but one"
        )
    return answers[0][1] if answers else None


def _implementations(config: pytest.Config, name: str) -> list[tuple[str, Callable[..., Any]]]:
    hook = getattr(config.hook, name)
    found = []
    for implementation in hook.get_hookimpls():
        function = implementation.function
        code = getattr(function, "__code__", None)
        where = (
            f"{_shown_path(config, code.co_filename)}:{code.co_firstlineno}"
            if code is not None
            else implementation.plugin_name
        )
        found.append((where, function))
    return found


def _ask(
    function: Callable[..., Any], where: str, name: str, graph: str, config: pytest.Config
) -> Any:
    from pytest_onnxparity.references.base import (
        TORCH_EXTRA,
        ReferenceError,
        TorchMissingError,
        first_line,
    )

    try:
        return function(graph=graph, config=config)
    except Exception as error:  # user code in conftest.py: anything can come out of it
        line = _user_line(config, error, where)
        if isinstance(error, ImportError) and (error.name or "").split(".")[0] == "torch":
            raise TorchMissingError(
                f"the {name} hook for {graph!r} ({line}) needs torch, which is not installed: "
                f"{TORCH_EXTRA} (or gate on outputs recorded with --parity-record)"
            ) from None
        raise ReferenceError(
            f"the {name} hook raised {type(error).__name__} for graph {graph!r} at {line}: "
            f"{first_line(error)}; fix the hook ({where})"
        ) from error


def _user_line(config: pytest.Config, error: BaseException, where: str) -> str:
    """The last frame of the traceback in the user's own files (not in torch, numpy or any
    installed package): where the hook called what failed."""
    import sysconfig

    installed = {
        str(Path(sysconfig.get_paths()[key]).resolve()) for key in ("purelib", "platlib", "stdlib")
    }
    frames = traceback.extract_tb(error.__traceback__)
    own = [
        frame
        for frame in frames
        if not any(str(Path(frame.filename).resolve()).startswith(path) for path in installed)
    ]
    frame = (own or frames)[-1] if frames else None
    if frame is None:
        return where
    return f"{_shown_path(config, frame.filename)}:{frame.lineno}"


def _shown_path(config: pytest.Config, filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(config.rootpath))
    except ValueError:
        return str(path)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(REFERENCE_SETTINGS, None)
    engine = config.stash.get(keys.ENGINE, None)
    if settings is None or engine is None:
        return None
    chosen = []
    # Every graph, with the reference it really runs against (the hook's module included) and
    # where its inputs come from beside the synthesized sets.
    for graph in engine.folder.graphs:
        spec = settings.spec(graph.name)
        sources = []
        if spec.inputs_from is not None:
            sources.append(f"inputs from {spec.inputs_from.upstream}")
        sources += [path.name for path in spec.input_data]
        if not spec.synthesize:
            sources.append("not synthesized")
        extra = f" ({', '.join(sources)})" if sources else ""
        chosen.append(f"{graph.name} vs {engine.references.chosen_label(graph)}{extra}")
    lines = [f"onnxparity references: {'; '.join(chosen)}"] if chosen else []
    from pytest_onnxparity.run.cases import REFERENCE_HOOK

    hooks = [where for where, _ in _implementations(config, REFERENCE_HOOK)]
    if hooks:
        lines.append(
            f"onnxparity reference hook: {', '.join(hooks)} (its answer replaces the fp32 file "
            "of the graphs it answers for)"
        )
    if settings.record_layout is not None:
        lines.append(
            f"onnxparity: recording references ({settings.record_layout}) to "
            f"{engine.folder.root / 'reference'}"
        )
    return lines


@pytest.fixture
def parity_reference(request: pytest.FixtureRequest) -> Callable[..., Reference]:
    """``parity_reference(graph)``: the graph's reference as this run chose it.

    ``parity_reference(graph, kind="torchscript", path="refs/encoder.pt", ...)``: another one,
    from the keys of a ``[references.<graph>]`` table (paths relative to the rootdir);
    ``parity_reference(graph, module=model)``: an ``nn.Module`` or callable. Call
    ``.outputs(parity_case.inputs)`` on the result for named arrays.
    """
    from pytest_onnxparity.plugin.fixtures import NO_EXPORT

    engine: ParityEngine | None = request.config.stash.get(keys.ENGINE, None)
    if engine is None:
        pytest.skip(NO_EXPORT)

    def get(graph: str, module: Any = None, **table: Any) -> Reference:
        __tracebackhide__ = True
        import dataclasses

        from pytest_onnxparity.config.tables import ConfigError
        from pytest_onnxparity.export.folder import NotDiscoveredError
        from pytest_onnxparity.references.config import parse_reference_options
        from pytest_onnxparity.run.cases import INPUT_PROBLEMS

        try:
            found = engine.folder.graph(graph)
            if module is None and not table:
                return engine.reference(found)
            where = f"parity_reference({graph!r})"
            spec = parse_reference_options({graph: table}, where, request.config.rootpath)[graph]
            if module is not None:
                spec = dataclasses.replace(spec, kind="module")
            return engine.build_reference(found, spec, module)
        except (ConfigError, NotDiscoveredError, *INPUT_PROBLEMS) as problem:
            pytest.fail(f"parity_reference: {problem}", pytrace=False)

    return get


class ReferenceRecorder:
    """``--parity-record``, on the controller: notes the graphs whose parity tests ran (their
    records arrive from every worker), then runs each graph's reference on its input sets and
    writes them, one atomic write per file."""

    def __init__(self, engine: ParityEngine, layout: str) -> None:
        self.engine = engine
        self.layout = layout
        self.graphs: set[str] = set()
        self.recordings: list[Recording] = []
        self.failures: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from pytest_onnxparity.plugin.results import report_records

        for record in report_records(report):
            if record.get("kind") == "parity":
                self.graphs.add(record["graph"])

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_onnxparity.references.recorded import RecordedDataError
        from pytest_onnxparity.run.cases import INPUT_PROBLEMS

        for graph in self.engine.folder.graphs:
            if graph.name not in self.graphs:
                continue
            try:
                self.recordings.append(self.engine.record(graph, self.layout))
            except (*INPUT_PROBLEMS, RecordedDataError, OSError) as problem:
                self.failures.append(f"{graph.name}: not recorded: {problem}")
            finally:
                self.engine.release(graph)
        if self.failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.recordings and not self.failures:
            return
        terminalreporter.section("onnxparity record")
        for recording in self.recordings:
            paths = ", ".join(str(path) for path in recording.paths)
            if self.layout == "test-data":
                paths = f"{recording.paths[0].parent}/"
            terminalreporter.line(
                f"{recording.graph}: {recording.reference} on {recording.sets} input set(s) "
                f"recorded to {paths}"
            )
        for failure in self.failures:
            terminalreporter.line(failure, red=True)
        if self.recordings:
            terminalreporter.line(
                "gate on them without torch: pytest --onnx-dir "
                f"{self.engine.folder.root} --parity-recorded"
            )
