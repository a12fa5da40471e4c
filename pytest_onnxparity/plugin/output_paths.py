"""Glue: the output paths of a run, gathered from the options and ini keys and checked against
its inputs when the run starts (see :mod:`pytest_onnxparity.files.outputs`), so a wrong path is
a usage error before any test runs, not a traceback after all of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_onnxparity.plugin import keys

if TYPE_CHECKING:
    from pytest_onnxparity.files.outputs import NamedOutput


class ResultsPaths(Protocol):
    """The result file paths resolved from the options (``reporter.ResultsOutputs``)."""

    @property
    def metadata_path(self) -> Path | None: ...
    @property
    def markdown_path(self) -> Path | None: ...
    @property
    def baseline_path(self) -> Path | None: ...
    @property
    def model_index_path(self) -> Path | None: ...


def check_named_outputs(config: pytest.Config, outputs: ResultsPaths) -> None:
    """Raise a usage error for the first output path that cannot be written safely; remove the
    temporary files an interrupted earlier run left beside the outputs."""
    from pytest_onnxparity.files.outputs import (
        OutputPathError,
        check_outputs,
        remove_stale_temporaries,
    )

    named = named_outputs(config, outputs)
    if not named:
        return
    input_files, input_folders = _inputs(config, outputs)
    try:
        check_outputs(named, input_files, input_folders)
    except OutputPathError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    for output in named:
        if not output.folder:
            remove_stale_temporaries(output.path)


def named_outputs(config: pytest.Config, outputs: ResultsPaths) -> list[NamedOutput]:
    from pytest_onnxparity.files.outputs import NamedOutput

    option = config.option
    named = []
    json_path = option.parity_json or config.getini("parity_json")
    if json_path:
        flag = "--parity-json" if option.parity_json else "ini parity_json"
        named.append(NamedOutput(flag, Path(json_path).resolve()))
    if outputs.metadata_path is not None:
        named.append(NamedOutput("--parity-metadata", outputs.metadata_path))
    if outputs.markdown_path is not None:
        named.append(NamedOutput("--parity-markdown", outputs.markdown_path))
    if outputs.model_index_path is not None:
        named.append(NamedOutput("--parity-model-index", outputs.model_index_path))
    if option.parity_suggest:
        from pytest_onnxparity.results.suggest import MARKER

        force = bool(option.parity_suggest_force)
        named.append(
            NamedOutput(
                "--parity-suggest",
                Path(option.parity_suggest).resolve(),
                marker=None if force else MARKER,
                force_flag="--parity-suggest-force",
            )
        )
    plot_dir = getattr(option, "parity_localize_dir", None)
    if plot_dir is not None:
        named.append(NamedOutput("--parity-localize-dir", Path(plot_dir), folder=True))
    return named


def _inputs(config: pytest.Config, outputs: ResultsPaths) -> tuple[list[Path], list[Path]]:
    """Files and folders the run reads: nothing of them may be an output."""
    from pytest_onnxparity.config.project import FOLDER_CONFIG_NAME
    from pytest_onnxparity.references.settings import RECORD_FOLDER

    option = config.option
    files = [config.rootpath / "pyproject.toml"]
    folders = []
    if outputs.baseline_path is not None:
        files.append(outputs.baseline_path)
    engine = config.stash.get(keys.ENGINE, None)
    if engine is not None:
        root = engine.folder.root
        files.append(root / FOLDER_CONFIG_NAME)
        folders.append(root / RECORD_FOLDER)
        for graph in engine.folder.graphs:
            for model in graph.files:
                files.append(model.path)
                files.extend(model.external_data)
    for name in ("parity_reference_dir", "parity_clips"):
        value = getattr(option, name, None)
        if value:
            folders.append(Path(value).resolve())
    suite = getattr(option, "parity_suite", None)
    if suite and Path(suite).is_file():
        files.append(Path(suite).resolve())
    return files, folders


def results_bytes(document: dict[str, Any], companions: list[tuple[str, Path, bytes]]) -> bytes:
    """The results document, naming the SHA-256 of each file written with it."""
    import hashlib
    import json

    if companions:
        document["run"]["companions"] = {
            what: {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}
            for what, path, data in companions
        }
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")


def write_together(files: list[tuple[str, Path, bytes]]) -> str | None:
    """Write every output in one step, the first (the results) last since it names the hashes
    of the others (:func:`~pytest_onnxparity.files.atomic.write_files_atomic`); the reason as
    one line when the write failed (and nothing was replaced)."""
    from pytest_onnxparity.files.atomic import write_files_atomic

    if not files:
        return None
    try:
        write_files_atomic([(path, data) for _, path, data in files[1:] + files[:1]])
    except OSError as error:
        return (
            f"onnxparity: could not write {error.filename or 'the outputs'} "
            f"({error.strerror or type(error).__name__}); nothing was replaced, the old files "
            "are intact"
        )
    return None
