"""``python -m pytest_onnxparity``: render, compare and suggest print what a pytest run with the
matching options prints or writes, from the stored files alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_onnxparity.cli.main import main
from tests.paths import EXAMPLE


@dataclass(frozen=True)
class StoredRun:
    """One pytest run on the bundled example, and every file it wrote."""

    stdout: str
    results: Path
    metadata: Path
    markdown: Path
    suggested: Path


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> StoredRun:
    folder = tmp_path_factory.mktemp("stored")
    files = {name: folder / name for name in ("r.json", "m.json", "p.md", "s.toml")}
    process = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
            f"--onnx-dir={EXAMPLE}",
            f"--parity-json={files['r.json']}",
            f"--parity-metadata={files['m.json']}",
            f"--parity-markdown={files['p.md']}",
            f"--parity-suggest={files['s.toml']}",
        ],
        cwd=folder, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"},
    )  # fmt: skip
    return StoredRun(process.stdout, *files.values())


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def onnxparity_section(stdout: str) -> list[str]:
    """The lines of the run's ``onnxparity`` summary section, up to the files it wrote."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if " onnxparity " in line and "=" in line)
    section = []
    for line in lines[start + 1 :]:
        if line.startswith("=") or " written to " in line:
            break
        section.append(line)
    return section


def test_render_prints_the_table_the_run_printed(
    stored: StoredRun, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "render", str(stored.results))

    assert status == 0
    assert out.splitlines() == onnxparity_section(stored.stdout)
    assert out.splitlines()[-1] == (
        "6 parity tests (6 passed), 6 checks (6 passed); 8 sessions opened (main: 8)"
    )


def test_render_markdown_and_metadata_are_the_files_the_run_wrote(
    stored: StoredRun, capsys: pytest.CaptureFixture[str]
) -> None:
    _, markdown, _ = cli(capsys, "render", str(stored.results), "--format", "markdown")
    _, metadata, _ = cli(capsys, "render", str(stored.results), "--format", "metadata")
    _, from_block, _ = cli(capsys, "render", str(stored.metadata), "--format", "markdown")

    assert markdown == stored.markdown.read_text()
    assert metadata == stored.metadata.read_text()
    assert from_block == markdown


def test_render_writes_to_a_file_when_asked(
    stored: StoredRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "card" / "parity.md"

    status, out, err = cli(
        capsys, "render", str(stored.results), "--format", "markdown", "-o", str(target)
    )

    assert (status, out) == (0, "")
    assert err == f"python -m pytest_onnxparity: render written to {target}\n"
    assert target.read_text() == stored.markdown.read_text()


def test_suggest_writes_the_snippet_the_run_wrote(
    stored: StoredRun, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "suggest", str(stored.results))
    _, wider, _ = cli(capsys, "suggest", str(stored.results), "--margin", "3")

    assert status == 0
    assert out == stored.suggested.read_text()
    assert wider.startswith(
        "# Suggested by pytest-onnxparity --parity-suggest: measured values x 3, per input set."
    )


def test_suggest_never_writes_over_a_file_it_did_not_write_unless_forced(
    stored: StoredRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mine = tmp_path / "parity.toml"
    mine.write_text("[tolerance]\nrel_l2 = 0.1\n")

    status, _, err = cli(capsys, "suggest", str(stored.results), "--output", str(mine))
    forced, _, _ = cli(capsys, "suggest", str(stored.results), "--output", str(mine), "--force")

    assert status == 2
    assert "exists and was not written by this option" in err and "--force" in err
    assert forced == 0 and mine.read_text() == stored.suggested.read_text()


def test_compare_of_a_run_with_itself_finds_no_regression(
    stored: StoredRun, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "compare", str(stored.results), str(stored.metadata))

    assert status == 0
    assert out.startswith(f"baseline {stored.results}: 0 regression(s), 0 improvement(s) over ")


def test_compare_exits_1_on_a_regression_and_names_it(
    stored: StoredRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    document = json.loads(stored.results.read_text())
    document["graphs"]["encoder"]["variants"]["int8"]["outputs"]["hidden"]["rel_l2"] *= 10
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(document))

    status, out, _ = cli(capsys, "compare", str(stored.results), str(worse), "--fail", "rel_l2:2x")

    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"baseline {stored.results}: 1 regression(s), 0 improvement(s)")
    assert re.fullmatch(
        r"  REGRESSED encoder/int8 hidden\.rel_l2: \S+ -> \S+ \(x10; rule rel_l2:2x\)", lines[1]
    )
    assert lines[-1] == (
        "  next step: fix the variants, or if the change is intended, relax --fail or store "
        "this run's file as the new baseline"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("render", "missing.json"),
            "python -m pytest_onnxparity: results file missing.json: no such file; write one on "
            "the run to compare against with --parity-json PATH (or --parity-metadata PATH)",
        ),
        (
            ("render", "{metadata}"),
            "python -m pytest_onnxparity: {metadata}: a metadata block keeps no per-test records "
            "for the table; render it with --format markdown, or render the --parity-json file "
            "of the same run",
        ),
        (
            ("suggest", "{metadata}"),
            "python -m pytest_onnxparity: {metadata}: a metadata block keeps rounded numbers; "
            "suggest limits from the --parity-json file of the run",
        ),
    ],
    ids=["missing", "table-of-a-metadata-block", "suggest-from-a-metadata-block"],
)
def test_a_file_that_cannot_be_used_is_one_line_and_exit_2(
    stored: StoredRun, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    filled = [arg.format(metadata=stored.metadata) for arg in args]

    status, out, err = cli(capsys, *filled)

    assert (status, out) == (2, "")
    assert err == message.format(metadata=stored.metadata) + "\n"


def test_a_bad_fail_spec_is_a_usage_error(
    stored: StoredRun, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(stored.results), str(stored.results), "--fail", "rel_l2:lots"])

    assert exit_.value.code == 2
    assert "error: argument --fail: expected METRIC:LIMIT" in capsys.readouterr().err


def test_the_module_runs_without_importing_pytest(stored: StoredRun) -> None:
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['pytest_onnxparity', 'render', {str(stored.results)!r}]\n"
        "try:\n"
        "    runpy.run_module('pytest_onnxparity', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "assert not {'pytest', '_pytest', 'pluggy'} & set(sys.modules), 'pytest was imported'\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert process.returncode == 0, process.stderr
    assert "6 parity tests (6 passed)" in process.stdout
