"""The parity check a person writes by hand for an export folder: the benchmark's baseline.

It does what ``pytest --onnx-dir DIR`` does for each graph and nothing more: the same files, the
same session options, the same inputs (the plugin's synthesized ones, same seeds and shapes, or
the folder's ``inputs.npz`` where it has one), one reference run and one run per variant,
max_abs / mean_abs / p99_abs / rel_l2 / cosine of every output compared with the plugin's tier
defaults. No report, no records, no discovery beyond the file names.

    python benchmarks/handwritten_parity.py DIR [--ort-defaults]

``--ort-defaults`` builds sessions with onnxruntime's default options instead, as most
hand-written scripts do (``InferenceSession(path)``: idle threads spin). Exit status 1 when a
variant is past a limit.
"""

from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

TAGGED = re.compile(r"^(?P<graph>.+?)[._-](?P<tag>fp16|int8|int4)$")

# pytest-onnxparity's tier defaults (tolerances.TIER_DEFAULTS).
LIMITS = {
    "fp32": {"max_abs": 1e-4, "rel_l2": 1e-5, "min_cosine": 0.99999},
    "fp16": {"rel_l2": 1e-2, "min_cosine": 0.9999},
    "int8": {"rel_l2": 0.1, "min_cosine": 0.99},
    "int4": {"rel_l2": 0.2, "min_cosine": 0.98},
}
DEFAULT_DIM = 16


def load(path: Path, ort_defaults: bool = False) -> ort.InferenceSession:
    if ort_defaults:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # pytest-onnxparity's session options (sessions.SessionSettings).
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 0
    options.inter_op_num_threads = 0
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def make_inputs(graph: str, session: ort.InferenceSession, folder: Path) -> dict[str, np.ndarray]:
    """The folder's ``inputs.npz`` (arrays ``input.<name>``) where it has one; else uniform
    floats in [-1, 1) seeded per graph, batch 1, other dynamic axes 16, and integer inputs
    (lengths) holding the full length."""
    recorded = folder / "inputs.npz"
    if recorded.is_file():
        with np.load(recorded) as arrays:
            return {arg.name: arrays[f"input.{arg.name}"] for arg in session.get_inputs()}
    rng = np.random.default_rng(zlib.crc32(f"{graph}/default".encode()) % 2**32)
    feed = {}
    for arg in session.get_inputs():
        shape = [
            dim if isinstance(dim, int) and dim > 0 else (1 if axis == 0 else DEFAULT_DIM)
            for axis, dim in enumerate(arg.shape)
        ]
        if arg.type == "tensor(float)":
            feed[arg.name] = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        elif arg.type == "tensor(int64)":
            feed[arg.name] = np.full(shape, DEFAULT_DIM, dtype=np.int64)
        else:
            raise SystemExit(f"{graph}: cannot make input {arg.name} of {arg.type}")
    return feed


def compare(reference: np.ndarray, variant: np.ndarray) -> dict[str, float]:
    ref = reference.astype(np.float64).ravel()
    var = variant.astype(np.float64).ravel()
    diff = var - ref
    err = np.abs(diff)
    ref_norm, var_norm = np.linalg.norm(ref), np.linalg.norm(var)
    return {
        "max_abs": float(err.max()),
        "mean_abs": float(err.mean()),
        "p99_abs": float(np.percentile(err, 99)),
        "rel_l2": float(np.linalg.norm(diff) / ref_norm),
        "cosine": float(ref @ var / (ref_norm * var_norm)),
    }


def passes(stats: dict[str, float], limits: dict[str, float]) -> bool:
    for key, limit in limits.items():
        if key.startswith("min_"):
            if stats[key.removeprefix("min_")] < limit:
                return False
        elif stats[key] > limit:
            return False
    return True


def main(folder: Path, ort_defaults: bool = False) -> int:
    graphs: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.rglob("*.onnx")):
        match = TAGGED.match(path.stem)
        graph, tag = (match["graph"], match["tag"]) if match else (path.stem, "fp32")
        graphs.setdefault(graph, {})[tag] = path
    failed = 0
    for graph, files in sorted(graphs.items()):
        reference = load(files.pop("fp32"), ort_defaults)
        feed = make_inputs(graph, reference, folder)
        names = [output.name for output in reference.get_outputs()]
        expected = reference.run(None, feed)
        for tag, path in sorted(files.items()):
            actual = load(path, ort_defaults).run(None, feed)
            for name, ref, var in zip(names, expected, actual, strict=True):
                stats = compare(ref, var)
                ok = passes(stats, LIMITS[tag])
                failed += not ok
                print(
                    f"{graph} {tag} {name} {'PASS' if ok else 'FAIL'} "
                    + " ".join(f"{key}={value:.6g}" for key, value in stats.items())
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), ort_defaults="--ort-defaults" in sys.argv[2:]))
