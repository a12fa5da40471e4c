"""Unit tests for the results core: collector, document, schema file and the atomic write."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_onnxparity.files.atomic import write_json_atomic, write_text_atomic
from pytest_onnxparity.results.records import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    CheckResult,
    ResultCollector,
    schema_path,
    toolchain_versions,
)
from pytest_onnxparity.run.settings import Settings


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _check_record(nodeid: str, check: str = "size", **details: Any) -> dict[str, Any]:
    result = CheckResult(check, "encoder", "int8", True, details=details)
    return {"kind": "check", "nodeid": nodeid, **result.to_json()}


def _document(collector: ResultCollector) -> dict[str, Any]:
    return collector.document(
        command_line=["--onnx-dir", "export"],
        settings=Settings(onnx_dir=None).to_json(),
        export=None,
        toolchain=toolchain_versions(["CPUExecutionProvider"]),
    )


def test_records_come_out_sorted_whatever_order_they_arrived_in() -> None:
    first, second = ResultCollector(), ResultCollector()
    records = [_check_record(f"export::encoder::size[{n}]", size_mb=n) for n in range(3)]
    for record in records:
        first.add(record, duration=0.5)
    for record in reversed(records):
        second.add(record, duration=0.5)
    assert first.records == second.records
    without_created = [
        {k: v for k, v in _document(c).items() if k != "created"} for c in (first, second)
    ]
    assert without_created[0] == without_created[1]


def test_a_record_added_again_replaces_the_first_and_keeps_its_duration() -> None:
    collector = ResultCollector()
    record = _check_record("export::encoder::size[int8]", size_mb=1.0)
    collector.add_from_report([record], duration=0.25)
    collector.add({**record, "details": {"size_mb": 2.0}})
    assert [r["details"] for r in collector.records] == [{"size_mb": 2.0}]
    assert collector.durations == {"export::encoder::size[int8]": 0.25}
    assert _document(collector)["run"]["durations_s"] == {"export::encoder::size[int8]": 0.25}


def test_the_loadgroup_suffix_is_taken_off_node_ids() -> None:
    collector = ResultCollector()
    record = _check_record("export::encoder::size[int8]@encoder")
    collector.add_from_report([record], nodeid_suffix="@encoder")
    assert collector.records[0]["nodeid"] == "export::encoder::size[int8]"


def test_document_reports_each_worker_and_the_sessions_they_opened() -> None:
    collector = ResultCollector()
    collector.add_worker("gw1", {"sessions_opened": 4})
    collector.add_worker("gw0", {"sessions_opened": 5})
    run = _document(collector)["run"]
    assert run == {
        "distributed": False,
        "workers": {"gw0": {"sessions_opened": 5}, "gw1": {"sessions_opened": 4}},
        "sessions_opened": 9,
        "durations_s": {},
    }


def test_document_validates_against_the_shipped_schema() -> None:
    collector = ResultCollector()
    collector.add(_check_record("export::encoder::size[int8]", size_mb=1.0, budgets=[]))
    collector.add(_check_record("export::encoder::coverage[int8]", "coverage", fraction=0.5))
    collector.add_worker("main", {"sessions_opened": 2})
    document = _document(collector)
    assert document["schema"] == SCHEMA_NAME and document["schema_version"] == SCHEMA_VERSION
    _validator().validate(json.loads(json.dumps(document, allow_nan=False)))


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda d: d.pop("records"), []),
        (lambda d: d.update(extra=1), []),
        (lambda d: d["records"][0].update(passed="yes"), ["records", 0]),
        (lambda d: d["records"][0].update(kind="other"), ["records", 0]),
        (lambda d: d["records"][0]["details"].update(size_mb="big"), ["records", 0]),
        (lambda d: d["records"][1]["details"].update(fraction=None), ["records", 1]),
        (lambda d: d["run"].pop("sessions_opened"), ["run"]),
    ],
)
def test_schema_rejects_a_broken_document(edit: Any, path: list[Any]) -> None:
    collector = ResultCollector()
    collector.add(_check_record("a::size", size_mb=1.0))
    collector.add(_check_record("b::coverage", "coverage", fraction=0.5))
    document = json.loads(json.dumps(_document(collector)))
    edit(document)
    errors = list(_validator().iter_errors(document))
    assert errors
    assert any(list(error.absolute_path)[: len(path)] == path for error in errors)


def test_toolchain_is_plain_json_with_versions_providers_and_cpu() -> None:
    toolchain = toolchain_versions(["CPUExecutionProvider"])
    assert json.loads(json.dumps(toolchain)) == toolchain
    assert toolchain["packages"]["onnxruntime"] and "torch" in toolchain["packages"]
    assert toolchain["providers"] == ["CPUExecutionProvider"]
    assert toolchain["cpu"] and toolchain["python"]


def test_atomic_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(target.parent) == ["results.json"]


def test_write_interrupted_midway_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    target.write_text('{"old": true}\n')

    def interrupted(fd: int) -> None:
        # Ctrl-C arrives while the new document sits in a temp file beside the old one.
        (temp,) = (p for p in tmp_path.iterdir() if p.name != "results.json")
        assert temp.name.startswith(".results.json.")
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, json.dumps({"new": list(range(10_000))}))
    assert target.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["results.json"]


def test_write_interrupted_before_any_file_existed_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(tmp_path / "results.json", {"new": 1})
    assert os.listdir(tmp_path) == []


def test_nan_is_refused_rather_than_written_as_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json_atomic(tmp_path / "r.json", {"x": float("nan")})
    assert not (tmp_path / "r.json").exists()


def test_results_files_are_as_readable_as_a_plain_write_would_make_them(tmp_path: Path) -> None:
    import os

    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    target = tmp_path / "results.json"

    write_json_atomic(target, {"a": 1})

    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    os.chmod(target, 0o640)
    write_json_atomic(target, {"a": 2})
    assert target.stat().st_mode & 0o777 == 0o640


def test_the_toolchain_names_the_onnxruntime_build_that_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib import metadata

    real_version = metadata.version

    def version(name: str) -> str:
        if name == "onnxruntime":
            raise metadata.PackageNotFoundError(name)
        return "1.20.1" if name == "onnxruntime-gpu" else real_version(name)

    monkeypatch.setattr(
        metadata, "packages_distributions", lambda: {"onnxruntime": ["onnxruntime-gpu"]}
    )
    monkeypatch.setattr(metadata, "version", version)

    packages = toolchain_versions()["packages"]

    assert packages["onnxruntime"] == packages["onnxruntime-gpu"] == "1.20.1"
