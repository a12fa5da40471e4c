"""Recorded reference data on disk: the .npz layout and the ONNX test-data layout."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pytest_onnxparity.references.recorded import (
    RecordedDataError,
    RecordedSet,
    default_record_path,
    read_npz,
    read_recorded,
    read_test_data_dir,
    recorded_set_names,
    write_npz,
    write_recorded,
    write_test_data,
)
from pytest_onnxparity.runtime.inputs import InputSet
from tests.paths import EXAMPLE

EXAMPLE_REFERENCE = EXAMPLE / "reference"


def recorded_set(name: str = "default", seed: int = 0) -> RecordedSet:
    rng = np.random.default_rng(seed)
    inputs = {
        "features": rng.standard_normal((2, 5, 16)).astype(np.float32),
        "lengths": np.array([5, 3], dtype=np.int64),
    }
    outputs = {
        "hidden": rng.standard_normal((2, 5, 32)).astype(np.float32),
        "mask": rng.random((2, 5)) < 0.5,
        "logits": rng.standard_normal((2, 5, 12)).astype(np.float16),
    }
    return RecordedSet(InputSet(name, "synthesized", seed, {}, inputs), outputs)


def assert_same_sets(actual: list[RecordedSet], expected: list[RecordedSet]) -> None:
    assert [s.name for s in actual] == [s.name for s in expected]
    for got, want in zip(actual, expected, strict=True):
        for mine, theirs in ((got.inputs.arrays, want.inputs.arrays), (got.outputs, want.outputs)):
            assert list(mine) == list(theirs)
            for name, array in theirs.items():
                assert mine[name].dtype == array.dtype, name
                np.testing.assert_array_equal(mine[name], array, err_msg=name)


def test_one_default_set_is_written_flat_and_reads_back_identical(tmp_path: Path) -> None:
    sets = [recorded_set()]
    assert write_npz(tmp_path / "encoder.npz", sets) == [tmp_path / "encoder.npz"]
    with zipfile.ZipFile(tmp_path / "encoder.npz") as archive:
        assert archive.namelist() == [
            "input.features.npy",
            "input.lengths.npy",
            "output.hidden.npy",
            "output.mask.npy",
            "output.logits.npy",
        ]
    read = read_npz(tmp_path / "encoder.npz")
    assert_same_sets(read, sets)
    assert read[0].inputs.source == "recorded encoder.npz"


def test_several_sets_are_prefixed_by_their_names_and_keep_their_order(tmp_path: Path) -> None:
    sets = [recorded_set("frames=8", 1), recorded_set("default", 2), recorded_set("a.b", 3)]
    write_npz(tmp_path / "encoder.npz", sets)
    with zipfile.ZipFile(tmp_path / "encoder.npz") as archive:
        assert archive.namelist()[0] == "frames=8/input.features.npy"
    assert_same_sets(read_npz(tmp_path / "encoder.npz"), sets)


def test_the_committed_example_npz_reads_as_one_default_set() -> None:
    (recorded,) = read_npz(EXAMPLE_REFERENCE / "encoder.npz")
    assert recorded.name == "default"
    assert list(recorded.inputs.arrays) == ["features", "lengths"]
    assert list(recorded.outputs) == ["hidden", "logits"]
    assert recorded.inputs.arrays["features"].shape == (2, 50, 16)


def test_rewriting_the_same_sets_gives_the_same_bytes_and_leaves_no_temp_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "encoder.npz"
    write_npz(path, [recorded_set()])
    first = path.read_bytes()
    write_npz(path, [recorded_set()])
    assert path.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.npz"]


def test_a_failed_npz_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "encoder.npz"
    write_npz(path, [recorded_set()])
    before = path.read_bytes()
    broken = RecordedSet(recorded_set().inputs, {"bad": np.array([object()], dtype=object)})
    with pytest.raises(ValueError):
        write_npz(path, [broken])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.npz"]


def test_object_arrays_in_an_npz_are_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, **{"input.x": np.array([{"a": 1}], dtype=object)})
    pattern = r"evil\.npz: member 'input\.x\.npy' holds object \(pickled\) arrays"
    with pytest.raises(RecordedDataError, match=pattern):
        read_npz(path)


def test_a_corrupt_npz_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "encoder.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(RecordedDataError, match=r"encoder\.npz: not a readable \.npz file") as info:
        read_npz(path)
    assert "--parity-record" in str(info.value)
    assert "\n" not in str(info.value)


def test_an_npz_member_outside_the_layout_is_named(tmp_path: Path) -> None:
    path = tmp_path / "encoder.npz"
    np.savez(path, features=np.zeros(3))
    with pytest.raises(RecordedDataError, match=r"member 'features' is not"):
        read_npz(path)


def test_an_npz_set_with_outputs_but_no_inputs_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "encoder.npz"
    np.savez(path, **{"input.x": np.zeros(3), "other/output.y": np.zeros(3)})
    with pytest.raises(RecordedDataError, match=r"set 'other' has outputs but no inputs"):
        read_npz(path)


def test_a_set_name_with_a_slash_cannot_be_written_to_npz(tmp_path: Path) -> None:
    with pytest.raises(RecordedDataError, match=r"contains '/'"):
        write_npz(tmp_path / "x.npz", [recorded_set("a/b")])


def test_duplicate_set_names_cannot_be_recorded(tmp_path: Path) -> None:
    with pytest.raises(RecordedDataError, match=r"\['a'\] appear more than once"):
        write_npz(tmp_path / "x.npz", [recorded_set("a"), recorded_set("a")])


def test_test_data_layout_round_trips_names_dtypes_and_values(tmp_path: Path) -> None:
    sets = [recorded_set("first", 1), recorded_set("second", 2)]
    written = write_test_data(tmp_path / "encoder", sets)
    assert written == [
        tmp_path / "encoder" / "test_data_set_0",
        tmp_path / "encoder" / "test_data_set_1",
    ]
    assert sorted(p.name for p in written[0].iterdir()) == [
        "input_0.pb",
        "input_1.pb",
        "output_0.pb",
        "output_1.pb",
        "output_2.pb",
    ]
    read = read_test_data_dir(tmp_path / "encoder")
    assert [s.name for s in read] == ["test_data_set_0", "test_data_set_1"]
    renamed = [
        RecordedSet(InputSet(r.name, "", None, {}, s.inputs.arrays), s.outputs)
        for r, s in zip(read, sets, strict=True)
    ]
    assert_same_sets(read, renamed)


def test_unnamed_pb_tensors_take_the_models_input_and_output_order(tmp_path: Path) -> None:
    set_dir = tmp_path / "model" / "test_data_set_0"
    set_dir.mkdir(parents=True)
    for role, values in (
        ("input", [np.ones(2, np.float32), np.zeros(1, np.int64)]),
        ("output", [np.full(3, 2.0)]),
    ):
        for index, value in enumerate(values):
            (set_dir / f"{role}_{index}.pb").write_bytes(
                numpy_helper.from_array(value).SerializeToString()
            )
    (recorded,) = read_test_data_dir(tmp_path / "model", ["x", "n"], ["y"])
    assert list(recorded.inputs.arrays) == ["x", "n"]
    assert list(recorded.outputs) == ["y"]
    with pytest.raises(RecordedDataError, match=r"input_0\.pb: the tensor has no name"):
        read_test_data_dir(tmp_path / "model")


def test_a_corrupt_pb_names_the_file_and_the_fix(tmp_path: Path) -> None:
    write_test_data(tmp_path / "encoder", [recorded_set()])
    corrupt = tmp_path / "encoder" / "test_data_set_0" / "output_1.pb"
    corrupt.write_bytes(b"\xff\xfe garbage \x00\x01")
    with pytest.raises(RecordedDataError) as info:
        read_test_data_dir(tmp_path / "encoder")
    message = str(info.value)
    assert message.startswith(f"{corrupt}: ")
    assert message.endswith("re-record it with --parity-record")
    assert "\n" not in message


def test_an_empty_pb_is_reported_as_not_a_tensor(tmp_path: Path) -> None:
    write_test_data(tmp_path / "encoder", [recorded_set()])
    (tmp_path / "encoder" / "test_data_set_0" / "input_1.pb").write_bytes(b"")
    with pytest.raises(RecordedDataError, match=r"input_1\.pb: not a serialized onnx\.TensorProto"):
        read_test_data_dir(tmp_path / "encoder")


def test_a_set_missing_an_output_that_other_sets_record_is_an_error(tmp_path: Path) -> None:
    write_test_data(tmp_path / "encoder", [recorded_set("a"), recorded_set("b")])
    (tmp_path / "encoder" / "test_data_set_1" / "output_2.pb").unlink()
    with pytest.raises(
        RecordedDataError, match=r"test_data_set_1: missing output\(s\) \['logits'\]"
    ):
        read_test_data_dir(tmp_path / "encoder")


def test_a_gap_in_the_pb_numbering_is_an_error(tmp_path: Path) -> None:
    write_test_data(tmp_path / "encoder", [recorded_set()])
    (tmp_path / "encoder" / "test_data_set_0" / "output_1.pb").unlink()
    with pytest.raises(RecordedDataError, match=r"output_1\.pb missing"):
        read_test_data_dir(tmp_path / "encoder")


def test_rerecording_fewer_sets_removes_the_stale_ones(tmp_path: Path) -> None:
    write_test_data(tmp_path / "encoder", [recorded_set("a"), recorded_set("b"), recorded_set("c")])
    write_test_data(tmp_path / "encoder", [recorded_set("a", seed=9)])
    assert sorted(p.name for p in (tmp_path / "encoder").iterdir()) == ["test_data_set_0"]
    (read,) = read_test_data_dir(tmp_path / "encoder")
    np.testing.assert_array_equal(
        read.outputs["hidden"], recorded_set("a", seed=9).outputs["hidden"]
    )


def test_a_folder_without_test_data_sets_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecordedDataError, match=r"no test_data_set_<N> directories"):
        read_test_data_dir(tmp_path)


def test_read_and_write_recorded_choose_the_layout_from_the_path(tmp_path: Path) -> None:
    sets = [recorded_set()]
    assert write_recorded(tmp_path / "g.npz", sets) == [tmp_path / "g.npz"]
    assert write_recorded(tmp_path / "g", sets) == [tmp_path / "g" / "test_data_set_0"]
    assert read_recorded(tmp_path / "g.npz")[0].name == "default"
    assert read_recorded(tmp_path / "g")[0].name == "test_data_set_0"


def test_default_record_paths_live_in_the_export_folders_reference_dir(tmp_path: Path) -> None:
    assert default_record_path(tmp_path, "encoder") == tmp_path / "reference" / "encoder.npz"
    assert (
        default_record_path(tmp_path, "encoder", "test-data") == tmp_path / "reference" / "encoder"
    )
    with pytest.raises(RecordedDataError, match="unknown record layout 'csv'"):
        default_record_path(tmp_path, "encoder", "csv")


def test_pb_files_written_are_plain_named_tensor_protos(tmp_path: Path) -> None:
    write_test_data(tmp_path / "g", [recorded_set()])
    tensor = onnx.TensorProto()
    tensor.ParseFromString((tmp_path / "g" / "test_data_set_0" / "output_1.pb").read_bytes())
    assert tensor.name == "mask"
    assert tensor.data_type == onnx.TensorProto.BOOL


def test_set_names_are_listed_without_loading_arrays_in_both_layouts(tmp_path: Path) -> None:
    sets = [recorded_set("speech"), recorded_set("silence", 1)]
    write_npz(tmp_path / "clips.npz", sets)
    write_test_data(tmp_path / "clips", sets)
    assert recorded_set_names(tmp_path / "clips.npz") == ["speech", "silence"]
    assert recorded_set_names(tmp_path / "clips") == ["test_data_set_0", "test_data_set_1"]
    assert recorded_set_names(EXAMPLE_REFERENCE / "encoder.npz") == ["default"]


def junk_npz(tmp_path: Path) -> Path:
    (tmp_path / "rec.npz").write_bytes(b"junk")
    return tmp_path / "rec.npz"


def empty_folder(tmp_path: Path) -> Path:
    (tmp_path / "rec").mkdir()
    return tmp_path / "rec"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (junk_npz, "not a readable .npz file (not a zip archive)"),
        (lambda tmp_path: tmp_path / "rec.npz", "no such recorded file"),
        (empty_folder, "no test_data_set_<N> directories"),
    ],
    ids=["junk", "missing", "empty-folder"],
)
def test_listing_a_broken_recording_names_the_file_and_the_fix(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(RecordedDataError) as info:
        recorded_set_names(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "re-record it with --parity-record" in str(info.value)


def test_recordings_are_shared_like_any_file_the_user_writes(tmp_path: Path) -> None:
    """Temporary files are created 0600; a recording is committed and read by CI, so it gets
    the umask's permissions, like the directory of a test-data set."""
    import os

    umask = os.umask(0o022)
    try:
        write_npz(tmp_path / "a.npz", [recorded_set()])
        (written,) = write_test_data(tmp_path / "a", [recorded_set()])
    finally:
        os.umask(umask)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
    assert written.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("target", ["scalars.npz", "scalars"])
def test_a_0d_input_like_a_sample_rate_keeps_its_shape(tmp_path: Path, target: str) -> None:
    arrays = {"audio": np.zeros((1, 8), np.float32), "sr": np.array(16000, np.int64)}
    recorded = RecordedSet(InputSet("default", "test", None, {}, arrays), {"p": np.float32(0.5)})
    write_recorded(tmp_path / target, [recorded])
    (back,) = read_recorded(tmp_path / target)
    assert back.inputs.arrays["sr"].shape == ()
    assert back.outputs["p"].shape == ()
