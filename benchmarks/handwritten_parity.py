"""The parity check a person writes by hand for an export folder: the benchmark's baseline.

It does what ``pytest --onnx-dir DIR`` does for each graph by default and nothing more: the same
files, the same session options, the same input sets, one reference run per set and one run per
variant and set, max_abs / max_abs_rel / mean_abs / p99_abs / rel_l2 / cosine of every output
compared with the plugin's tier defaults. No report, no records, no discovery beyond the file
names.

The input sets are the plugin's default ones, made the way a person who knows the model would:
inputs uniform in [-1, 1) seeded per graph and set, 4 rows on the batch axis, other dynamic axes
16, lengths holding the full length; for a BERT-style graph, token ids in the vocabulary
(``VOCABULARY``), an attention mask of ones, token types of zero, and a second ``padded`` set
whose rows end in padding; plus the folder's ``inputs.npz`` (real inputs) where it has one.
Token-level outputs are compared over the positions the attention mask keeps.

    python benchmarks/handwritten_parity.py DIR [--ort-defaults]

``--ort-defaults`` builds sessions with onnxruntime's default options instead, as most
hand-written scripts do (``InferenceSession(path)``: idle threads spin). Exit status 1 when a
variant is past a limit.
"""

from __future__ import annotations

import math
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

TAGGED = re.compile(r"^(?P<graph>.+?)[._-](?P<tag>fp16|int8|int4)$")

# pytest-onnxparity's tier defaults (tolerances.TIER_DEFAULTS).
LIMITS = {
    "fp32": {"max_abs_rel": 1e-3, "rel_l2": 1e-5, "min_cosine": 0.99999},
    "fp16": {"rel_l2": 1e-2, "min_cosine": 0.9999},
    "int8": {"rel_l2": 0.4, "min_cosine": 0.92},
    "int4": {"rel_l2": 0.55, "min_cosine": 0.85},
}
DEFAULT_DIM = 16
BATCH = 4
# What the person writing this knows about the model: all-MiniLM-L6-v2's word-piece vocabulary.
VOCABULARY = {"input_ids": 30522}


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


def input_sets(
    graph: str, session: ort.InferenceSession, folder: Path
) -> dict[str, dict[str, np.ndarray]]:
    """The default synthesized set, a padded one for a graph with an attention mask, and the
    folder's ``inputs.npz`` (arrays ``input.<name>``) where it has one."""
    names = [arg.name for arg in session.get_inputs()]
    sets = {"default": synthesized(graph, session, "default")}
    if "attention_mask" in names:
        sets["padded"] = pad(synthesized(graph, session, "padded"))
    recorded = folder / "inputs.npz"
    if recorded.is_file():
        with np.load(recorded) as arrays:
            sets["inputs"] = {name: arrays[f"input.{name}"] for name in names}
    return sets


def synthesized(graph: str, session: ort.InferenceSession, name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(f"{graph}/{name}".encode()) % 2**32)
    feed = {}
    for arg in session.get_inputs():
        shape = [
            dim if isinstance(dim, int) and dim > 0 else (BATCH if axis == 0 else DEFAULT_DIM)
            for axis, dim in enumerate(arg.shape)
        ]
        if arg.name == "attention_mask":
            feed[arg.name] = np.ones(shape, dtype=np.int64)
        elif arg.name == "token_type_ids":
            feed[arg.name] = np.zeros(shape, dtype=np.int64)
        elif arg.name in VOCABULARY:
            feed[arg.name] = rng.integers(0, VOCABULARY[arg.name], size=shape).astype(np.int64)
        elif arg.type == "tensor(float)":
            feed[arg.name] = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        elif arg.type == "tensor(int64)":
            feed[arg.name] = np.full(shape, DEFAULT_DIM, dtype=np.int64)
        else:
            raise SystemExit(f"{graph}: cannot make input {arg.name} of {arg.type}")
    return feed


def pad(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Row i of B keeps ceil(S (B - i) / (B + 1)) positions; the rest is padding (id 0)."""
    batch, length = feed["attention_mask"].shape
    keep = [math.ceil(length * (batch - row) / (batch + 1)) for row in range(batch)]
    padding = np.arange(length)[None, :] >= np.array(keep)[:, None]
    for name in ("attention_mask", "input_ids", "token_type_ids"):
        if name in feed:
            feed[name][padding] = 0
    return feed


def compare(reference: np.ndarray, variant: np.ndarray) -> dict[str, float]:
    ref = reference.astype(np.float64).ravel()
    var = variant.astype(np.float64).ravel()
    diff = var - ref
    err = np.abs(diff)
    ref_norm, var_norm = np.linalg.norm(ref), np.linalg.norm(var)
    return {
        "max_abs": float(err.max()),
        "max_abs_rel": float(err.max() / np.abs(ref).max()),
        "mean_abs": float(err.mean()),
        "p99_abs": float(np.percentile(err, 99, method="inverted_cdf")),
        "rel_l2": float(np.linalg.norm(diff) / ref_norm),
        "cosine": float(ref @ var / (ref_norm * var_norm)),
    }


def real_positions(
    feed: dict[str, np.ndarray], reference: np.ndarray, variant: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Token-level outputs ([batch, sequence, ...] like the mask) over real positions only."""
    mask = feed.get("attention_mask")
    if mask is None or reference.shape[: mask.ndim] != mask.shape:
        return reference, variant
    keep = mask != 0
    return reference[keep], variant[keep]


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
        names = [output.name for output in reference.get_outputs()]
        sets = input_sets(graph, reference, folder)
        expected = {name: reference.run(None, feed) for name, feed in sets.items()}
        for tag, path in sorted(files.items()):
            session = load(path, ort_defaults)
            for set_name, feed in sets.items():
                actual = session.run(None, feed)
                for name, ref, var in zip(names, expected[set_name], actual, strict=True):
                    stats = compare(*real_positions(feed, ref, var))
                    ok = passes(stats, LIMITS[tag])
                    failed += not ok
                    print(
                        f"{graph} {tag} {set_name} {name} {'PASS' if ok else 'FAIL'} "
                        + " ".join(f"{key}={value:.6g}" for key, value in stats.items())
                    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), ort_defaults="--ort-defaults" in sys.argv[2:]))
