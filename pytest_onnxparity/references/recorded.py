"""Recorded reference data: inputs and the outputs a reference gave on them, on disk.

Two layouts, both readable without torch:

* ``.npz`` (the project's layout). One set named ``default`` is stored flat, as
  ``input.<name>`` and ``output.<name>`` members; any other set is stored under its name, as
  ``<set>/input.<name>`` and ``<set>/output.<name>``. A file may hold several sets; they are
  read back in the order they were written. Arrays are never unpickled (``allow_pickle=False``).
* The ONNX test-data layout of the model zoo and the onnx backend tests:
  ``<dir>/test_data_set_<N>/input_<K>.pb`` and ``output_<K>.pb``, each a serialized
  ``onnx.TensorProto``. Tensor names come from ``TensorProto.name`` or, when that is empty,
  from the model's input/output order.

Writers are atomic: a file is written under a temporary name and moved into place with
``os.replace``; a test-data set directory appears whole or not at all.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.files.atomic import atomic_file, replace_directory, staging_directory
from pytest_onnxparity.references.npy_member import RecordedDataError, read_member
from pytest_onnxparity.runtime.inputs import DEFAULT_SET, InputSet

INPUT_PREFIX = "input."
OUTPUT_PREFIX = "output."
TEST_DATA_SET = "test_data_set_"
RERECORD = "re-record it with --parity-record"
_TEST_DATA_DIR = re.compile(r"^test_data_set_(\d+)$")
_TEST_DATA_FILE = re.compile(r"^(input|output)_(\d+)\.pb$")
# A fixed member timestamp makes a rewrite of the same data byte-identical (np.savez stamps now).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class RecordedSet:
    """One input set and the reference outputs recorded on it (``outputs`` may be empty when
    the file only supplies real inputs)."""

    inputs: InputSet
    outputs: Mapping[str, np.ndarray] = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.inputs.name

    def to_json(self) -> dict[str, object]:
        return {
            **self.inputs.to_json(),
            "outputs": {
                name: {"shape": list(array.shape), "dtype": str(array.dtype)}
                for name, array in self.outputs.items()
            },
        }


def read_recorded(
    path: Path,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> list[RecordedSet]:
    """Read ``path``: an ``.npz`` file or a directory in the ONNX test-data layout."""
    path = Path(path)
    if path.is_dir():
        return read_test_data_dir(path, input_names, output_names)
    return read_npz(path)


def recorded_set_names(path: Path) -> list[str]:
    """The set names in ``path``, in order, from the archive's index or the folder listing:
    no array is loaded (test ids are made from these at collection time)."""
    path = Path(path)
    if path.is_dir():
        names = [entry.name for entry in _test_data_sets(path)]
        if not names:
            raise RecordedDataError(
                f"{path}: no {TEST_DATA_SET}<N> directories; point the reference at a folder "
                f"in the ONNX test-data layout or {RERECORD}"
            )
        return names
    _require_npz(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise RecordedDataError(f"{path}: not a readable .npz file ({error}); {RERECORD}") from None
    found: dict[str, None] = {}
    for member in members:
        set_name, _, _ = _split_npz_key(path, member.removesuffix(".npy"))
        found.setdefault(set_name)
    if not found:
        raise RecordedDataError(f"{path}: holds no arrays; {RERECORD}")
    return list(found)


def _require_npz(path: Path) -> None:
    """A recorded ``.npz`` is a file and a zip archive; anything else is refused unread."""
    if not path.is_file():
        raise RecordedDataError(f"{path}: no such recorded file; {RERECORD} or fix the path")
    if not zipfile.is_zipfile(path):
        # np.load would try it as a pickle; never go there.
        raise RecordedDataError(f"{path}: not a readable .npz file (not a zip archive); {RERECORD}")


def read_npz(path: Path) -> list[RecordedSet]:
    """Every set in an ``.npz`` file (see the module docstring for the layout)."""
    path = Path(path)
    _require_npz(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                info.filename.removesuffix(".npy"): read_member(path, archive, info, RERECORD)
                for info in archive.infolist()
                if not info.is_dir()
            }
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise RecordedDataError(f"{path}: not a readable .npz file ({error}); {RERECORD}") from None
    grouped: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    for key, array in members.items():
        set_name, role, tensor = _split_npz_key(path, key)
        inputs, outputs = grouped.setdefault(set_name, ({}, {}))
        (inputs if role == "input" else outputs)[tensor] = array
    sets = []
    for set_name, (inputs, outputs) in grouped.items():
        if not inputs:
            raise RecordedDataError(
                f"{path}: set {set_name!r} has outputs but no inputs; record the inputs as "
                f"'{_npz_prefix(set_name)}{INPUT_PREFIX}<name>' or {RERECORD}"
            )
        sets.append(RecordedSet(_input_set(set_name, path, inputs), outputs))
    if not sets:
        raise RecordedDataError(f"{path}: holds no arrays; {RERECORD}")
    return sets


def write_npz(path: Path, sets: Sequence[RecordedSet]) -> list[Path]:
    """Write ``sets`` to ``path`` atomically; return the paths written."""
    path = Path(path)
    if not sets:
        raise RecordedDataError(f"{path}: nothing to record; run the reference on inputs first")
    _check_unique_names(path, sets)
    for recorded in sets:
        if "/" in recorded.name:
            raise RecordedDataError(
                f"{path}: set name {recorded.name!r} contains '/', which the .npz layout uses "
                "to separate sets; rename the input set"
            )
    flat = len(sets) == 1 and sets[0].name == DEFAULT_SET
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
        for recorded in sets:
            prefix = "" if flat else _npz_prefix(recorded.name)
            members = [(INPUT_PREFIX + n, a) for n, a in recorded.inputs.arrays.items()]
            members += [(OUTPUT_PREFIX + n, a) for n, a in recorded.outputs.items()]
            for key, array in members:
                buffer = io.BytesIO()
                # asarray, not ascontiguousarray: that makes a 0-d scalar (a sample rate) 1-d.
                np.lib.format.write_array(buffer, np.asarray(array, order="C"), allow_pickle=False)
                member = zipfile.ZipInfo(f"{prefix}{key}.npy", date_time=_ZIP_EPOCH)
                member.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(member, buffer.getvalue())
    return [path]


def read_test_data_dir(
    model_dir: Path,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> list[RecordedSet]:
    """Every ``test_data_set_<N>`` under ``model_dir``, in numeric order.

    ``input_names`` / ``output_names`` (the model's order) name tensors whose ``.pb`` carries no
    name. Sets must agree on which outputs they record: one set missing an output is an error.
    """
    model_dir = Path(model_dir)
    set_dirs = _test_data_sets(model_dir)
    if not set_dirs:
        raise RecordedDataError(
            f"{model_dir}: no {TEST_DATA_SET}<N> directories; point the reference at a folder "
            f"in the ONNX test-data layout or {RERECORD}"
        )
    sets = []
    for set_dir in set_dirs:
        files: dict[str, dict[int, Path]] = {"input": {}, "output": {}}
        for entry in set_dir.iterdir():
            match = _TEST_DATA_FILE.match(entry.name)
            if match:
                files[match.group(1)][int(match.group(2))] = entry
        inputs = _read_tensors(set_dir, files["input"], "input", input_names)
        outputs = _read_tensors(set_dir, files["output"], "output", output_names)
        if not inputs:
            raise RecordedDataError(f"{set_dir}: holds no input_<K>.pb files; {RERECORD}")
        sets.append(RecordedSet(_input_set(set_dir.name, set_dir, inputs), outputs))
    _check_same_outputs(model_dir, sets)
    return sets


def write_test_data(directory: Path, sets: Sequence[RecordedSet]) -> list[Path]:
    """Write ``sets`` as ``directory/test_data_set_<N>/{input,output}_<K>.pb``.

    Each set directory is built aside and swapped in; sets left over from an earlier, longer
    recording are removed. Returns the set directories written.
    """
    from onnx import numpy_helper

    directory = Path(directory)
    if not sets:
        raise RecordedDataError(
            f"{directory}: nothing to record; run the reference on inputs first"
        )
    _check_unique_names(directory, sets)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, recorded in enumerate(sets):
        target = directory / f"{TEST_DATA_SET}{index}"
        staging = staging_directory(target)
        try:
            for role, arrays in (("input", recorded.inputs.arrays), ("output", recorded.outputs)):
                for position, (name, array) in enumerate(arrays.items()):
                    tensor = numpy_helper.from_array(np.asarray(array), name)
                    (staging / f"{role}_{position}.pb").write_bytes(tensor.SerializeToString())
            replace_directory(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        written.append(target)
    for stale in _test_data_sets(directory)[len(sets) :]:
        shutil.rmtree(stale)
    return written


def write_recorded(path: Path, sets: Sequence[RecordedSet]) -> list[Path]:
    """Write ``sets`` as ``.npz`` when ``path`` ends in ``.npz``, else in the test-data layout."""
    path = Path(path)
    if path.suffix == ".npz":
        return write_npz(path, sets)
    return write_test_data(path, sets)


def default_record_path(export_dir: Path, graph: str, layout: str = "npz") -> Path:
    """Where ``--parity-record`` writes a graph's data: ``<export_dir>/reference/<graph>.npz``,
    or the directory ``<export_dir>/reference/<graph>/`` for ``layout="test-data"``."""
    if layout not in ("npz", "test-data"):
        raise RecordedDataError(f"unknown record layout {layout!r}; use 'npz' or 'test-data'")
    base = Path(export_dir) / "reference"
    target = base / f"{graph}.npz" if layout == "npz" else base / graph
    # Discovery refuses such graph names; this keeps a recording inside its folder whatever
    # reaches here, since writing a test-data layout deletes stale set folders.
    if not os.path.normpath(target).startswith(os.path.normpath(base) + os.sep):
        raise RecordedDataError(
            f"graph name {graph!r} would record outside {base}; rename the graph ([files] graph)"
        )
    return target


def _npz_prefix(set_name: str) -> str:
    return "" if set_name == DEFAULT_SET else f"{set_name}/"


def _split_npz_key(path: Path, key: str) -> tuple[str, str, str]:
    flat = key.startswith((INPUT_PREFIX, OUTPUT_PREFIX))
    set_name, _, rest = ("", "", key) if flat else key.partition("/")
    for role, prefix in (("input", INPUT_PREFIX), ("output", OUTPUT_PREFIX)):
        if rest.startswith(prefix) and len(rest) > len(prefix):
            return set_name or DEFAULT_SET, role, rest[len(prefix) :]
    raise RecordedDataError(
        f"{path}: member {key!r} is not '[<set>/]input.<name>' or '[<set>/]output.<name>'; "
        "rename it to that layout"
    )


def _input_set(name: str, origin: Path, arrays: Mapping[str, np.ndarray]) -> InputSet:
    return InputSet(
        name=name, source=f"recorded {origin.name}", seed=None, dims={}, arrays=dict(arrays)
    )


def _check_unique_names(path: Path, sets: Sequence[RecordedSet]) -> None:
    names = [recorded.name for recorded in sets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RecordedDataError(
            f"{path}: input set name(s) {duplicates} appear more than once; give each set its "
            "own name"
        )


def _test_data_sets(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _TEST_DATA_DIR.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return [entry for _, entry in sorted(found)]


def _read_tensors(
    set_dir: Path, files: Mapping[int, Path], role: str, names: Sequence[str] | None
) -> dict[str, np.ndarray]:
    positions = sorted(files)
    if positions != list(range(len(positions))):
        missing = sorted(set(range(max(positions, default=-1) + 1)) - set(positions))
        raise RecordedDataError(
            f"{set_dir}: {', '.join(f'{role}_{k}.pb' for k in missing)} missing; {RERECORD}"
        )
    arrays: dict[str, np.ndarray] = {}
    for position in positions:
        path = files[position]
        name, array = _read_tensor(path)
        if not name:
            if names is None or position >= len(names):
                raise RecordedDataError(
                    f"{path}: the tensor has no name and the model's {role} names were not "
                    f"given (or it has fewer than {position + 1}); pass the model's {role} "
                    "names or re-record with named tensors"
                )
            name = names[position]
        if name in arrays:
            raise RecordedDataError(f"{path}: {role} {name!r} appears twice; {RERECORD}")
        arrays[name] = array
    return arrays


def _read_tensor(path: Path) -> tuple[str, np.ndarray]:
    from google.protobuf.message import DecodeError
    from onnx import TensorProto, numpy_helper

    tensor = TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise RecordedDataError(
            f"{path}: not a serialized onnx.TensorProto ({error}); {RERECORD}"
        ) from None
    if tensor.data_type == TensorProto.UNDEFINED:
        raise RecordedDataError(f"{path}: not a serialized onnx.TensorProto (no type); {RERECORD}")
    try:
        array: Any = numpy_helper.to_array(tensor)
    except Exception as error:  # onnx raises ValueError/TypeError/IndexError on inconsistent protos
        raise RecordedDataError(
            f"{path}: the tensor is corrupt ({type(error).__name__}: {error}); {RERECORD}"
        ) from None
    return tensor.name, np.asarray(array)


def _check_same_outputs(model_dir: Path, sets: Sequence[RecordedSet]) -> None:
    everywhere = set().union(*(recorded.outputs for recorded in sets))
    for recorded in sets:
        missing = sorted(everywhere - set(recorded.outputs))
        if missing:
            raise RecordedDataError(
                f"{model_dir / recorded.name}: missing output(s) {missing} that other sets "
                f"record; {RERECORD}"
            )
