"""``health:checker``: ``onnx.checker``'s full check from the file path (external data included,
no 2 GiB protobuf copy), plus every external tensor's bytes present in its sidecar file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pytest_onnxparity.diagnose.health.common import (
    DETAIL_ITEMS,
    PROTOBUF_LIMIT_BYTES,
    Outcome,
    Unreadable,
    listed,
)
from pytest_onnxparity.onnxfile.graph import (
    load_structure,
)


def check_checker(path: Path) -> Outcome:
    import onnx

    if not path.is_file():
        raise Unreadable(f"{path}: no such model file; check --onnx-dir and the file name")
    size = path.stat().st_size
    details: dict[str, Any] = {"file_bytes": size}
    if size > PROTOBUF_LIMIT_BYTES:
        return Outcome(
            [
                f"{path}: the file is {size / 2**30:.2f} GiB, over protobuf's 2 GiB limit, so no "
                "tool can parse it; save the weights as external data (onnx.save_model(model, "
                "path, save_as_external_data=True))"
            ],
            details,
        )
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        text = [line.strip() for line in str(error).splitlines() if line.strip()]
        fix = "fix the export or quantization step that wrote it"
        if "topologically sorted" in str(error):
            # onnxruntime's float16 converter appends its Cast nodes after their consumers.
            fix = (
                "sort its nodes topologically (onnxruntime.transformers.onnx_model.OnnxModel"
                "(model).topological_sort(), then save)"
            )
        return Outcome(
            [
                f"{path}: onnx.checker rejects the model; {fix}",
                *listed(text or [type(error).__name__], 10),
            ],
            details,
        )
    short = _external_data_shortfalls(path, load_structure(path))
    details["external_data_problems"] = short[:DETAIL_ITEMS]
    if short:
        return Outcome(
            [
                f"{path}: {len(short)} tensors point past the end of their external data file; "
                "copy the complete sidecar file(s) next to the model (an interrupted download or "
                "a Git LFS pointer leaves them short)",
                *listed(short),
            ],
            details,
        )
    return Outcome([], details)


def _external_data_shortfalls(path: Path, model: Any) -> list[str]:
    from onnx import TensorProto, helper

    problems = []
    sizes: dict[Path, int] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        sidecar = path.parent / entries.get("location", "")
        if sidecar not in sizes:
            sizes[sidecar] = sidecar.stat().st_size if sidecar.is_file() else -1
        offset = int(entries.get("offset", 0))
        if "length" in entries:
            needed = int(entries["length"])
        else:
            try:
                itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            except (KeyError, TypeError, ValueError):
                continue
            needed = math.prod(tensor.dims) * itemsize
        if offset + needed > sizes[sidecar]:
            problems.append(
                f"{tensor.name}: needs bytes {offset}..{offset + needed} of {sidecar.name}, "
                f"which has {max(sizes[sidecar], 0)}"
            )
    return problems
