"""pytest glue of the sequence gates: a pipeline adapter run on clips, variant set by variant set.

Active when the config has a ``[sequence]`` table or ``--parity-clips`` / ``--parity-dataset``
names clips. The user's ``pytest_onnxparity_pipeline_adapter(config)`` hook (conftest.py)
returns the adapter. Under the export folder's node this adds, for every variant set:

* ``sequence[<set>-<clip>]`` per clip: the gates that hold clip by clip (token equality,
  argmax mismatches, first divergence, ``max_clip_wer``…), so a long run is items pytest
  counts and reports as it goes;
* ``sequence[<set>]``: every gate over the corpus (WER/CER as total edits over total words),
  with the per-clip table in the failure message and in the JSON results;
* ``rtf[<set>]`` (and ``rtf[fp32]`` for the reference set) when speed budgets or
  ``--parity-timing`` ask for timings: the pipeline's real-time factor, timed by the speed
  gates' :class:`~pytest_onnxparity.plugin.speed_items.TimingItem`.

Every item of a set shares one ``xdist_group``. Each process keeps one
:class:`~pytest_onnxparity.speech.sequence.run.SequenceCache`: clips load at the first item
that needs them (collection lists only their ids), each clip is decoded by the reference
graphs once, and
each (set, clip) comparison is made once, whichever item asks first.

Only pytest and the standard library are imported here at load time."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from pytest_onnxparity.plugin import keys
from pytest_onnxparity.plugin.folder_hooks import FolderHooks
from pytest_onnxparity.plugin.sequence_items import SequenceItem, sequence_items
from pytest_onnxparity.plugin.sequence_settings import SEQUENCE, SequenceSettings

if TYPE_CHECKING:
    from pytest_onnxparity.run.engine import ParityEngine


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Resolved here, not at configure: this module is registered while the core's
    # pytest_configure runs, before the export folder and its config files are read.
    config = session.config
    option = config.option
    cli_source = option.parity_clips is not None or option.parity_dataset is not None
    engine = config.stash.get(keys.ENGINE, None)
    if engine is None:
        if cli_source:
            raise pytest.UsageError(
                "onnxparity: --parity-clips/--parity-dataset need --onnx-dir: the sequence "
                "gates run the export folder's graphs"
            )
        return
    from pytest_onnxparity.config.tables import ConfigError

    try:
        settings = resolve_settings(config, engine)
    except MissingClipsError as error:
        # Clips often come from the command line of the one CI job that runs these gates: a
        # run without them fails the sequence test, not every test of the folder.
        config.stash[MISSING_CLIPS] = str(error)
        return
    except ConfigError as error:
        raise pytest.UsageError(f"onnxparity: {error}") from None
    if settings is not None:
        config.stash[SEQUENCE] = settings


class MissingClipsError(ValueError):
    """A ``[sequence]`` table without clips, and none on the command line."""


MISSING_CLIPS: pytest.StashKey[str] = pytest.StashKey()


class MissingClipsItem(FolderHooks, pytest.Item):
    """``sequence[clips]``: the sequence gates were asked for without clips to run them on."""

    def __init__(self, *, problem: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem
        self.add_marker("parity")

    def runtest(self) -> None:
        pytest.fail(self.problem, pytrace=False)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


def resolve_settings(config: pytest.Config, engine: ParityEngine) -> SequenceSettings | None:
    """The ``[sequence]`` table under the command-line options, or None when neither asks for
    sequence gates. Raises ``ConfigError`` naming the table or the flag."""
    from pytest_onnxparity.config.tables import ConfigError, read_toml_table, section_where
    from pytest_onnxparity.speech.audio.source import ClipSource
    from pytest_onnxparity.speech.sequence.config import parse_sequence_options

    option = config.option
    parity_config = engine.settings.config
    has_table = "sequence" in parity_config.sections
    if not has_table and option.parity_clips is None and option.parity_dataset is None:
        return None
    where = section_where(parity_config.sources, "sequence")
    options = parse_sequence_options(parity_config.section("sequence"), where)
    folder_table = read_toml_table(engine.folder.root / "parity.toml", ("sequence",)) or {}
    folder_source = "clips_dir" in folder_table or "dataset" in folder_table
    base_dir = engine.folder.root if folder_source else config.rootpath
    source = options.source
    if option.parity_clips is not None and option.parity_dataset is not None:
        raise ConfigError("--parity-clips and --parity-dataset: give one of them, not both")
    if option.parity_clips is not None:
        source = ClipSource(
            clips_dir=str(option.parity_clips),
            limit=None if source is None else source.limit,
            sample_rate=None if source is None else source.sample_rate,
        )
    elif option.parity_dataset is not None:
        if source is not None and source.dataset is not None:
            source = dataclasses.replace(source, dataset=option.parity_dataset)
        else:
            source = ClipSource(
                dataset=option.parity_dataset,
                limit=None if source is None else source.limit,
                sample_rate=None if source is None else source.sample_rate,
            )
    if source is None:
        raise MissingClipsError(
            f"{where}: no clips: set clips_dir (a folder of wav/flac with .txt transcripts) or "
            "dataset (a local audiofolder or a hub name), or pass --parity-clips DIR"
        )
    return SequenceSettings(
        options=options,
        source=source,
        base_dir=base_dir,
        where=where,
        limit=option.parity_clips_limit,
        selected=tuple(dict.fromkeys(option.parity_variant_set)),
    )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SEQUENCE, None)
    if settings is None:
        return None
    limit = settings.clip_limit
    selected = ", ".join(settings.selected) or "all"
    return [
        f"onnxparity sequence: {settings.source.describe(settings.base_dir)}"
        f"{f', first {limit} clips' if limit else ''}; variant sets: {selected}"
    ]


def pytest_onnxparity_folder_items(
    parent: pytest.Collector, engine: ParityEngine
) -> list[pytest.Item] | None:
    problem = parent.config.stash.get(MISSING_CLIPS, None)
    if problem is not None:
        return [MissingClipsItem.from_parent(parent, name="sequence[clips]", problem=problem)]
    settings = parent.config.stash.get(SEQUENCE, None)
    if settings is None:
        return None
    return sequence_items(parent, engine, settings)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Free the pipeline's sessions after the last sequence item in a row."""
    if not isinstance(item, SequenceItem) or isinstance(nextitem, SequenceItem):
        return
    if item.release is not None:
        item.release()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collector = config.stash.get(keys.COLLECTOR, None)
    if collector is None or SEQUENCE not in config.stash:
        return
    from pytest_onnxparity.speech.sequence.report import summary_lines

    lines = summary_lines(collector.records)
    if not lines:
        return
    terminalreporter.section("onnxparity sequence")
    for line in lines:
        terminalreporter.line(line)
