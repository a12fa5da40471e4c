"""Does weight-space parity stream? Peak memory and reads of ``compare_weights`` on a large model.

    python benchmarks/weight_streaming.py [--layers 80] [--width 1024] [--workdir DIR]
        [--baseline-checkout DIR] [--pair REFERENCE VARIANT] [--repeats N] [--json OUT]

Builds a chain of ``layers`` MatMuls of ``width`` x ``width`` float32 weights (80 x 1024: a
336 MB model whose largest weight is 4.2 MB) and its int8 variant (per-column DequantizeLinear,
84 MB), both with their tensors inline and both with them in external-data sidecars. Then, in a
fresh process for each pair, it runs :func:`pytest_onnxparity.compare_weights` alone and
reports the peak resident memory it adds (``VmHWM`` after, minus before, Linux only), beside
the model's size and its largest weight; the tensors read from disk and their bytes (each read
of an inline tensor by offset, each external-data read) and the most reads of any one tensor.
``--baseline-checkout DIR`` (a ``git archive`` of another commit) measures that checkout the
same way, on ``PYTHONPATH`` (its reads of inline tensors are not counted: before streaming,
onnx.load read the whole file); ``--pair REFERENCE VARIANT`` measures an existing int8 pair too.

``build_pair`` is also what ``tests/tools/test_weight_streaming.py`` checks the claim on, with
reads and tracemalloc counted rather than timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PROBE = """
import json, sys, time
from pathlib import Path

def high_water_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

import numpy, onnx, onnx.external_data_helper as external
from pytest_onnxparity.compare.weight_space import compare_weights

reads = {}
def count(key, length):
    tensors, total = reads.get(key, (0, 0))
    reads[key] = (tensors + 1, total + length)

try:
    from pytest_onnxparity.onnxfile import streamed
except ImportError:  # a checkout from before streaming
    streamed = None
if streamed is not None:
    read_span = streamed.read_span
    def counted_span(path, offset, target):
        count((str(path), offset), len(target))
        read_span(path, offset, target)
    streamed.read_span = counted_span
read_external = external._read_external_data_bytes  # what numpy_helper.to_array calls
def counted_external(tensor, base_dir):
    entries = {entry.key: entry.value for entry in tensor.external_data}
    data = read_external(tensor, base_dir)
    count((entries["location"], int(entries.get("offset", 0))), len(data))
    return data
external._read_external_data_bytes = counted_external

before = high_water_mb()
start = time.perf_counter()
report = compare_weights(Path(sys.argv[1]), Path(sys.argv[2]), file_tier="int8")
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "peak_added_mb": high_water_mb() - before,
    "passed": report.passed,
    "compared": len(report.comparisons),
    "counted": streamed is not None,
    "tensors_read": sum(n for n, _ in reads.values()),
    "bytes_read": sum(b for _, b in reads.values()),
    "most_reads_of_one_tensor": max((n for n, _ in reads.values()), default=0),
}))
"""


def build_pair(folder: Path, layers: int, width: int, external: bool = False) -> tuple[Path, Path]:
    """``model.onnx`` (``layers`` MatMuls of ``width`` x ``width`` float32 weights
    ``layer<i>.weight``) and ``model_int8.onnx`` (each weight int8 per column behind a
    DequantizeLinear) in ``folder``; with ``external``, every tensor in a sidecar."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    reference_nodes, variant_nodes = [], []
    reference_weights, variant_weights = [], []
    for layer in range(layers):
        name, before, after = f"layer{layer}.weight", f"h{layer}", f"h{layer + 1}"
        weight = rng.standard_normal((width, width), dtype=np.float32) * np.float32(0.02)
        scale = (np.abs(weight).max(axis=0) / 127).astype(np.float32)
        quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        reference_weights.append(numpy_helper.from_array(weight, name))
        reference_nodes.append(helper.make_node("MatMul", [before, name], [after], f"mm{layer}"))
        variant_weights += [
            numpy_helper.from_array(quantized, f"{name}_quantized"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros(width, np.int8), f"{name}_zero_point"),
        ]
        variant_nodes += [
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
                [f"{name}_dq"],
                f"dq{layer}",
                axis=1,
            ),
            helper.make_node("MatMul", [before, f"{name}_dq"], [after], f"mm{layer}"),
        ]
        del weight, quantized
    inputs = [helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["batch", width])]
    outputs = [helper.make_tensor_value_info(f"h{layers}", TensorProto.FLOAT, ["batch", width])]
    paths = []
    for file_name, nodes, weights in (
        ("model.onnx", reference_nodes, reference_weights),
        ("model_int8.onnx", variant_nodes, variant_weights),
    ):
        graph = helper.make_graph(nodes, "chain", inputs, outputs, weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        path = folder / file_name
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=external,
            all_tensors_to_one_file=True,
            location=f"{file_name}.data",
            size_threshold=0,
        )
        paths.append(path)
        del graph, model
    return paths[0], paths[1]


def measure(
    reference: Path, variant: Path, largest_weight: int, checkout: Path | None
) -> dict[str, Any]:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    command = [sys.executable, "-c", PROBE, str(reference), str(variant)]
    # In the model's folder: ``-c`` puts the working directory first on sys.path.
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, env=env, cwd=reference.parent
    )
    row: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    row.update(
        {
            "checkout": str(checkout) if checkout else "this",
            "model_mb": round(model_bytes(reference) / 1e6, 1),
            "variant_mb": round(model_bytes(variant) / 1e6, 1),
            "largest_weight_mb": round(largest_weight / 1e6, 2),
        }
    )
    row["peak_added_mb"] = round(row["peak_added_mb"], 1)
    row["seconds"] = round(row["seconds"], 2)
    return row


def model_bytes(path: Path) -> int:
    """The model file and its external-data sidecars (``<name>.data``)."""
    sidecar = path.with_name(path.name + ".data")
    return path.stat().st_size + (sidecar.stat().st_size if sidecar.exists() else 0)


def largest_initializer(path: Path) -> int:
    """Bytes of the largest inline or external initializer, from the structure alone."""
    import math

    from onnx import helper

    from pytest_onnxparity.onnxfile.streamed import load_streamed

    return max(
        math.prod(tensor.dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        for tensor in load_streamed(path).graph.initializer
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, help="keep the models here (default: temporary)")
    parser.add_argument("--baseline-checkout", type=Path, help="also measure this source tree")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each measurement")
    parser.add_argument(
        "--pair",
        nargs=2,
        type=Path,
        metavar=("REFERENCE", "INT8_VARIANT"),
        help="measure this pair of files too (e.g. the MiniLM benchmark folder's)",
    )
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    args = parser.parse_args()
    checkouts = [None] + ([args.baseline_checkout.resolve()] if args.baseline_checkout else [])
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        pairs = {}
        for label in ("inline", "external data"):
            folder = root / label.replace(" ", "_")
            pairs[label] = (folder / "model.onnx", folder / "model_int8.onnx")
            if not pairs[label][0].exists():
                build_pair(folder, args.layers, args.width, external=label != "inline")
        if args.pair:
            pairs[f"{args.pair[0].name}, {args.pair[1].name}"] = tuple(args.pair)
        rows = []
        for label, (reference, variant) in pairs.items():
            largest = largest_initializer(reference)
            for _ in range(args.repeats):
                for checkout in checkouts:
                    row = measure(reference.resolve(), variant.resolve(), largest, checkout)
                    rows.append({"tensors": label, **row})
    print(
        "| tensors | checkout | model MB | variant MB | largest weight MB | peak added MB "
        "| tensors read | MB read | most reads of a tensor | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        # Reads of inline tensors are counted where the checkout streams them; external ones always.
        counted = r["counted"] or r["tensors"] == "external data"
        print(
            f"| {r['tensors']} | {r['checkout']} | {r['model_mb']} | {r['variant_mb']} "
            f"| {r['largest_weight_mb']} | {r['peak_added_mb']} "
            f"| {r['tensors_read'] if counted else '-'} "
            f"| {round(r['bytes_read'] / 1e6, 1) if counted else '-'} "
            f"| {r['most_reads_of_one_tensor'] if counted else '-'} | {r['seconds']} |"
        )
    if args.json is not None:
        document = {
            "command": [Path(sys.executable).name, *sys.argv],
            "load_average": list(os.getloadavg()),
            "rows": rows,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
