"""Output paths are checked before a run starts; several outputs are written as one step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_onnxparity.files.atomic import temp_name, write_files_atomic
from pytest_onnxparity.files.outputs import (
    NamedOutput,
    OutputPathError,
    check_outputs,
    remove_stale_temporaries,
)


def test_outputs_in_a_new_folder_are_accepted_and_the_folder_made(tmp_path: Path) -> None:
    output = NamedOutput("--parity-json", tmp_path / "new" / "results.json")

    check_outputs([output])

    assert (tmp_path / "new").is_dir()
    assert list((tmp_path / "new").iterdir()) == []  # the probe leaves nothing behind


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")

    with pytest.raises(OutputPathError, match="is an input of this run"):
        check_outputs([NamedOutput("--parity-json", model)], input_files=[model])


def test_an_output_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    recordings = tmp_path / "reference"

    with pytest.raises(OutputPathError, match="is an input of this run"):
        check_outputs(
            [NamedOutput("--parity-json", recordings / "x.json")], input_folders=[recordings]
        )


def test_two_outputs_on_one_path_are_refused_even_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    outputs = [
        NamedOutput("--parity-json", tmp_path / "real" / "out.json"),
        NamedOutput("--parity-metadata", tmp_path / "link" / "out.json"),
    ]

    with pytest.raises(OutputPathError, match="is also the path of --parity-json"):
        check_outputs(outputs)


def test_a_file_without_the_marker_of_its_option_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "parity.toml"
    target.write_text("[graphs.encoder]\n")
    output = NamedOutput("--parity-suggest", target, marker="# Suggested by")

    with pytest.raises(OutputPathError, match="was not written by this option"):
        check_outputs([output])
    target.write_text("# Suggested by an earlier run\n")
    check_outputs([output])


@pytest.mark.parametrize("kind", ["folder", "file-parent"])
def test_a_path_that_cannot_be_a_file_is_refused(tmp_path: Path, kind: str) -> None:
    (tmp_path / "a-file").write_text("x")
    path = tmp_path if kind == "folder" else tmp_path / "a-file" / "out.json"

    with pytest.raises(OutputPathError, match=r"is a folder|its folder cannot be created"):
        check_outputs([NamedOutput("--parity-json", path)])


def test_stale_temporaries_of_an_output_are_removed_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    stale = temp_name(target)
    stale.write_text("{")
    other = tmp_path / ".other.json.0123abcd.tmp"
    other.write_text("{")

    assert remove_stale_temporaries(target) == [stale]
    assert other.exists() and not stale.exists()


def test_several_files_are_replaced_together_in_order(tmp_path: Path) -> None:
    metadata, results = tmp_path / "metadata.json", tmp_path / "results.json"
    results.write_text("old")

    write_files_atomic([(metadata, b"meta"), (results, b"results")])

    assert metadata.read_bytes() == b"meta" and results.read_bytes() == b"results"
    assert sorted(os.listdir(tmp_path)) == ["metadata.json", "results.json"]


def test_a_failed_write_replaces_nothing_and_leaves_no_temporary(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text("old")
    blocked = tmp_path / "a-file"
    blocked.write_text("x")

    with pytest.raises(OSError):
        write_files_atomic([(results, b"new"), (blocked / "metadata.json", b"meta")])

    assert results.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a-file", "results.json"]
