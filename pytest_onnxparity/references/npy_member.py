"""One ``.npy`` member of an ``.npz`` archive, read without trusting it: its header is checked
against the member's size before any array is allocated (a corrupt or hostile header may declare
terabytes), object arrays are never unpickled, and every failure is one line naming the member.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np


class RecordedDataError(ValueError):
    """Recorded data cannot be read or written; the message names the file and the fix."""


def read_member(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, fix: str
) -> np.ndarray:
    """The array of member ``info`` of ``archive`` (the file ``path``); ``fix`` ends errors."""
    where = f"{path}: member {info.filename!r}"
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version} is not read here")
            shape, _, dtype = read_header(stream)
        except ValueError as error:
            raise RecordedDataError(f"{where} is not a .npy array ({error}); {fix}") from None
        if dtype.hasobject:
            raise RecordedDataError(
                f"{where} holds object (pickled) arrays, which are never loaded; save plain "
                f"numeric arrays or {fix}"
            )
        declared = math.prod(shape) * dtype.itemsize
        held = info.file_size - stream.tell()
        if declared != held:
            raise RecordedDataError(
                f"{where} declares shape {list(shape)} {dtype} ({declared} bytes) but holds "
                f"{held} bytes; the file is corrupt: {fix}"
            )
    with archive.open(info) as again:
        try:
            return np.lib.format.read_array(again, allow_pickle=False)
        except ValueError as error:
            raise RecordedDataError(f"{where} is not a .npy array ({error}); {fix}") from None
